"""Named queries behind the compliance export: the selected spans, their steps and evidence, the ledger.

Why here and not in `workbench.export`: the store holds the only SQL (as it does for the UI pages), so a
schema change is one edit in one floor, and the span selection is the same builder the trace search
uses (`explore_traces.selection_clauses`). What a bundle may hold unbounded (spans, steps) comes back a
chunk at a time, so a 100,000-span export never holds the whole selection in memory; the evidence
tables (findings, annotations, probe runs and results) are small per selection and come back whole, as
dicts with their JSON columns parsed, the way they are written into the bundle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from workbench.store.batch import STEP_COLUMNS
from workbench.store.connection import Store
from workbench.store.explore_traces import selection_clauses

# JSON text columns, parsed for the bundle's JSON lines (a string that is not JSON stays a string error).
_FINDING_JSON = ("taint_chain", "details")
_PROBE_RUN_JSON = ("analyses", "params", "provenance")
_PROBE_RESULT_JSON = ("summary", "data")


@dataclass(frozen=True, slots=True)
class SpanSelection:
    """Which spans an export covers: spans of these traces (every trace when empty) starting in
    [since_ns, until_ns) (unbounded where None)."""

    trace_ids: tuple[str, ...] = ()
    since_ns: int | None = None
    until_ns: int | None = None

    def _where(self) -> tuple[str, list[Any]]:
        clauses, params = selection_clauses(self.trace_ids, self.since_ns, self.until_ns)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _seqs_sql(self) -> tuple[str, list[Any]]:
        """A subquery of the selected spans' seqs, for `seq IN (...)` in the evidence queries."""
        where, params = self._where()
        return f"SELECT seq FROM spans{where}", params


class ExportSpan(NamedTuple):
    """One stored span as a bundle writes it: its place in the ledger and its canonical bytes."""

    seq: int
    trace_id: str
    span_id: str
    start_time_ns: int
    end_time_ns: int
    canonical: bytes


def selected_seqs(store: Store, selection: SpanSelection) -> list[int]:
    """The seqs of the selected spans in ingest order (the ledger's order, so proofs line up)."""
    sql, params = selection._seqs_sql()
    return [int(r[0]) for r in store.cursor().execute(sql + " ORDER BY seq", params).fetchall()]


def ledger_links(store: Store) -> tuple[list[bytes], list[bytes]]:
    """Every ledger entry's span digest and chain value, in seq order (index i is seq i + 1)."""
    rows = store.cursor().execute("SELECT digest, chain FROM ledger ORDER BY seq").fetchall()
    return [bytes(r[0]) for r in rows], [bytes(r[1]) for r in rows]


def stored_checkpoints(store: Store) -> list[tuple[int, bytes]]:
    """(tree size, Merkle root) of every checkpoint the ledger recorded, smallest first."""
    rows = (
        store.cursor()
        .execute("SELECT tree_size, merkle_root FROM ledger_checkpoints ORDER BY tree_size")
        .fetchall()
    )
    return [(int(size), bytes(root)) for size, root in rows]


def iter_spans(store: Store, seqs: Sequence[int], chunk: int) -> Iterator[list[ExportSpan]]:
    """The spans with these seqs (ascending), one list per `chunk` seqs: a range read per chunk that keeps
    only the asked-for seqs, so a sparse selection reads no more than its chunks' ranges."""
    cur = store.cursor()
    for start in range(0, len(seqs), chunk):
        part = seqs[start : start + chunk]
        wanted = set(part)
        rows = cur.execute(
            "SELECT seq, trace_id, span_id, start_time_ns, end_time_ns, canonical FROM spans"
            " WHERE seq BETWEEN ? AND ? ORDER BY seq",
            [part[0], part[-1]],
        ).fetchall()
        yield [
            ExportSpan(int(seq), trace_id, span_id, int(t0), int(t1), bytes(canonical))
            for seq, trace_id, span_id, t0, t1, canonical in rows
            if seq in wanted
        ]


class ExportLog(NamedTuple):
    """One stored log record of a span, as a bundle carries it: its place in the ledger, canonical bytes
    and truncation record (the attribute limit of its ingest, which the join decodes it with)."""

    seq: int
    trace_id: str
    span_id: str
    canonical: bytes
    truncations: str | None


