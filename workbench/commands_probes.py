"""`workbench probe` and `workbench probes ...`: the CLI face of probes/ (floor 3, thin).

`workbench probe` runs in this process when no server holds the database: it queues the run like the
UI does, claims it and runs it here, so the result lands in `probe_runs`/`probe_results` exactly as the
worker would write it. While `workbench serve` holds the database (no other process can open it), the
command queues the run through the server's API (`POST /api/v1/probe-runs`), shows the worker's progress
and prints the same summary when the run ends.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from workbench.errors import WorkbenchError

ANALYSIS_CHOICES = ["logit_lens", "attention", "probes", "patching"]


def _settings(ctx: click.Context) -> Any:
    from workbench.settings import Settings

    root = ctx.find_root()
    assert isinstance(root.obj, Settings)
    return root.obj


def _pick_step(steps: list[Any], step: int | None, seq: int | None) -> Any:
    if (step is None) == (seq is None):
        raise WorkbenchError("give exactly one of --step N (1-based, in time order) or --seq SEQ")
    if seq is not None:
        found = next((s for s in steps if s.seq == seq), None)
        if found is None:
            raise WorkbenchError(f"no step with seq {seq} in this trace")
        return found
    assert step is not None
    if not 1 <= step <= len(steps):
        raise WorkbenchError(
            f"--step {step} is out of range: the trace has {len(steps)} steps (1..{len(steps)})"
        )
    return steps[step - 1]


@click.command("probe")
@click.argument("trace_id")
@click.option("--step", type=int, help="Step number, 1-based, in the trace's time order (as `replay` shows).")
@click.option("--seq", type=int, help="The step's ingest sequence number instead of --step.")
@click.option(
    "--analysis",
    "analyses",
    multiple=True,
    type=click.Choice(ANALYSIS_CHOICES),
    help="Repeatable. Default: logit_lens, attention, probes, and patching when --counterfactual is given.",
)
@click.option("--counterfactual", help="An edited scratchpad to patch against the real one.")
@click.option(
    "--patching-method",
    type=click.Choice(["attribution", "exact"]),
    default="attribution",
    show_default=True,
    help="attribution: every layer and position from one backward pass; "
    "exact: one forward per cell, coarse grid.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: the run and every result.")
@click.pass_context
def probe(
    ctx: click.Context,
    trace_id: str,
    step: int | None,
    seq: int | None,
    analyses: tuple[str, ...],
    counterfactual: str | None,
    patching_method: str,
    as_json: bool,
) -> None:
    """Look inside one step: logit lens, attention of the action, linear probes' per-token scores,
    activation patching against a counterfactual scratchpad. Results are stored with the run."""
    from workbench.server import running_server
    from workbench.store import probes as probe_store
    from workbench.store import queries
    from workbench.store.connection import Store

    settings = _settings(ctx)
    server = running_server(settings)
    chosen = list(analyses) or ["logit_lens", "attention", "probes"] + (
        ["patching"] if counterfactual else []
    )
    params: dict[str, Any] = {"patching_method": patching_method}
    if counterfactual is not None:
        params["counterfactual_reasoning"] = counterfactual
    if "patching" in chosen and not (counterfactual or "").strip():
        raise WorkbenchError("--analysis patching needs --counterfactual TEXT (the edited scratchpad)")

    if server is not None and Path(server.db) == settings.db_path.resolve():
        body: dict[str, Any] = {"trace_id": trace_id, "analyses": chosen, "params": params}
        if (step is None) == (seq is None):
            raise WorkbenchError("give exactly one of --step N (1-based, in time order) or --seq SEQ")
        body.update({"step": step} if step is not None else {"step_seq": seq})
        done, results, target = _probe_through_server(server, settings, body, show_progress=not as_json)
        _emit(done, results, target, as_json)
        return

    from probes.models import load_model
    from probes.worker import execute_run

    with Store(settings.db_path) as store:
        full = queries.resolve_trace_id(store, trace_id)
        steps = queries.trace_steps(store, full)
        target = _pick_step(steps, step, seq)
        run_id = probe_store.insert_run(store, full, target.seq, chosen, params)
        run = probe_store.claim(store, run_id)
        assert run is not None
        try:
            model = load_model(settings.probe_model, Path(settings.data_dir), settings.probe_threads)
        except WorkbenchError as exc:
            probe_store.finish_run(store, run_id, error=str(exc))
            raise
        execute_run(store, run, model, settings)
        done = probe_store.get_run(store, run_id)
        results = probe_store.results_of_run(store, run_id)
    assert done is not None
    _emit(done, results, target, as_json)


def _fields(run: Any) -> dict[str, Any]:
    """A local ProbeRun (dataclass) or a run read from the server's API (namespace) as a dict."""
    if dataclasses.is_dataclass(run) and not isinstance(run, type):
        return dataclasses.asdict(run)
    return dict(vars(run))


