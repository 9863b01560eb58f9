"""One forward pass that keeps only what the requested analyses read.

Why not `run_with_cache` for everything: it stores whole activations, and the attention pattern alone
is layers x heads x positions^2. Here each hook copies exactly its slice (a residual stream at one
layer, one query row of a pattern) inside TransformerLens' `hooks()` context, which removes every hook
on exit, even on error. The fidelity tests check these copies against `run_with_cache` on the same input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from probes.attention import pattern_hook, row_catcher
from probes.lens import resid_hook
from probes.models import LoadedModel
from probes.prefix import cache_kwargs, filled, new_cache


@dataclass
class Captured:
    logits: torch.Tensor | None  # [pos, vocab], or [len(logit_positions), vocab]; None if stopped early
    resid: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [pos, d_model] (resid_post)
    resid_pre: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [pos, d_model] (patching)
    attn_rows: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [heads, keys]
    cache: Any = None  # the pass's keys and values (probes/prefix.py) when asked for and supported
    logit_positions: list[int] | None = None  # the rows of `logits`, when not every position

    def logits_at(self, position: int) -> torch.Tensor:
        """The next-token logits [vocab] at `position`."""
        assert self.logits is not None
        row = self.logit_positions.index(position) if self.logit_positions is not None else position
        return self.logits[row]


def keep_logits(positions: Sequence[int]) -> dict[str, Any]:
    """The keyword that makes a Hugging Face model unembed only `positions` (`logits_to_keep`): the
    unembedding of every position is about a fifth of SmolLM2's forward pass (a 49,152-token vocabulary),
    and the analyses read the logits at one position. Models that ignore it return every position."""
    return {"logits_to_keep": torch.tensor(list(positions), dtype=torch.long)}


def rows_at(logits: torch.Tensor, positions: Sequence[int], n_tokens: int) -> torch.Tensor:
    """`logits` [batch, k, vocab] of a pass given `keep_logits(positions)` as [batch, len(positions),
    vocab], whether the model kept only those positions or returned all `n_tokens`."""
    if logits.shape[-2] == n_tokens and len(positions) != n_tokens:
        return logits[:, list(positions)]
    return logits


def _resid_catcher(store: dict[int, torch.Tensor], layer: int) -> Any:
    def hook(tensor: torch.Tensor, hook: Any) -> None:
        store[layer] = tensor[0].detach().float().clone()

    return hook


@torch.no_grad()
def forward_capture(
    model: LoadedModel,
    token_ids: list[int],
    resid_layers: Iterable[int] = (),
    attn_query: int | None = None,
    resid_pre_layers: Iterable[int] = (),
    attn_layers: Iterable[int] = (),
    stop_at_layer: int | None = None,
    keep_cache: bool = False,
    logit_positions: Sequence[int] | None = None,
) -> Captured:
    """Run the model on `token_ids` (no BOS added: the chat template already starts the text).

    `keep_cache` also keeps the pass's keys and values, so that a counterfactual can resume after the
    prefix it shares with this text (patching); None where the model cannot resume. `logit_positions`
    unembeds only those positions (see `keep_logits`)."""
    captured = Captured(logits=None)
    hooks: list[tuple[str, Any]] = [
        (resid_hook(layer), _resid_catcher(captured.resid, layer)) for layer in sorted(set(resid_layers))
    ]
    hooks += [
        (f"blocks.{layer}.hook_resid_pre", _resid_catcher(captured.resid_pre, layer))
        for layer in sorted(set(resid_pre_layers))
    ]
    if attn_query is not None:
        hooks += [
            (pattern_hook(layer), row_catcher(captured.attn_rows, layer, attn_query))
            for layer in sorted(set(attn_layers))
        ]
    tokens = torch.tensor([token_ids], dtype=torch.long)
    n_layers = model.n_layers
    stop = stop_at_layer if stop_at_layer is not None and stop_at_layer < n_layers else None
    cache = new_cache() if keep_cache and stop is None else None
    kwargs = cache_kwargs(cache) if cache is not None else {}
    if logit_positions is not None:
        captured.logit_positions = sorted(set(logit_positions))
        kwargs.update(keep_logits(captured.logit_positions))
    with model.bridge.hooks(fwd_hooks=hooks):
        if stop is not None:
            out = model.bridge(tokens, stop_at_layer=stop)
        else:
            out = model.bridge(tokens, **kwargs)
    if stop is None:
        if captured.logit_positions is not None:
            out = rows_at(out, captured.logit_positions, len(token_ids))
        captured.logits = out[0].detach().float()
    captured.cache = filled(cache, len(token_ids))
    return captured
