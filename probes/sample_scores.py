"""The shipped probes on the steps of our own sample incidents (`probes/datasets/samples.jsonl`), as
they are, without retraining: what `workbench probes report --samples` adds to each probe's row.

Why: no probe saw these rows in training or in setting its threshold, so AUROC, TPR and FPR on them
are blind, and the per-step scores show an investigator which steps of the incidents fire. The labels
are ours (probes/datasets/samples.py says how they were written); the set is small, so every figure
carries its bootstrap interval (`probes.evaluation`).

Scores are the run-time ones: sigmoid of the artifact's head applied to the mean residual over the
step's reasoning and action tokens (`probes.features`, the quantity `score_step` reports), computed
from the on-disk feature cache when every row is there (keyed by the artifact's weights hash and the
row's text, so no model is loaded), else by forward passes that fill the cache for the next report.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from probes import evaluation as ev
from probes.artifact import ProbeArtifact, ProbeError
from probes.features import cached_means, row_features
from probes.models import LoadedModel
from workbench.errors import WorkbenchError

# probe -> (the row column it is judged by, what 1 is called, what 0 is called)
LABELS: dict[str, tuple[str, str, str]] = {
    "harmful_intent": ("label", "harmful", "benign"),
    "deception": ("deceptive", "deceptive", "honest"),
}
NOT_LOADED = "not computed: model not loaded"
DATASET = "probes/datasets/samples.jsonl"
PATH = Path(__file__).resolve().parent / "datasets" / "samples.jsonl"  # python -m probes.datasets.samples


def load_rows(path: Path = PATH) -> list[dict[str, Any]]:
    """The committed rows: one per step of the five samples, with their labels."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProbeError(f"{path} missing (run python -m probes.datasets.samples): {exc}") from exc
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _plain(value: float) -> float | None:
    """JSON has no NaN: an undefined figure (one class missing) is null."""
    return None if math.isnan(value) else value


def _interval(values: list[float]) -> list[float | None]:
    return [_plain(v) for v in values]


def samples_block(
    artifact: ProbeArtifact, rows: Sequence[dict[str, Any]], scores: np.ndarray, data_sha256: str
) -> dict[str, Any]:
    """The `samples` block of one probe from its per-row scores (aggregated, in [0, 1]): counts, AUROC,
    TPR and FPR at the artifact's threshold (each with its 95% bootstrap interval) and every step."""
    column, positive, negative = LABELS.get(artifact.name, ("label", "positive", "negative"))
    y = np.array([int(r[column]) for r in rows])
    fired = scores >= artifact.threshold  # as score_step decides `fired`
    return {
        "computed": True,
        "dataset": DATASET,
        "data_sha256": data_sha256,
        "label": column,
        "counts": {positive: int((y == 1).sum()), negative: int((y == 0).sum())},
        "threshold": artifact.threshold,
        "auroc": _plain(ev.auroc(y, scores)),
        "rates": {"tpr": _plain(ev.rate(fired[y == 1])), "fpr": _plain(ev.rate(fired[y == 0]))},
        "intervals": {
            "auroc": _interval(ev.auroc_ci(y, scores)),
            "tpr": _interval(ev.rate_ci(fired[y == 1])),
            "fpr": _interval(ev.rate_ci(fired[y == 0])),
        },
        "steps": [
            {
                "sample": r["sample"],
                "trace_id": r["trace_id"],
                "step": r["step"],
                "span_id": r["span_id"],
                "kind": r["kind"],
                "label": int(r[column]),
                "score": float(s),
                "fired": bool(f),
            }
            for r, s, f in zip(rows, scores, fired, strict=True)
        ],
    }


def not_computed(reason: str) -> dict[str, Any]:
    return {"computed": False, "reason": reason}


def score_samples(
    artifacts: Sequence[ProbeArtifact],
    cache_dir: Path,
    load_model: Callable[[], LoadedModel] | None,
    path: Path = PATH,
) -> dict[str, dict[str, Any]]:
    """Each artifact's `samples` block. Features come from the cache when all are there; otherwise
    from `load_model()` (called at most once; None means no model may be loaded), one pass per row
    over the union of the artifacts' layers. A probe that cannot be scored says why instead."""
    rows = load_rows(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    model: LoadedModel | None = None
    load_error: str | None = None
    out: dict[str, dict[str, Any]] = {}
    by_weights: dict[str, list[ProbeArtifact]] = {}
    for artifact in artifacts:
        by_weights.setdefault(artifact.provenance.get("weights_sha256", ""), []).append(artifact)
    for weights, group in by_weights.items():
        layers = sorted({layer for a in group for layer in a.read_layers})
        means = cached_means(weights, rows, layers, cache_dir)
        if means is None:
            if model is None and load_error is None:
                if load_model is None:
                    load_error = NOT_LOADED
                else:
                    try:
                        model = load_model()
                    except WorkbenchError as exc:
                        load_error = f"{NOT_LOADED}: {exc}"
            if model is None:
                out.update({a.name: not_computed(load_error or NOT_LOADED) for a in group})
                continue
            if model.provenance.weights_sha256 != weights:
                reason = (
                    f"not computed: trained on weights {weights[:12]}, the loaded model's are "
                    f"{model.provenance.weights_sha256[:12]}"
                )
                out.update({a.name: not_computed(reason) for a in group})
                continue
            means = row_features(model, rows, layers, cache_dir).mean
        for artifact in group:
            x = np.concatenate([means[layer] for layer in artifact.read_layers], axis=-1)
            if x.shape[1] != len(artifact.weights):
                raise ProbeError(
                    f"{artifact.name}: features of width {x.shape[1]}, weights {len(artifact.weights)}"
                )
            logits = x @ np.array(artifact.weights) + artifact.bias
            out[artifact.name] = samples_block(artifact, rows, 1.0 / (1.0 + np.exp(-logits)), digest)
    return out
