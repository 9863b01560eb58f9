"""Activation patching between the real scratchpad and a counterfactual one the investigator writes.

Question answered: which layers and positions carry the difference between "what it thought" and
"what it might have thought" into the action? The metric is the log-probability of the real action's
first token at the action position. Patching the clean (real) residual stream at (layer, position) into
the counterfactual run and watching the metric come back says how much that cell carries:
effect = (patched - counterfactual) / (real - counterfactual), 1 = carries all of it.

Two methods. "attribution" (default) is the first-order estimate of every cell from one forward and
one backward pass (Nanda 2023, "attribution patching"): cheap enough for the whole grid on a CPU.
"exact" runs one patched forward per cell on a coarse grid: slower, no approximation.

Positions are aligned backwards from the action position (k tokens before the action in the real text
is k tokens before it in the counterfactual), which is exact when the edit keeps the token count, the
usual case for a word swap.
"""

from __future__ import annotations

from typing import Any

import torch

from probes.models import LoadedModel
from probes.text import StepText

METRIC = "log-probability of the action's first token at the action position"


def resid_pre_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_pre"


def _metric(logits: torch.Tensor, position: int, target: int) -> torch.Tensor:
    return torch.log_softmax(logits[..., position, :].float(), dim=-1)[..., target]


def aligned_positions(clean: StepText, corrupt: StepText, max_positions: int) -> list[tuple[int, int]]:
    """(clean position, counterfactual position) pairs, counted back from each action position."""
    k = min(max_positions, clean.action_position + 1, corrupt.action_position + 1)
    pairs = [(clean.action_position - i, corrupt.action_position - i) for i in range(k)]
    return sorted(pairs)


def _target(clean: StepText, clean_logits: torch.Tensor) -> int:
    if clean.action_token_id is not None:
        return clean.action_token_id
    return int(clean_logits[0, clean.action_position].argmax())