def _emit(done: Any, results: list[Any], target: Any, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run": {k: (str(v) if k.endswith("_at") else v) for k, v in _fields(done).items()},
                    "results": [
                        {"analysis": r.analysis, "summary": r.summary, "data": r.data} for r in results
                    ],
                },
                indent=1,
            )
        )
    else:
        click.echo(render_run(done, results, target))
    if done.status != "done":
        raise WorkbenchError(f"probe run {done.id} failed: {done.error}")


POLL_S = 0.5


def _api(server: Any, settings: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to the server's API; refusals become one-line WorkbenchErrors naming the server."""
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if settings.auth_token:
        headers["Authorization"] = f"Bearer {settings.auth_token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{server.http_url}/api/v1{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", "")
        except (ValueError, AttributeError):
            message = ""
        if exc.code == 401:
            message = "it requires a bearer token: set WORKBENCH_AUTH_TOKEN to the server's token"
        raise WorkbenchError(f"workbench serve (PID {server.pid}) refused the probe: {message}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WorkbenchError(
            f"workbench serve (PID {server.pid}) holds {settings.db_path} but its API at {server.http_url} "
            f"cannot be reached: {reason}"
        ) from exc


def _probe_through_server(
    server: Any, settings: Any, body: dict[str, Any], show_progress: bool
) -> tuple[Any, list[Any], Any]:
    """Queue the run on the server, follow its progress until it ends; (run, results, step)."""
    from tqdm import tqdm

    from workbench.model import ProbeResult

    queued = _api(server, settings, "POST", "/probe-runs", body)
    run_id = int(queued["id"])
    step = queued["step"]
    bar = tqdm(
        total=100,
        desc=f"probe run {run_id} (server PID {server.pid})",
        unit="%",
        file=sys.stderr,
        disable=not show_progress,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
    )
    try:
        while True:
            got = _api(server, settings, "GET", f"/probe-runs/{run_id}")
            bar.n = round(100 * float(got["progress"]))
            bar.set_postfix_str(got["status"])
            if got["status"] in ("done", "failed"):
                break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        bar.close()
        raise WorkbenchError(
            f"stopped waiting; probe run {run_id} goes on in the server (the replay's Probes pane shows it)"
        ) from None
    bar.close()
    done = SimpleNamespace(**{k: v for k, v in got.items() if k not in ("results", "step")})
    results = [ProbeResult(run_id, r["analysis"], r["summary"], r["data"]) for r in got["results"]]
    target = SimpleNamespace(seq=step["seq"], step=SimpleNamespace(kind=step["kind"], name=step["name"]))
    return done, results, target


