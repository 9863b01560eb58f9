"""Linear probes as governed artifacts: labelled data in, a direction at one layer out, with the
numbers an auditor needs to trust it (held-out AUROC on unseen template families, the threshold and the
false-positive rate it was set at, the hash of the exact training data, the model's provenance).

Why linear and why so much metadata: a linear read-out of the residual stream is the simplest probe that
works and the easiest to check; a score without its training data, layer and calibration cannot be
argued with in an incident review.

Scores: per token, sigmoid(w . h_t + b) at the probe's layer. The aggregated score is
sigmoid(mean over the aggregated tokens of w . h_t + b), which equals the probe applied to the mean
activation, exactly what it was trained on. `fired` means score >= threshold.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probes.hooks import forward_capture
from probes.models import LoadedModel
from probes.text import StepInput, StepText, build_step_text
from workbench.errors import WorkbenchError

PACKAGE = Path(__file__).resolve().parent
DATASETS = PACKAGE / "datasets"
ARTIFACTS = PACKAGE / "artifacts"
ARTIFACT_VERSION = 1
FPR_TARGET = 0.01
AGGREGATED_SEGMENTS = ("reasoning", "action")  # the model's own words, not what it was told

# name -> (dataset file, what label 1 means)
PROBES: dict[str, tuple[str, str]] = {
    "harmful_intent": ("intent.jsonl", "destructive or harmful intent (vs benign intent)"),
    "deception": ("deception.jsonl", "deceptive (vs honest) under instruction, same statement"),
}


class ProbeError(WorkbenchError):
    """A probe artifact or dataset is missing, stale or does not match the model."""


@dataclass(frozen=True)
class ProbeArtifact:
    name: str
    description: str
    version: int
    layer: int
    method: str  # "logistic_regression" | "mean_difference"
    aggregation: str
    weights: list[float]
    bias: float
    threshold: float
    fpr_target: float
    heldout_auroc: float
    heldout_tpr_at_threshold: float
    train_auroc: float
    layer_selection: dict[str, float]  # layer -> leave-one-family-out AUROC on the training families
    dataset: str
    data_sha256: str
    families: dict[str, list[str]]
    counts: dict[str, int]
    provenance: dict[str, str]
    created_at: str
    roc: dict[str, list[float]] = field(default_factory=dict)  # held-out ROC curve: fpr, tpr

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "heldout_auroc": self.heldout_auroc,
        }


def dataset_rows(name: str) -> tuple[list[dict[str, Any]], str]:
    """The rows of a probe's dataset and the SHA-256 of the file's bytes."""
    if name not in PROBES:
        raise ProbeError(f"unknown probe {name!r}; known: {', '.join(sorted(PROBES))}")
    path = DATASETS / PROBES[name][0]
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProbeError(f"dataset {path} missing: {exc}") from exc
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    return rows, hashlib.sha256(raw).hexdigest()


def artifact_path(name: str, directory: Path = ARTIFACTS) -> Path:
    return directory / f"{name}.json"


def load_artifact(name: str, directory: Path = ARTIFACTS) -> ProbeArtifact:
    path = artifact_path(name, directory)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ProbeArtifact(**raw)
    except FileNotFoundError as exc:
        raise ProbeError(f"no trained probe {name!r} at {path}; run `workbench probes train {name}`") from exc
    except (ValueError, TypeError) as exc:
        raise ProbeError(f"probe artifact {path} is unreadable: {exc}") from exc


def load_artifacts(directory: Path = ARTIFACTS) -> list[ProbeArtifact]:
    return [load_artifact(p.stem, directory) for p in sorted(directory.glob("*.json"))]


def aggregate_positions(st: StepText) -> list[int]:
    """Which tokens the aggregated score averages: the model's own reasoning and action, else all step
    tokens (a step with neither still gets a score)."""
    return st.positions_in(*AGGREGATED_SEGMENTS) or st.positions_in("context", "reasoning", "action")


def row_input(row: dict[str, Any]) -> StepInput:
    return StepInput(context=row["context"], reasoning=row["reasoning"], action=row["action"])


def features(
    model: LoadedModel,
    rows: Sequence[dict[str, Any]],
    layers: Sequence[int],
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, np.ndarray]:
    """Mean activation over the aggregated tokens of each row, at each layer: layer -> [rows, d_model].

    The forward pass stops after the deepest layer asked for: the layers above never matter here.
    """
    out: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    for i, row in enumerate(rows):
        st = build_step_text(model.tokenizer, row_input(row))
        cap = forward_capture(model, st.token_ids, resid_layers=layers, stop_at_layer=max(layers) + 1)
        idx = torch.tensor(aggregate_positions(st))
        for layer in layers:
            out[layer].append(cap.resid[layer][idx].mean(dim=0).numpy().astype(np.float64))
        if progress:
            progress(i + 1, len(rows))
    return {layer: np.stack(v) for layer, v in out.items()}


def _fit(x: np.ndarray, y: np.ndarray, method: str) -> tuple[np.ndarray, float]:
    """A direction and bias in raw activation space (any scaling is folded in)."""
    if method == "mean_difference":
        mu1, mu0 = x[y == 1].mean(axis=0), x[y == 0].mean(axis=0)
        w = mu1 - mu0
        w = w / (np.linalg.norm(w) + 1e-12)
        proj = x @ w
        scale = proj.std() + 1e-12
        return w / scale, float(-((mu1 + mu0) / 2) @ w / scale)
    if method == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        clf = LogisticRegression(C=0.1, max_iter=2000)
        clf.fit((x - mean) / std, y)
        w = clf.coef_[0] / std
        return w, float(clf.intercept_[0] - (mean * clf.coef_[0] / std).sum())
    raise ProbeError(f"unknown method {method!r}; use logistic_regression or mean_difference")


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else float("nan")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def candidate_layers(n_layers: int) -> list[int]:
    """Early-to-middle layers, every tenth of the depth up to two thirds: linear probes for intent
    usually read best there (the last layers are shaped by next-token prediction), and stopping the
    forward pass at two thirds of the depth makes training that much cheaper."""
    step = max(1, n_layers // 10)
    return list(range(step, max(step + 1, (2 * n_layers) // 3 + 1), step))


def train_probe(
    model: LoadedModel,
    name: str,
    method: str = "logistic_regression",
    layer: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProbeArtifact:
    """Train, pick the layer (leave-one-family-out on training families), calibrate, evaluate held out."""
    rows, digest = dataset_rows(name)
    layers = [layer] if layer is not None else candidate_layers(model.n_layers)
    if any(not 0 <= x < model.n_layers for x in layers):
        raise ProbeError(f"layer must be in 0..{model.n_layers - 1}")
    say = progress or (lambda _m: None)
    say(f"{name}: reading {len(rows)} rows at layers {layers}")
    feats = features(model, rows, layers)
    y = np.array([int(r["label"]) for r in rows])
    split = np.array([r["split"] for r in rows])
    fam = np.array([r["family"] for r in rows])
    train, held, control = split == "train", split == "heldout", split == "control"
    train_families = sorted(set(fam[train].tolist()))

    selection: dict[str, float] = {}
    for candidate in layers:
        x = feats[candidate]
        if len(layers) == 1:
            selection[str(candidate)] = float("nan")
            continue
        scores, labels = [], []
        for f in train_families:  # leave one family out: choose the layer that generalizes across wordings
            fit_mask, eval_mask = train & (fam != f), train & (fam == f)
            w, b = _fit(x[fit_mask], y[fit_mask], method)
            scores.append(x[eval_mask] @ w + b)
            labels.append(y[eval_mask])
        selection[str(candidate)] = _auroc(np.concatenate(labels), np.concatenate(scores))
    best = max(layers, key=lambda c: (selection[str(c)] if not math.isnan(selection[str(c)]) else 0, -c))
    x = feats[best]
    w, b = _fit(x[train], y[train], method)

    def score(mask: np.ndarray) -> np.ndarray:
        return _sigmoid(x[mask] @ w + b)

    benign = (train & (y == 0)) | control
    threshold = float(np.quantile(score(benign), 1 - FPR_TARGET, method="higher"))
    held_scores = score(held)
    held_auroc = _auroc(y[held], held_scores)
    tpr = float((held_scores[y[held] == 1] >= threshold).mean()) if (y[held] == 1).any() else float("nan")
    from sklearn.metrics import roc_curve

    fpr_c, tpr_c, _ = roc_curve(y[held], held_scores)
    say(f"{name}: layer {best}, held-out AUROC {held_auroc:.3f}, threshold {threshold:.4f}")
    return ProbeArtifact(
        name=name,
        description=PROBES[name][1],
        version=ARTIFACT_VERSION,
        layer=int(best),
        method=method,
        aggregation="mean logit over reasoning+action tokens",
        weights=[float(v) for v in w],
        bias=float(b),
        threshold=threshold,
        fpr_target=FPR_TARGET,
        heldout_auroc=held_auroc,
        heldout_tpr_at_threshold=tpr,
        train_auroc=_auroc(y[train], score(train)),
        layer_selection=selection,
        dataset=f"probes/datasets/{PROBES[name][0]}",
        data_sha256=digest,
        families={"train": train_families, "heldout": sorted(set(fam[held].tolist()))},
        counts={"train": int(train.sum()), "heldout": int(held.sum()), "control": int(control.sum())},
        provenance=model.provenance.as_dict(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        roc={"fpr": [round(float(v), 5) for v in fpr_c], "tpr": [round(float(v), 5) for v in tpr_c]},
    )


def save_artifact(artifact: ProbeArtifact, directory: Path = ARTIFACTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = artifact_path(artifact.name, directory)
    path.write_text(json.dumps(asdict(artifact), indent=1) + "\n", encoding="utf-8")
    return path


def heldout_auroc(model: LoadedModel, artifact: ProbeArtifact) -> float:
    """Recompute the held-out AUROC from the dataset the artifact names; refuses a changed dataset."""
    rows, digest = dataset_rows(artifact.name)
    if digest != artifact.data_sha256:
        raise ProbeError(
            f"{artifact.dataset} changed since {artifact.name} was trained "
            f"(sha256 {digest[:12]} vs recorded {artifact.data_sha256[:12]})"
        )
    held = [r for r in rows if r["split"] == "heldout"]
    x = features(model, held, [artifact.layer])[artifact.layer]
    s = _sigmoid(x @ np.array(artifact.weights) + artifact.bias)
    return _auroc(np.array([int(r["label"]) for r in held]), s)


def check_model(artifact: ProbeArtifact, model: LoadedModel) -> None:
    if artifact.provenance.get("weights_sha256") != model.provenance.weights_sha256:
        raise ProbeError(
            f"probe {artifact.name} was trained on {artifact.provenance.get('model_id')} "
            f"(weights {artifact.provenance.get('weights_sha256', '')[:12]}), not on the loaded "
            f"{model.provenance.model_id} (weights {model.provenance.weights_sha256[:12]})"
        )


def score_step(
    artifact: ProbeArtifact, st: StepText, resid: torch.Tensor
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-token scores and the aggregated verdict of one probe on one step; `resid` is [pos, d_model]
    at the probe's layer."""
    w = torch.tensor(artifact.weights, dtype=torch.float64)
    logits = resid.double() @ w + artifact.bias
    idx = aggregate_positions(st)
    score = float(torch.sigmoid(logits[idx].mean()))
    fired = score >= artifact.threshold
    data = {
        "scores": [round(float(v), 6) for v in torch.sigmoid(logits)],
        "score": score,
        "threshold": artifact.threshold,
        "fired": fired,
        "layer": artifact.layer,
        "aggregation": artifact.aggregation,
        "aggregated_positions": idx,
        "artifact": {
            "name": artifact.name,
            "version": artifact.version,
            "sha256": artifact.sha256,
            "heldout_auroc": artifact.heldout_auroc,
        },
    }
    return data, {"score": score, "threshold": artifact.threshold, "fired": fired}
