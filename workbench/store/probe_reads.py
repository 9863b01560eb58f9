"""Probe runs as the UI sees them: queue one for a step, follow its progress, read its results.

The probe worker inside `workbench serve` owns everything after 'queued' (see the contract in migration
0002); this module only queues (after checks the UI can explain) and reads, with the worker's own run
record. Result summaries are parsed leniently: fields a newer worker adds do not break a list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from workbench.errors import BadInput
from workbench.model import ProbeResult, ProbeRun, ProbeRunStatus, check_probe_request
from workbench.store.connection import Store
from workbench.store.probes import _RUN_COLUMNS, ANALYSES, _run, insert_run, results_of_run

__all__ = ["ANALYSES", "ProbeRun", "latest_results", "queue_probe_run", "recent_runs", "step_runs"]

# The record, the queue insert and the row reader are the probe worker's (workbench.store.probes): one
# definition of a probe run for both sides of the queue.


def _loads(text: Any, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def queue_probe_run(
    store: Store, trace_id: str, step_seq: int, analyses: Sequence[str], params: dict[str, Any] | None = None
) -> int:
    """Insert a 'queued' run for the probe worker and return its id; never waits for the work."""
    if store.read_only:
        raise BadInput("probe run: the database is open read-only; runs are queued inside `workbench serve`")
    try:
        check_probe_request(list(analyses), params)
    except BadInput as exc:
        raise BadInput(f"probe run: {exc}") from None
    cur = store.cursor()
    found = cur.execute("SELECT 1 FROM steps WHERE seq = ? AND trace_id = ?", [step_seq, trace_id]).fetchone()
    if found is None:
        raise BadInput(f"probe run: trace {trace_id} has no step with seq {step_seq}")
    return insert_run(store, trace_id, step_seq, analyses, params)


def step_runs(store: Store, step_seq: int) -> list[ProbeRun]:
    """The runs asked for one step, newest first."""
    rows = (
        store.cursor()
        .execute(f"SELECT {_RUN_COLUMNS} FROM probe_runs WHERE step_seq = ? ORDER BY id DESC", [step_seq])
        .fetchall()
    )
    return [_run(r) for r in rows]


def recent_runs(store: Store, limit: int = 200) -> list[ProbeRun]:
    rows = store.cursor().execute(f"SELECT {_RUN_COLUMNS} FROM probe_runs ORDER BY id DESC LIMIT ?", [limit])
    return [_run(r) for r in rows.fetchall()]


def latest_results(store: Store, step_seq: int) -> tuple[ProbeRun | None, list[ProbeResult]]:
    """The newest finished run of a step with its results (or the newest run of any status, no results)."""
    runs = step_runs(store, step_seq)
    done = next((r for r in runs if r.status == ProbeRunStatus.DONE), None)
    if done is not None:
        return done, results_of_run(store, done.id)
    return (runs[0] if runs else None), []


def probe_artifacts_seen(store: Store) -> pd.DataFrame:
    """The probe artifacts that results name (name, version, sha256, heldout AUROC), with how often used."""
    rows = (
        store.cursor()
        .execute(
            """
            SELECT analysis, data->'$.artifact' AS artifact, count(*) AS results
            FROM probe_results WHERE starts_with(analysis, 'probe:') GROUP BY ALL ORDER BY analysis
            """
        )
        .fetchall()
    )
    out = []
    for analysis, artifact, n in rows:
        a = _loads(artifact, {}) or {}
        out.append(
            {
                "probe": analysis.removeprefix("probe:"),
                "version": a.get("version"),
                "sha256": (a.get("sha256") or "")[:16],
                "heldout_auroc": a.get("heldout_auroc"),
                "results": int(n),
            }
        )
    return pd.DataFrame(out, columns=["probe", "version", "sha256", "heldout_auroc", "results"])


def probe_series(store: Store, trace_id: str, analysis: str) -> pd.DataFrame:
    """One probe's score on every step of a trace it ran on: columns seq, position, score, threshold, fired.

    `position` is the step's 1-based replay index; the newest done run per step wins.
    """
    return (
        store.cursor()
        .execute(
            """
            WITH pos AS (
                SELECT seq, row_number() OVER (ORDER BY start_time_ns, seq) AS position
                FROM steps WHERE trace_id = ?
            ),
            latest AS (
                SELECT r.step_seq, max(r.id) AS run_id FROM probe_runs r
                JOIN probe_results x ON x.run_id = r.id AND x.analysis = ?
                WHERE r.trace_id = ? AND r.status = ? GROUP BY r.step_seq
            )
            SELECT l.step_seq AS seq, pos.position,
                   TRY_CAST(x.summary->>'score' AS DOUBLE) AS score,
                   TRY_CAST(x.summary->>'threshold' AS DOUBLE) AS threshold,
                   TRY_CAST(x.summary->>'fired' AS BOOLEAN) AS fired
            FROM latest l JOIN probe_results x ON x.run_id = l.run_id AND x.analysis = ?
            JOIN pos ON pos.seq = l.step_seq
            ORDER BY pos.position
            """,
            [trace_id, analysis, trace_id, ProbeRunStatus.DONE.value, analysis],
        )
        .df()
    )


def probe_analyses(store: Store, trace_id: str | None = None) -> list[str]:
    """The 'probe:<name>' analyses with results (in one trace, or anywhere)."""
    sql = "SELECT DISTINCT x.analysis FROM probe_results x JOIN probe_runs r ON r.id = x.run_id"
    sql += " WHERE starts_with(x.analysis, 'probe:')" + (" AND r.trace_id = ?" if trace_id else "")
    rows = store.cursor().execute(sql + " ORDER BY 1", [trace_id] if trace_id else []).fetchall()
    return [r[0] for r in rows]
