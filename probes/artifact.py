"""A trained probe as a governed artifact: the direction, the layers it reads, its threshold, and every
figure an auditor needs to trust it (held-out and external AUROC and rates with their intervals, the
hash of the exact training data, the model's provenance), written as JSON in probes/artifacts/.

Why its own module: the artifact is read by the runner, the CLI and the report without training; the
training code (probes/linear.py) stays under the size a reader can hold.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


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
    external_auroc: float | None = None  # on the held-out AgentDojo suites; None without external labels
    # 95% bootstrap intervals, and the rates at the threshold: heldout_auroc, external_auroc,
    # heldout_tpr, heldout_fpr, external_tpr, control_fpr (calibration set), external_fpr (unseen benign)
    intervals: dict[str, list[float]] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    token_threshold_logit: float = 0.0  # per-token threshold: 99th percentile of benign token logits
    token_scale: float = 1.0  # spread (std) of benign token logits: the unit of token_relative
    # The layers the head reads, their residuals concatenated in this order (weights has d_model per
    # layer); empty means [layer] alone, as every artifact before multi-layer heads was.
    layers: list[int] = field(default_factory=list)

    @property
    def read_layers(self) -> list[int]:
        """The layers whose residual streams, concatenated, the weights apply to."""
        return list(self.layers) or [self.layer]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def report(self) -> dict[str, Any]:
        """The row `workbench probes report --json` prints: every AUROC and rate with its 95% bootstrap
        interval, where the threshold was set and on how many controls."""
        return {
            "probe": self.name,
            "layer": self.layer,
            "layers": self.read_layers,
            "method": self.method,
            "heldout_auroc": self.heldout_auroc,
            "external_auroc": self.external_auroc,
            "tpr_at_threshold": self.heldout_tpr_at_threshold,
            "threshold": self.threshold,
            "fpr_target": self.fpr_target,
            "rates": self.rates,
            "intervals": self.intervals,
            "heldout_families": self.families["heldout"],
            "external_families": self.families.get("external", []),
            "train_families": self.families["train"],
            "counts": self.counts,
            "data_sha256": self.data_sha256,
            "model": self.provenance,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "heldout_auroc": self.heldout_auroc,
        }


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


def save_artifact(artifact: ProbeArtifact, directory: Path = ARTIFACTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = artifact_path(artifact.name, directory)
    path.write_text(json.dumps(asdict(artifact), indent=1) + "\n", encoding="utf-8")
    return path