def render_run(run: Any, results: list[Any], target: Any) -> str:
    """A readable summary of one probe run for the terminal."""
    s = target.step
    lines = [
        f"probe run {run.id}: trace {run.trace_id[:16]}… step seq {run.step_seq} ({s.kind}, {s.name})  "
        f"{run.status}",
    ]
    p = run.provenance
    if p:
        lines.append(
            f"model {p.get('model_id')}  weights sha256 {str(p.get('weights_sha256'))[:16]}…  "
            f"TransformerLens {p.get('transformer_lens_version')} ({p.get('mode')})  "
            f"{p.get('dtype')} on {p.get('device')}"
        )
    by = {r.analysis: r for r in results}
    first = next(iter(by.values()), None)
    if first is not None:
        d = first.data
        lines.append(
            f"read {len(d['tokens'])} tokens; action token {d['action_token']!r} "
            f"predicted at position {d['action_position']}"
        )
    if "logit_lens" in by:
        r = by["logit_lens"]
        d = r.data
        ranks = d["target_rank"]
        picks = sorted({0, len(ranks) // 4, len(ranks) // 2, 3 * len(ranks) // 4, len(ranks) - 1})
        lines.append("")
        lines.append(
            f"logit lens: target {d['target_token']!r}; "
            f"first layer where it is top-1: {r.summary['first_layer_top1']}"
        )
        at = d["positions"].index(d["action_position"])
        for i in picks:
            top = ", ".join(f"{t!r} {p_:.2f}" for t, p_ in d["top_tokens"][i][at][:3])
            lines.append(
                f"  layer {d['layers'][i]:>2}: rank {ranks[i]:>5}  p={d['target_prob'][i]:.4f}   top: {top}"
            )
    if "attention" in by:
        r = by["attention"]
        top = ", ".join(f"{t!r} {w:.3f}" for t, w in r.summary["top_tokens"])
        lines += ["", f"attention of the action position (last layers, mean over heads): {top}"]
    for name, r in by.items():
        if not name.startswith("probe:"):
            continue
        d = r.data
        verdict = "FIRED" if d["fired"] else "quiet"
        lines += [
            "",
            f"{name}: score {d['score']:.3f} (threshold {d['threshold']:.3f}, layer {d['layer']}) {verdict}",
        ]
        lines.append("  " + _top_words(d))
    if "patching" in by:
        r = by["patching"]
        d = r.data
        lines += [
            "",
            f"patching ({d['method']}): metric {d['metric']}",
            f"  real {d['clean_value']:.3f}  counterfactual {d['corrupt_value']:.3f}; "
            "largest effect at layer "
            f"{r.summary['max_effect_layer']}, position {r.summary['max_effect_position']} "
            f"({d['tokens'][r.summary['max_effect_position']]!r})",
        ]
    if run.error:
        lines += ["", f"error: {run.error}"]
    return "\n".join(lines)


def _top_words(data: dict[str, Any], k: int = 6) -> str:
    """The step's words with the highest per-token probe scores."""
    spans = data["char_spans"]
    text = data["step_text"]
    scored = [(sc, i) for i, sc in enumerate(data["scores"]) if spans[i] is not None]
    scored.sort(reverse=True)
    words = [f"{text[spans[i][0] : spans[i][1]]!r} {sc:.2f}" for sc, i in scored[:k]]
    return "highest tokens: " + ", ".join(words)


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
    settings = _settings(ctx)
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
        f"{name}: layer {artifact.layer}, {method}, held-out AUROC {artifact.heldout_auroc:.3f} "
        f"(families {', '.join(artifact.families['heldout'])}), threshold {artifact.threshold:.4f} "
        f"at {artifact.fpr_target:.0%} FPR -> {path}"
    )


@probes_group.command("report")
@click.option("--recompute", is_flag=True, help="Also recompute each held-out AUROC with the model (slower).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def probes_report(ctx: click.Context, recompute: bool, as_json: bool) -> None:
    """The held-out AUROC table of the shipped probes (families never seen in training)."""
    from probes.linear import heldout_auroc, load_artifacts

    artifacts = load_artifacts()
    if not artifacts:
        raise WorkbenchError("no probe artifacts; run `workbench probes train NAME`")
    again: dict[str, float] = {}
    if recompute:
        from probes.models import load_model

        settings = _settings(ctx)
        model = load_model(settings.probe_model, Path(settings.data_dir), settings.probe_threads)
        cache = Path(settings.data_dir) / "probe_features"
        again = {a.name: heldout_auroc(model, a, cache) for a in artifacts}
    rows: list[dict[str, Any]] = [{**a.report(), "recomputed_auroc": again.get(a.name)} for a in artifacts]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(
        f"{'probe':<16} {'layer':>5} {'method':<20} {'held-out AUROC':>14} {'external':>8} {'TPR@thr':>8} "
        f"{'threshold':>9} {'controls':>8}  held-out families"
    )
    for r in rows:
        auroc = f"{r['heldout_auroc']:.3f}"
        if r["recomputed_auroc"] is not None:
            auroc += f" ({r['recomputed_auroc']:.3f})"
        tpr = r["tpr_at_threshold"]
        ext = "n/a" if r["external_auroc"] is None else f"{r['external_auroc']:.3f}"
        click.echo(
            f"{r['probe']:<16} {r['layer']:>5} {r['method']:<20} {auroc:>14} {ext:>8} "
            f"{('n/a' if math.isnan(tpr) else f'{tpr:.2f}'):>8} {r['threshold']:>9.4f} "
            f"{r['counts'].get('control', 0):>8}  "
            f"{', '.join(r['heldout_families'])}"
        )


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
                        "model": a.provenance.get("model_id"),
                    }
                    for a in artifacts
                ],
                indent=1,
            )
        )
        return
    for a in artifacts:
        click.echo(
            f"{a.name} v{a.version}  sha256 {a.sha256[:16]}…  layer {a.layer}  {a.method}\n"
            f"  detects: {a.description}\n"
            f"  model: {a.provenance.get('model_id')} "
            f"(weights {a.provenance.get('weights_sha256', '')[:16]}…), "
            f"trained {a.created_at} on {a.dataset} (sha256 {a.data_sha256[:16]}…)"
        )


def register(cli: click.Group) -> None:
    cli.add_command(probe)
    cli.add_command(probes_group)
