"""What a probe is trained on, per dataset row: the mean residual stream over the aggregated tokens at
each candidate layer, plus a few single tokens' activations (for calibrating per-token scores).

Why a disk cache: a forward pass of SmolLM2 costs about a second per row on a busy two-core machine and
the datasets hold well over a thousand rows; retraining (another method, another split) should not pay
for the same passes again. A row's entry is keyed by the model's weights hash and the row's exact
text, so a changed row or model never reads a stale entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probes.lens import resid_hook
from probes.models import LoadedModel
from probes.text import StepInput, StepText, build_step_text

AGGREGATED_SEGMENTS = ("reasoning", "action")  # the model's own words, not what it was told
TOKENS_PER_ROW = 16  # single-token samples per row, evenly spaced over the aggregated tokens


def aggregate_positions(st: StepText) -> list[int]:
    """Which tokens the aggregated score averages: the model's own reasoning and action, else all step
    tokens (a step with neither still gets a score)."""
    return st.positions_in(*AGGREGATED_SEGMENTS) or st.positions_in("context", "reasoning", "action")


def row_input(row: dict[str, Any]) -> StepInput:
    return StepInput(context=row["context"], reasoning=row["reasoning"], action=row["action"])


@dataclass(frozen=True)
class RowFeatures:
    """Per layer: `mean` [rows, d_model] and `tokens` (per row, [<=TOKENS_PER_ROW, d_model])."""

    mean: dict[int, np.ndarray]
    tokens: dict[int, list[np.ndarray]]


def row_key(weights_sha256: str, row: dict[str, Any], layer: int) -> str:
    """A row's cache entry name: the weights it was read with, the layer and the row's exact text."""
    text = "\x00".join([weights_sha256, str(layer), row["context"], row["reasoning"], row["action"]])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cached_means(
    weights_sha256: str, rows: Sequence[dict[str, Any]], layers: Sequence[int], cache_dir: Path
) -> dict[int, np.ndarray] | None:
    """The mean features of every row from the cache alone, or None when any entry is missing: a
    report can reuse passes made earlier (by weights hash and text) without loading the model."""
    mean: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    for row in rows:
        for layer in layers:
            path = cache_dir / f"{row_key(weights_sha256, row, layer)}.npz"
            if not path.exists():
                return None
            with np.load(path) as z:
                mean[layer].append(z["mean"])
    return {layer: np.stack(v) for layer, v in mean.items()}


@torch.no_grad()
def _batch_resid(model: LoadedModel, seqs: list[list[int]], layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """Residual streams of several rows in one forward pass: layer -> [rows, max_len, d_model].

    Rows are padded on the right. The model is causal, so a real token never attends to the padding
    after it, and its activations are those of the row run alone (up to float rounding); one batched
    pass costs far less than one pass per row on a CPU, where per-call overhead dominates short texts.
    """
    width = max(len(s) for s in seqs)
    pad = getattr(model.tokenizer, "pad_token_id", None) or 0
    tokens = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], dtype=torch.long)
    store: dict[int, torch.Tensor] = {}

    def catcher(layer: int) -> Any:
        def hook(tensor: torch.Tensor, hook: Any) -> None:
            store[layer] = tensor.detach().float().clone()

        return hook

    hooks = [(resid_hook(layer), catcher(layer)) for layer in sorted(set(layers))]
    stop = max(layers) + 1
    with model.bridge.hooks(fwd_hooks=hooks):
        if stop < model.n_layers:
            model.bridge(tokens, stop_at_layer=stop)
        else:
            model.bridge(tokens)
    return store


BATCH = 4


def row_features(
    model: LoadedModel,
    rows: Sequence[dict[str, Any]],
    layers: Sequence[int],
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RowFeatures:
    """Features of every row at every layer, read from `cache_dir` where present (and written there).
    Rows not in the cache run in batches of similar length."""
    mean: dict[int, list[np.ndarray | None]] = {layer: [None] * len(rows) for layer in layers}
    tokens: dict[int, list[np.ndarray | None]] = {layer: [None] * len(rows) for layer in layers}
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    todo: list[tuple[int, StepText]] = []
    done = 0
    for i, row in enumerate(rows):
        weights = model.provenance.weights_sha256
        paths = (
            {layer: cache_dir / f"{row_key(weights, row, layer)}.npz" for layer in layers}
            if cache_dir
            else {}
        )
        if paths and all(p.exists() for p in paths.values()):
            for layer, p in paths.items():
                with np.load(p) as z:
                    mean[layer][i] = z["mean"]
                    tokens[layer][i] = z["tokens"]
            done += 1
        else:
            todo.append((i, build_step_text(model.tokenizer, row_input(row))))
    todo.sort(key=lambda t: len(t[1].token_ids))
    for start in range(0, len(todo), BATCH):
        chunk = todo[start : start + BATCH]
        resid = _batch_resid(model, [st.token_ids for _, st in chunk], layers)
        for b, (i, st) in enumerate(chunk):
            agg = aggregate_positions(st)
            pick = [agg[j] for j in np.linspace(0, len(agg) - 1, min(TOKENS_PER_ROW, len(agg))).astype(int)]
            for layer in layers:
                m = resid[layer][b, torch.tensor(agg)].mean(dim=0).numpy().astype(np.float64)
                t = resid[layer][b, torch.tensor(pick)].numpy().astype(np.float32)
                mean[layer][i], tokens[layer][i] = m, t
                if cache_dir is not None:
                    key = row_key(model.provenance.weights_sha256, rows[i], layer)
                    np.savez(cache_dir / f"{key}.npz", mean=m, tokens=t)
            done += 1
        if progress:
            progress(done, len(rows))
    return RowFeatures(
        mean={k: np.stack([x for x in v if x is not None]) for k, v in mean.items()},
        tokens={k: [x for x in v if x is not None] for k, v in tokens.items()},
    )
