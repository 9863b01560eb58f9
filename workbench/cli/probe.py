"""`workbench probe`: look inside one step with the probes/ analyses, on the command line.

It runs in this process when no server holds the database: it queues the run like the UI does, claims
it and runs it here, so the result lands in `probe_runs`/`probe_results` exactly as the worker would
write it. While `workbench serve` holds the database (no other process can open it), the command queues
the run through the server's API (`POST /api/v1/probe-runs`), shows the worker's progress and prints
the same summary when the run ends.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from workbench.cli import render
from workbench.cli.common import settings as settings_of
from workbench.errors import WorkbenchError
from workbench.model import ProbeAnalysis, ProbeRun, ProbeRunStatus

if TYPE_CHECKING:
    from workbench.model import ProbeResult, StoredStep
    from workbench.server.client import ServerClient

ANALYSIS_CHOICES = [a.value for a in ProbeAnalysis]
POLL_S = 0.5


def _pick_step(steps: list[StoredStep], step: int | None, seq: int | None) -> StoredStep:
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
    from workbench.server.client import connect
    from workbench.store import probes as probe_store
    from workbench.store import queries
    from workbench.store.connection import Store

    settings = settings_of(ctx)
    default = [ProbeAnalysis.LOGIT_LENS, ProbeAnalysis.ATTENTION, ProbeAnalysis.PROBES]
    chosen = list(analyses) or default + ([ProbeAnalysis.PATCHING] if counterfactual else [])
    params: dict[str, Any] = {"patching_method": patching_method}
    if counterfactual is not None:
        params["counterfactual_reasoning"] = counterfactual
    if ProbeAnalysis.PATCHING in chosen and not (counterfactual or "").strip():
        raise WorkbenchError("--analysis patching needs --counterfactual TEXT (the edited scratchpad)")

    client = connect(settings)
    if client is not None:
        if (step is None) == (seq is None):
            raise WorkbenchError("give exactly one of --step N (1-based, in time order) or --seq SEQ")
        body: dict[str, Any] = {"trace_id": trace_id, "analyses": chosen, "params": params}
        body.update({"step": step} if step is not None else {"step_seq": seq})
        with client:
            run, results, kind, name = _probe_through_server(client, body, show_progress=not as_json)
        _emit(run, results, kind, name, as_json)
        return

    from probes.models import load_model
    from probes.worker import execute_run

    with Store(settings.db_path) as store:
        full = queries.resolve_trace_id(store, trace_id)
        target = _pick_step(queries.trace_steps(store, full), step, seq)
        run_id = probe_store.insert_run(store, full, target.seq, chosen, params)
        claimed = probe_store.claim(store, run_id)
        assert claimed is not None
        try:
            model = load_model(settings.probe_model, Path(settings.data_dir), settings.probe_threads)
        except WorkbenchError as exc:
            probe_store.finish_run(store, run_id, error=str(exc))
            raise
        execute_run(store, claimed, model, settings)
        done = probe_store.get_run(store, run_id)
        results = probe_store.results_of_run(store, run_id)
    assert done is not None
    _emit(done, results, str(target.step.kind), target.step.name, as_json)


def _emit(run: ProbeRun, results: list[ProbeResult], kind: str, name: str, as_json: bool) -> None:
    if as_json:
        fields = dataclasses.asdict(run)
        click.echo(
            json.dumps(
                {
                    "run": {k: (str(v) if k.endswith("_at") else v) for k, v in fields.items()},
                    "results": [
                        {"analysis": r.analysis, "summary": r.summary, "data": r.data} for r in results
                    ],
                },
                indent=1,
            )
        )
    else:
        click.echo(render.probe_run(run, results, kind, name))
    if run.status != ProbeRunStatus.DONE:
        raise WorkbenchError(f"probe run {run.id} failed: {run.error}")


def _probe_through_server(
    client: ServerClient, body: dict[str, Any], show_progress: bool
) -> tuple[ProbeRun, list[ProbeResult], str, str]:
    """Queue the run on the server, follow its progress until it ends; (run, results, step kind, name)."""
    from tqdm import tqdm

    from workbench.model import ProbeResult

    queued = client.post_json("/probe-runs", body)
    run_id = int(queued["id"])
    step = queued["step"]
    bar = tqdm(
        total=100,
        desc=f"probe run {run_id} (server PID {client.info.pid})",
        unit="%",
        file=sys.stderr,
        disable=not show_progress,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
    )
    try:
        while True:
            got = client.get_json(f"/probe-runs/{run_id}")
            bar.n = round(100 * float(got["progress"]))
            bar.set_postfix_str(got["status"])
            if ProbeRunStatus(got["status"]).finished:
                break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        bar.close()
        raise WorkbenchError(
            f"stopped waiting; probe run {run_id} goes on in the server (the replay's Probes pane shows it)"
        ) from None
    bar.close()
    results = [ProbeResult(run_id, r["analysis"], r["summary"], r["data"]) for r in got["results"]]
    return ProbeRun.from_json(got), results, str(step["kind"]), str(step["name"])