def trace_events(store: Store, trace_ids: Sequence[str]) -> list[ExportLog]:
    """The log records in a span of these traces, in seq order: what ingest joined the traces' steps with
    (workbench.store.log_join.events_of), for a bundle to re-derive them."""
    rows = (
        store.cursor()
        .execute(
            "SELECT seq, trace_id, span_id, canonical, truncations FROM logs"
            " WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) AND span_id <> '' ORDER BY seq",
            [list(trace_ids)],
        )
        .fetchall()
    )
    return [
        ExportLog(int(seq), trace_id, span_id, bytes(canonical), None if cuts is None else str(cuts))
        for seq, trace_id, span_id, canonical, cuts in rows
    ]


def iter_steps(store: Store, selection: SpanSelection, chunk: int) -> Iterator[list[dict[str, Any]]]:
    """The selected spans' steps in seq order, `chunk` rows at a time, each a dict of `seq` and the step
    columns (dicts because the writer masks text in place before it writes them)."""
    sub, params = selection._seqs_sql()
    result = store.cursor().execute(
        f"SELECT seq, {', '.join(STEP_COLUMNS)} FROM steps WHERE seq IN ({sub}) ORDER BY seq", params
    )
    names = [d[0] for d in result.description]
    while batch := result.fetchmany(chunk):
        yield [dict(zip(names, r, strict=True)) for r in batch]


def _records(
    store: Store, sql: str, params: Sequence[Any], json_columns: Sequence[str] = ()
) -> list[dict[str, Any]]:
    result = store.cursor().execute(sql, list(params))
    names = [d[0] for d in result.description]
    rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    for row in rows:
        for column in json_columns:
            if isinstance(row.get(column), str):
                row[column] = orjson.loads(row[column])
    return rows


def selected_findings(store: Store, selection: SpanSelection) -> list[dict[str, Any]]:
    """Findings about the selected steps, by id."""
    sub, params = selection._seqs_sql()
    sql = f"SELECT * FROM findings WHERE step_seq IN ({sub}) ORDER BY id"
    return _records(store, sql, params, _FINDING_JSON)


def selected_annotations(store: Store, selection: SpanSelection) -> list[dict[str, Any]]:
    """Notes on the selected steps, and notes on a whole trace that has a selected span, by id."""
    sub, params = selection._seqs_sql()
    where, _ = selection._where()
    sql = (
        f"SELECT * FROM annotations WHERE step_seq IN ({sub})"
        f" OR (step_seq IS NULL AND trace_id IN (SELECT DISTINCT trace_id FROM spans{where})) ORDER BY id"
    )
    return _records(store, sql, params + params)


def selected_probe_runs(store: Store, selection: SpanSelection) -> list[dict[str, Any]]:
    """Probe runs on the selected steps, by id."""
    sub, params = selection._seqs_sql()
    sql = f"SELECT * FROM probe_runs WHERE step_seq IN ({sub}) ORDER BY id"
    return _records(store, sql, params, _PROBE_RUN_JSON)


def selected_probe_results(store: Store, selection: SpanSelection) -> list[dict[str, Any]]:
    """The results of those probe runs, by run and analysis."""
    sub, params = selection._seqs_sql()
    sql = (
        "SELECT r.* FROM probe_results r JOIN probe_runs p ON p.id = r.run_id"
        f" WHERE p.step_seq IN ({sub}) ORDER BY r.run_id, r.analysis"
    )
    return _records(store, sql, params, _PROBE_RESULT_JSON)


def selected_deployments(store: Store, selection: SpanSelection, limit: int = 100) -> list[tuple[Any, Any]]:
    """Distinct (service name, deployment environment) of the selected spans, as their resources say."""
    where, params = selection._where()
    sql = (
        "SELECT DISTINCT service_name, json_extract_string(resource, '$.\"deployment.environment.name\"')"
        f" FROM spans{where} ORDER BY 1 LIMIT ?"
    )
    return [(r[0], r[1]) for r in store.cursor().execute(sql, [*params, limit]).fetchall()]


def sealing_entries(store: Store, kind: str, refs: Sequence[str]) -> dict[str, tuple[int, str]]:
    """{ref: (entry seq, body)} of the latest ledger entry of `kind` for each ref: the entry that seals
    the row as it is now (a later entry for the same ref supersedes an earlier one)."""
    if not refs:
        return {}
    rows = (
        store.cursor()
        .execute(
            "SELECT ref, seq, CAST(body AS VARCHAR) FROM ledger_entries"
            " WHERE kind = ? AND ref IN (SELECT unnest(?::VARCHAR[]))"
            " QUALIFY row_number() OVER (PARTITION BY ref ORDER BY seq DESC) = 1",
            [kind, list(refs)],
        )
        .fetchall()
    )
    return {str(ref): (int(seq), str(body)) for ref, seq, body in rows}
