"""`workbench probes train|report|list`: the shipped linear probes (probes/linear.py) on the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from workbench.cli.common import settings as settings_of
from workbench.errors import WorkbenchError


@click.group("probes")
def probes_group() -> None:
    """The shipped linear probes: train, report held-out AUROC, list."""


@probes_group.command("train")
@click.argument("name")
@click.option(
    "--method",
    type=click.Choice(["logistic_regression", "mean_difference"]),
    default="logistic_regression",
    show_default=True,
)
@click.option(
    "--layer", type=int, help="Read this layer instead of choosing one by leave-one-family-out AUROC."
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Artifact folder [probes/artifacts]."
)
@click.pass_context
def probes_train(ctx: click.Context, name: str, method: str, layer: int | None, out: Path | None) -> None:
    """Rebuild one probe artifact from its dataset in probes/datasets (a few minutes on 2 cores)."""
    from probes.linear import ARTIFACTS, PROBES, save_artifact, train_probe
    from probes.models import load_model

    if name not in PROBES:
        raise WorkbenchError(f"unknown probe {name!r}; known: {', '.join(sorted(PROBES))}")
    settings = settings_of(ctx)
    model = load_model(settings.probe_model, Path(settings.data_dir), settings.probe_threads)
    artifact = train_probe(
        model,
        name,
        method=method,
        layer=layer,
        progress=lambda m: click.echo(m, err=True),
        cache_dir=Path(settings.data_dir) / "probe_features",
    )
    path = save_artifact(artifact, out or ARTIFACTS)
    click.echo(
        f"{name}: layers {'+'.join(map(str, artifact.read_layers))}, {method}, "
        f"held-out AUROC {artifact.heldout_auroc:.3f} "
        f"(families {', '.join(artifact.families['heldout'])}), threshold {artifact.threshold:.4f} "
        f"at {artifact.fpr_target:.0%} FPR -> {path}"
    )


@probes_group.command("report")
@click.option("--recompute", is_flag=True, help="Also recompute each held-out AUROC with the model (slower).")
@click.option(
    "--samples",
    "with_samples",
    is_flag=True,
    help="Also score the sample incidents' labelled steps (blind; forward passes unless cached).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def probes_report(ctx: click.Context, recompute: bool, with_samples: bool, as_json: bool) -> None:
    """The held-out AUROC table of the shipped probes (families never seen in training)."""
    from probes.linear import heldout_auroc, load_artifacts
    from probes.models import LoadedModel, load_model
    from probes.sample_scores import NOT_LOADED, not_computed, score_samples

    artifacts = load_artifacts()
    if not artifacts:
        raise WorkbenchError("no probe artifacts; run `workbench probes train NAME`")
    settings = settings_of(ctx)
    cache = Path(settings.data_dir) / "probe_features"

    def model() -> LoadedModel:
        return load_model(settings.probe_model, Path(settings.data_dir), settings.probe_threads)

    again: dict[str, float] = {}
    if recompute:
        again = {a.name: heldout_auroc(model(), a, cache) for a in artifacts}
    samples: dict[str, dict[str, Any]] = {}
    if with_samples:
        samples = score_samples(artifacts, cache, model)
    rows: list[dict[str, Any]] = [
        {
            **a.report(),
            "recomputed_auroc": again.get(a.name),
            "samples": samples.get(a.name, not_computed(f"{NOT_LOADED} (pass --samples)")),
        }
        for a in artifacts
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(
        f"{'probe':<16} {'layers':>8} {'method':<20} {'held-out AUROC':>14} {'external':>8} {'TPR@thr':>8} "
        f"{'threshold':>9} {'controls':>8}  held-out families"
    )
    for r in rows:
        auroc = f"{r['heldout_auroc']:.3f}"
        if r["recomputed_auroc"] is not None:
            auroc += f" ({r['recomputed_auroc']:.3f})"
        tpr = r["tpr_at_threshold"]
        ext = "n/a" if r["external_auroc"] is None else f"{r['external_auroc']:.3f}"
        click.echo(
            f"{r['probe']:<16} {'+'.join(map(str, r['layers'])):>8} {r['method']:<20} {auroc:>14} {ext:>8} "
            f"{('n/a' if math.isnan(tpr) else f'{tpr:.2f}'):>8} {r['threshold']:>9.4f} "
            f"{r['counts'].get('control', 0):>8}  "
            f"{', '.join(r['heldout_families'])}"
        )
    if with_samples:
        _echo_samples(rows)


def _echo_samples(rows: list[dict[str, Any]]) -> None:
    """The blind figures on the sample incidents' steps, and which steps fired."""
    click.echo("\nsample incidents' steps (probes/datasets/samples.jsonl; blind, our labels):")
    for r in rows:
        s = r["samples"]
        if not s["computed"]:
            click.echo(f"{r['probe']:<16} {s['reason']}")
            continue
        (pos, n_pos), (neg, n_neg) = s["counts"].items()
        figures = ", ".join(
            f"{name} {_figure(s[key] if key == 'auroc' else s['rates'][key], s['intervals'][key])}"
            for name, key in (("AUROC", "auroc"), ("TPR", "tpr"), ("FPR", "fpr"))
        )
        fired = [
            f"{x['sample']} {x['step']}" + ("" if x["label"] else " (0)") for x in s["steps"] if x["fired"]
        ]
        click.echo(
            f"{r['probe']:<16} {n_pos} {pos}, {n_neg} {neg}: {figures}; fired on "
            + (", ".join(fired) if fired else "none")
        )


def _figure(value: float | None, interval: list[float | None]) -> str:
    if value is None:
        return "n/a"
    lo, hi = interval
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{value:.3f}"


@probes_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def probes_list(as_json: bool) -> None:
    """The shipped probe artifacts: what they detect, version, hash, the model they were trained on."""
    from probes.linear import load_artifacts

    artifacts = load_artifacts()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        **a.summary(),
                        "description": a.description,
                        "layer": a.layer,
                        "layers": a.read_layers,
                        "model": a.provenance.get("model_id"),
                        "weights": a.provenance.get("weights", ""),
                    }
                    for a in artifacts
                ],
                indent=1,
            )
        )
        return
    for a in artifacts:
        click.echo(
            f"{a.name} v{a.version}  sha256 {a.sha256[:16]}…  layers {'+'.join(map(str, a.read_layers))}  "
            f"{a.method}\n"
            f"  detects: {a.description}\n"
            f"  model: {a.provenance.get('model_id')} "
            f"(weights {a.provenance.get('weights_sha256', '')[:16]}…"
            + (f"; {a.provenance['weights']}" if a.provenance.get("weights") else "")
            + f"), trained {a.created_at} on {a.dataset} (sha256 {a.data_sha256[:16]}…)"
        )