def patching(
    model: LoadedModel,
    clean: StepText,
    corrupt: StepText,
    method: str = "attribution",
    max_positions: int = 48,
    layers: list[int] | None = None,
    clean_run: tuple[dict[int, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the patching analysis; returns (data, summary) in the probe_results shape.

    `clean_run` = (resid_pre per layer [pos, d_model], logits [pos, vocab]) of the real text when the
    caller's forward pass already has them (the runner's does), saving a forward pass here.
    """
    bridge = model.bridge
    n_layers = model.n_layers
    pairs = aligned_positions(clean, corrupt, max_positions)
    clean_pos = [c for c, _ in pairs]
    corrupt_pos = [r for _, r in pairs]
    if layers is None:
        layers = (
            list(range(n_layers))
            if method == "attribution"
            else sorted({round(i * (n_layers - 1) / 5) for i in range(6)})
        )
    clean_tokens = torch.tensor([clean.token_ids])
    corrupt_tokens = torch.tensor([corrupt.token_ids])

    clean_acts: dict[int, torch.Tensor] = {}

    def keep(layer: int) -> Any:
        def hook(tensor: torch.Tensor, hook: Any) -> None:
            clean_acts[layer] = tensor[0, clean_pos].detach().clone()

        return hook

    if clean_run is not None and all(lay in clean_run[0] for lay in layers):
        clean_acts.update({lay: clean_run[0][lay][clean_pos] for lay in layers})
        clean_logits = clean_run[1].unsqueeze(0)
    else:
        with torch.no_grad(), bridge.hooks(fwd_hooks=[(resid_pre_hook(lay), keep(lay)) for lay in layers]):
            clean_logits = bridge(clean_tokens)
    target = _target(clean, clean_logits)
    clean_value = float(_metric(clean_logits[0], clean.action_position, target))

    if method == "attribution":
        effect, corrupt_value = _attribution(
            model, corrupt_tokens, corrupt, layers, corrupt_pos, clean_acts, target, clean_value
        )
    elif method == "exact":
        effect, corrupt_value = _exact(
            model, corrupt_tokens, corrupt, layers, corrupt_pos, clean_acts, target, clean_value
        )
    else:
        raise ValueError(f"unknown patching method {method!r}; use attribution or exact")

    flat = [(abs(v), li, pi) for li, row in enumerate(effect) for pi, v in enumerate(row)]
    _, best_l, best_p = max(flat) if flat else (0.0, 0, 0)
    data = {
        "layers": layers,
        "positions": clean_pos,
        "counterfactual_positions": corrupt_pos,
        "effect": [[round(v, 6) for v in row] for row in effect],
        "metric": METRIC,
        "method": method,
        "hook": "hook_resid_pre",
        "clean_value": clean_value,
        "corrupt_value": corrupt_value,
        "counterfactual_text": corrupt.step_text,
        "counterfactual_tokens": corrupt.tokens,
    }
    summary = {"max_effect_layer": layers[best_l], "max_effect_position": clean_pos[best_p], "method": method}
    return data, summary


def _normalizer(clean_value: float, corrupt_value: float) -> float:
    diff = clean_value - corrupt_value
    return diff if abs(diff) > 1e-6 else 1.0  # no difference to explain: report raw changes


def _attribution(
    model: LoadedModel,
    tokens: torch.Tensor,
    corrupt: StepText,
    layers: list[int],
    positions: list[int],
    clean_acts: dict[int, torch.Tensor],
    target: int,
    clean_value: float,
) -> tuple[list[list[float]], float]:
    acts: dict[int, torch.Tensor] = {}
    grads: dict[int, torch.Tensor] = {}

    first = min(layers)

    def keep(layer: int) -> Any:
        def hook(tensor: torch.Tensor, hook: Any) -> torch.Tensor:
            if layer == first:
                # Gradients are wanted for activations only: the model's weights do not require grad,
                # so the backward pass skips every weight gradient (about half its cost and a copy of
                # the weights in memory). The first patched layer's input becomes the leaf.
                tensor = tensor.detach().requires_grad_(True)
            acts[layer] = tensor[0, positions].detach().clone()

            def on_grad(g: torch.Tensor) -> None:
                grads[layer] = g[0, positions].detach().clone()

            tensor.register_hook(on_grad)
            return tensor

        return hook

    with (
        torch.enable_grad(),
        model.bridge.hooks(fwd_hooks=[(resid_pre_hook(lay), keep(lay)) for lay in layers]),
    ):
        logits = model.bridge(tokens)
        value = _metric(logits[0], corrupt.action_position, target)
        value.backward()
    model.bridge.zero_grad(set_to_none=True)
    corrupt_value = float(value.detach())
    norm = _normalizer(clean_value, corrupt_value)
    effect = [(((clean_acts[lay] - acts[lay]) * grads[lay]).sum(dim=-1) / norm).tolist() for lay in layers]
    return effect, corrupt_value


@torch.no_grad()
def _exact(
    model: LoadedModel,
    tokens: torch.Tensor,
    corrupt: StepText,
    layers: list[int],
    positions: list[int],
    clean_acts: dict[int, torch.Tensor],
    target: int,
    clean_value: float,
) -> tuple[list[list[float]], float]:
    corrupt_value = float(_metric(model.bridge(tokens)[0], corrupt.action_position, target))
    norm = _normalizer(clean_value, corrupt_value)
    batch = tokens.repeat(len(positions), 1)
    rows = torch.arange(len(positions))
    effect = []
    for layer in layers:

        def patch(tensor: torch.Tensor, hook: Any, layer: int = layer) -> torch.Tensor:
            tensor = tensor.clone()
            tensor[rows, positions] = clean_acts[layer].to(tensor.dtype)
            return tensor

        with model.bridge.hooks(fwd_hooks=[(resid_pre_hook(layer), patch)]):
            values = _metric(model.bridge(batch), corrupt.action_position, target)
        effect.append(((values - corrupt_value) / norm).tolist())
    return effect, corrupt_value
