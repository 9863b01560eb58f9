"""Named queries for probe runs and their results (tables from migration 0002).

The contract: anyone may queue a run (status 'queued'); only the probe worker (or the CLI running a job
in-process while no server holds the database) claims it, moves it through 'running' with progress,
writes one `probe_results` row per analysis, and ends it 'done' or 'failed' with an error. Writes take
`store.write_lock` so they never interleave with an ingest batch's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb

from workbench.model import ProbeAnalysis, ProbeResult, ProbeRun, ProbeRunStatus, parse_analyses
from workbench.store import entries, lake_writes
from workbench.store.connection import Store
from workbench.store.lake_lease import Lease, LeaseTable, probe_lease_name

# The record lives in workbench.model (every floor reads runs); re-exported for existing imports.
__all__ = ["ANALYSES", "ProbeRun", "ProbeRunStatus"]

ANALYSES: tuple[ProbeAnalysis, ...] = tuple(ProbeAnalysis)

# Status literals inside SQL come from the enum, so a typo is a NameError, not a query matching nothing.
_QUEUED, _RUNNING = ProbeRunStatus.QUEUED.value, ProbeRunStatus.RUNNING.value
_DONE, _FAILED = ProbeRunStatus.DONE.value, ProbeRunStatus.FAILED.value


_RUN_COLUMNS = (
    "id, trace_id, step_seq, analyses, status, progress, error, params, provenance, created_at, finished_at"
)


def _run(row: Sequence[Any]) -> ProbeRun:
    return ProbeRun(
        id=int(row[0]),
        trace_id=row[1],
        step_seq=int(row[2]),
        analyses=[ProbeAnalysis(a) for a in json.loads(row[3])],
        status=ProbeRunStatus(row[4]),
        progress=float(row[5]),
        error=row[6],
        params=json.loads(row[7]),
        provenance=json.loads(row[8]),
        created_at=row[9],
        finished_at=row[10],
    )


def insert_run(
    store: Store, trace_id: str, step_seq: int, analyses: Sequence[str], params: dict[str, Any] | None = None
) -> int:
    """Queue a probe run; returns its id (in a lake, from this node's slice: DuckLake has no sequences)."""
    chosen = parse_analyses(list(analyses))
    values = [
        trace_id,
        step_seq,
        json.dumps([str(a) for a in chosen]),
        _QUEUED,
        json.dumps(params or {}),
        datetime.now(UTC),
    ]
    columns = "trace_id, step_seq, analyses, status, progress, params, provenance, created_at"

    def work(cur: duckdb.DuckDBPyConnection) -> int:
        if store.is_lake:
            (run_id,) = lake_writes.next_ids(cur, store, ("probe_runs",), 1)
            cur.execute(
                f"INSERT INTO probe_runs (id, {columns}) VALUES (?, ?, ?, ?, ?, 0, ?, '{{}}', ?)",
                [run_id, *values],
            )
            return run_id
        row = cur.execute(
            f"INSERT INTO probe_runs ({columns}) VALUES (?, ?, ?, ?, 0, ?, '{{}}', ?) RETURNING id", values
        ).fetchone()
        assert row is not None
        return int(row[0])

    return lake_writes.atomic(store, work, "queueing a probe run")


def claim_next(store: Store) -> ProbeRun | None:
    """The oldest queued run, now marked 'running'; None when nothing waits.

    The worker polls this twice a second, so the common answer (nothing queued) is a plain read that
    never takes the write lock an ingest commit may be holding.
    """
    cur = store.cursor()
    while True:
        row = cur.execute(
            "SELECT id FROM probe_runs WHERE status = ? ORDER BY created_at, id LIMIT 1", [_QUEUED]
        ).fetchone()
        if row is None:
            return None
        with store.write_lock:
            claimed = cur.execute(
                "UPDATE probe_runs SET status = ?, progress = 0 WHERE id = ? AND status = ? RETURNING id",
                [_RUNNING, row[0], _QUEUED],
            ).fetchall()
        if claimed:
            return get_run(store, int(row[0]))


def claim_next_leased(store: Store, leases: LeaseTable, ttl_s: float) -> tuple[ProbeRun, Lease] | None:
    """In a lake: the oldest queued run this node could lease, now 'running', with its lease (release
    it when the run ends). The lease makes exactly one node run a job; the status check inside the
    claiming transaction makes a run that a lease holder already finished never run twice."""
    queued = store.cursor().execute(
        "SELECT id FROM probe_runs WHERE status = ? ORDER BY created_at, id LIMIT 20", [_QUEUED]
    )
    for (run_id,) in queued.fetchall():
        lease = leases.acquire(probe_lease_name(int(run_id)), ttl_s)
        if lease is None:
            continue  # another node has it
        if claim(store, int(run_id)) is not None:
            run = get_run(store, int(run_id))
            assert run is not None
            return run, lease
        leases.release(lease)
    return None


def claim(store: Store, run_id: int) -> ProbeRun | None:
    """Claim one given queued run (the CLI's in-process path); None if it is not queued."""

    def work(cur: duckdb.DuckDBPyConnection) -> bool:
        row = cur.execute("SELECT status FROM probe_runs WHERE id = ?", [run_id]).fetchone()
        if row is None or row[0] != _QUEUED:
            return False
        cur.execute("UPDATE probe_runs SET status = ?, progress = 0 WHERE id = ?", [_RUNNING, run_id])
        return True

    return get_run(store, run_id) if lake_writes.atomic(store, work, "claiming a probe run") else None


def _update(store: Store, sql: str, params: Sequence[object]) -> None:
    """One UPDATE of a run (in a lake, retried when it loses a race with another node's write)."""
    lake_writes.atomic(store, lambda cur: cur.execute(sql, params), "updating a probe run")


def set_progress(store: Store, run_id: int, progress: float) -> None:
    _update(store, "UPDATE probe_runs SET progress = ? WHERE id = ?", [max(0.0, min(1.0, progress)), run_id])


def set_provenance(store: Store, run_id: int, provenance: dict[str, Any]) -> None:
    _update(store, "UPDATE probe_runs SET provenance = ? WHERE id = ?", [json.dumps(provenance), run_id])


def write_result(store: Store, result: ProbeResult) -> None:
    """Store one analysis' result (replacing an earlier one of the same run and analysis), sealed by a
    'probe-result' ledger entry; a later entry for the same run and analysis supersedes the earlier."""

    def work(cur: duckdb.DuckDBPyConnection) -> None:
        cur.execute(
            "DELETE FROM probe_results WHERE run_id = ? AND analysis = ?", [result.run_id, result.analysis]
        )
        cur.execute(
            "INSERT INTO probe_results VALUES (?, ?, ?, ?)",
            [result.run_id, result.analysis, json.dumps(result.summary), json.dumps(result.data)],
        )
        ref = f"{result.run_id}/{result.analysis}"
        sealed = entries.bodies(
            cur, "probe_results", entries.PROBE_BODY, entries.PROBE_REF, f"{entries.PROBE_REF} = ?", [ref]
        )
        entries.append(cur, [(entries.PROBE_RESULT, ref, sealed[ref])], store)

    lake_writes.atomic(store, work, "writing a probe result")


def finish_run(store: Store, run_id: int, error: str | None = None) -> None:
    """'done' (progress 1) or 'failed' with the error text."""
    if error is None:
        sql = "UPDATE probe_runs SET status = ?, progress = 1, error = NULL, finished_at = ? WHERE id = ?"
        _update(store, sql, [_DONE, datetime.now(UTC), run_id])
    else:
        sql = "UPDATE probe_runs SET status = ?, error = ?, finished_at = ? WHERE id = ?"
        _update(store, sql, [_FAILED, error, datetime.now(UTC), run_id])


def requeue_running(store: Store, leases: LeaseTable | None = None) -> int:
    """Runs left 'running' by a process that died go back to the queue; returns how many. In a lake only
    runs whose lease nobody else holds (a live node is still running those); without leases, none."""
    if store.is_lake:
        if leases is None:
            return 0
        running = store.cursor().execute("SELECT id FROM probe_runs WHERE status = ?", [_RUNNING]).fetchall()
        orphans = [
            int(i) for (i,) in running if leases.holder_of(probe_lease_name(int(i))) in (None, leases.holder)
        ]

        def work(cur: duckdb.DuckDBPyConnection) -> int:
            n = 0
            for run_id in orphans:
                if cur.execute(
                    "SELECT 1 FROM probe_runs WHERE id = ? AND status = ?", [run_id, _RUNNING]
                ).fetchone():
                    cur.execute(
                        "UPDATE probe_runs SET status = ?, progress = 0 WHERE id = ?", [_QUEUED, run_id]
                    )
                    n += 1
            return n

        return lake_writes.atomic(store, work, "requeueing probe runs")
    with store.write_lock:
        rows = (
            store.cursor()
            .execute(
                "UPDATE probe_runs SET status = ?, progress = 0 WHERE status = ? RETURNING id",
                [_QUEUED, _RUNNING],
            )
            .fetchall()
        )
    return len(rows)


def get_run(store: Store, run_id: int) -> ProbeRun | None:
    row = store.cursor().execute(f"SELECT {_RUN_COLUMNS} FROM probe_runs WHERE id = ?", [run_id]).fetchone()
    return _run(row) if row else None


def runs_of_step(store: Store, trace_id: str, step_seq: int) -> list[ProbeRun]:
    """Runs of one step, newest first."""
    rows = (
        store.cursor()
        .execute(
            f"SELECT {_RUN_COLUMNS} FROM probe_runs WHERE trace_id = ? AND step_seq = ? "
            "ORDER BY created_at DESC, id DESC",
            [trace_id, step_seq],
        )
        .fetchall()
    )
    return [_run(r) for r in rows]


def runs_of_trace(store: Store, trace_id: str) -> list[ProbeRun]:
    rows = (
        store.cursor()
        .execute(
            f"SELECT {_RUN_COLUMNS} FROM probe_runs WHERE trace_id = ? ORDER BY created_at, id", [trace_id]
        )
        .fetchall()
    )
    return [_run(r) for r in rows]


def results_of_run(store: Store, run_id: int) -> list[ProbeResult]:
    rows = (
        store.cursor()
        .execute(
            "SELECT run_id, analysis, summary, data FROM probe_results WHERE run_id = ? ORDER BY analysis",
            [run_id],
        )
        .fetchall()
    )
    return [ProbeResult(int(r[0]), r[1], json.loads(r[2]), json.loads(r[3])) for r in rows]


def score_series(store: Store, trace_id: str, probe: str) -> list[tuple[int, float, bool, int]]:
    """(step_seq, score, fired, run_id) of one probe over a trace's steps, the latest done run per step,
    in step start-time order: the line the Probes page draws."""
    rows = (
        store.cursor()
        .execute(
            """
        SELECT r.step_seq, CAST(json_extract(p.summary, '$.score') AS DOUBLE),
               CAST(json_extract(p.summary, '$.fired') AS BOOLEAN), r.id
        FROM probe_runs r
        JOIN probe_results p ON p.run_id = r.id AND p.analysis = ?
        LEFT JOIN steps s ON s.seq = r.step_seq
        WHERE r.trace_id = ? AND r.status = ?
        QUALIFY row_number() OVER (PARTITION BY r.step_seq ORDER BY r.created_at DESC, r.id DESC) = 1
        ORDER BY s.start_time_ns, r.step_seq
        """,
            ["probe:" + probe, trace_id, _DONE],
        )
        .fetchall()
    )
    return [(int(r[0]), float(r[1]), bool(r[2]), int(r[3])) for r in rows]


def queue_reasoning_steps(
    store: Store, trace_id: str, analyses: Sequence[str] = (ProbeAnalysis.PROBES,)
) -> list[int]:
    """Queue one run per step of the trace that carries a scratchpad, in time order: what the Probes
    page needs to draw a probe's score as a line over the trace's reasoning. Returns the run ids."""
    seqs = [
        int(r[0])
        for r in store.cursor()
        .execute(
            "SELECT seq FROM steps WHERE trace_id = ? AND coalesce(reasoning_text, '') <> '' "
            "ORDER BY start_time_ns, seq",
            [trace_id],
        )
        .fetchall()
    ]
    return [insert_run(store, trace_id, seq, analyses) for seq in seqs]
