"""The half of `ledger verify` that covers what investigators read beyond the raw spans.

Steps: re-derived from the sealed canonical bytes (the `renormalize` path, in memory) and compared
field by field; the first difference is named by trace, step number as the UI shows it (1-based in the
trace's start-time order, ties by ingest order) and field. Which spans get a step is itself derived:
the first span stored with a (trace id, span id) has one, a conflicting later version has none.

Findings, annotations and probe results: the second chain (`ledger_entries`) is recomputed, then every
sealed row must be present with the field digests its entry recorded, and every row must be sealed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from workbench.model import Step
from workbench.store import entries, ledger
from workbench.store.batch import STEP_COLUMNS
from workbench.store.connection import Store

# (canonical bytes, the span's stored truncations JSON) -> the step the normalizer derives today.
StepDeriver = Callable[[bytes, object], Step]

Problems = list[tuple[int, str]]


def conflicting_versions(store: Store) -> set[int]:
    """Seqs of spans stored after another span with the same (trace id, span id): they have no step."""
    rows = store.cursor().execute(
        "SELECT s.seq FROM spans s WHERE EXISTS (SELECT 1 FROM spans o"
        " WHERE o.span_id = s.span_id AND o.trace_id = s.trace_id AND o.seq < s.seq)"
    )
    return {int(r[0]) for r in rows.fetchall()}


def exact_copies(store: Store) -> set[int]:
    """Seqs of spans stored after another span with the same (trace id, span id) and the same bytes: a
    redelivery stored again (see `workbench.store.verify.stored_twice`), not a new version."""
    rows = store.cursor().execute(
        "SELECT s.seq FROM spans s JOIN ledger l ON l.seq = s.seq WHERE EXISTS (SELECT 1 FROM spans o"
        " JOIN ledger ol ON ol.seq = o.seq WHERE o.span_id = s.span_id AND o.trace_id = s.trace_id"
        " AND o.seq < s.seq AND ol.digest = l.digest)"
    )
    return {int(r[0]) for r in rows.fetchall()}


def step_number(store: Store, trace_id: str, seq: int, versions: set[int]) -> int:
    """The step's 1-based position in its trace as the UI shows it, from the (verified) span columns."""
    rows = store.cursor().execute(
        "SELECT seq, start_time_ns FROM spans WHERE trace_id = ? ORDER BY start_time_ns, seq", [trace_id]
    )
    order = [int(s) for s, _ in rows.fetchall() if int(s) not in versions]
    return order.index(seq) + 1 if seq in order else 0


def _value(column: str, value: Any) -> Any:
    return str(value) if column == "kind" else value


def verify_steps(
    store: Store,
    derive: StepDeriver,
    normalizer_version: str,
    chunk: int = 2_000,
    max_problems: int = 20,
    seqs: Sequence[int] | None = None,
    seq_range: tuple[int, int] = (1, 2**62),
) -> Problems:
    """Re-derive every step (or only those of `seqs`, an export's selection: re-deriving a whole store
    to sign one trace would cost as much as `renormalize`); (seq, what differs) for the first
    `max_problems` differences."""
    problems: Problems = []
    versions = conflicting_versions(store)
    copies: set[int] | None = None
    cur = store.cursor()

    def problem(seq: int, trace_id: str, what: str) -> None:
        if len(problems) < max_problems:
            n = step_number(store, trace_id, seq, versions)
            problems.append((seq, f"trace {trace_id} step {n} (seq {seq}): {what}"))

    cols = ", ".join(f"st.{c}" for c in STEP_COLUMNS)
    first, last = seq_range  # one lake node's run of seqs (workbench.store.lake_verify), or all of them
    row = cur.execute(
        "SELECT coalesce(max(seq), 0) FROM spans WHERE seq BETWEEN ? AND ?", [first, last]
    ).fetchone()
    top = int(row[0]) if row else 0
    wanted = sorted(set(seqs)) if seqs is not None else None
    windows = (
        [(wanted[i], wanted[min(i + chunk, len(wanted)) - 1]) for i in range(0, len(wanted), chunk)]
        if wanted is not None
        else [(start, start + chunk - 1) for start in range(first, top + 1, chunk)]
    )
    keep = set(wanted) if wanted is not None else None
    for lo, hi in windows:
        rows = cur.execute(
            f"""
            SELECT s.seq, s.trace_id, s.canonical, s.truncations, l.digest, st.seq IS NOT NULL,
                   st.span_digest, st.normalizer_version, {cols}
            FROM spans s LEFT JOIN ledger l ON l.seq = s.seq LEFT JOIN steps st ON st.seq = s.seq
            WHERE s.seq BETWEEN ? AND ? ORDER BY s.seq
            """,
            [lo, hi],
        ).fetchall()
        for r in rows:
            seq, trace_id, canonical, truncations, digest, has_step, span_digest, version = r[:8]
            if keep is not None and seq not in keep:
                continue
            if seq in versions:
                if has_step:
                    if copies is None:  # only once something is wrong: a join over every span
                        copies = exact_copies(store)
                    what = (
                        "a redelivery stored again with the same bytes has a step (counted twice)"
                        if seq in copies
                        else "a conflicting span version has a step (counted twice)"
                    )
                    problem(seq, trace_id, what)
                continue
            if not has_step:
                problem(seq, trace_id, "step deleted (its span has no step)")
                continue
            if digest is not None and (span_digest is None or bytes(span_digest) != bytes(digest)):
                problem(seq, trace_id, "field span_digest does not match the span's ledger digest")
                continue
            if version != normalizer_version:
                problem(
                    seq,
                    trace_id,
                    f"field normalizer_version is {version!r}, this build derives {normalizer_version!r}"
                    " (run `workbench renormalize` if that is expected)",
                )
                continue
            derived = derive(bytes(canonical), truncations)
            for column, stored in zip(STEP_COLUMNS, r[8:], strict=True):
                if _value(column, getattr(derived, column)) != stored:
                    problem(seq, trace_id, f"field {column} differs from the step re-derived from its span")
                    break
    orphans = cur.execute(
        "SELECT seq, trace_id FROM steps WHERE seq BETWEEN ? AND ? AND seq NOT IN (SELECT seq FROM spans)",
        [first, last],
    )
    for seq, trace_id in orphans.fetchall():
        if keep is not None and seq not in keep:
            continue
        if len(problems) < max_problems:
            problems.append((int(seq), f"trace {trace_id} step seq {seq}: step has no span (inserted)"))
    problems.sort(key=lambda p: p[0])
    return problems


_TABLES = {
    "finding": ("findings", entries.FINDING_BODY, "id"),
    "finding-retired": ("findings_retired", entries.FINDING_BODY, "id"),
    "annotation": ("annotations", entries.ANNOTATION_BODY, "id"),
    "probe-result": ("probe_results", entries.PROBE_BODY, entries.PROBE_REF),
}
_NOUN = {
    "finding": "finding",
    "finding-retired": "retired finding",
    "annotation": "annotation",
    "probe-result": "probe result",
}


def verify_entries(store: Store, max_problems: int = 20) -> tuple[int, bytes, Problems]:
    """Recompute the second chain and check every sealed row; returns (entries, chain head, problems).

    In a lake every node keeps its own chain over its own slice of seqs: each is recomputed from the
    genesis hash on its own and its problems name the node and the node-local entry number ("node n2,
    entry 3: ..."). The rows are checked against all chains together, because a node may seal a row
    another created (a rescan on node 2 retires a finding node 1 raised; a probe run queued on one node
    runs on another)."""
    cur = store.cursor()
    # One snapshot for the entries and the rows they seal: read in two statements without it, a finding
    # and its entry committed in between (a node's scanner, while a reader verifies a lake) showed the
    # finding as "not sealed".
    cur.execute("BEGIN TRANSACTION")
    try:
        return _verify_entries(store, cur, max_problems)
    finally:
        cur.execute("ROLLBACK")


def _verify_entries(
    store: Store, cur: duckdb.DuckDBPyConnection, max_problems: int
) -> tuple[int, bytes, Problems]:
    problems: Problems = []
    # kind -> ref -> (seq, body, sealed at, "node n2, " or "", node-local entry number)
    sealed: dict[str, dict[str, tuple[int, str, object, str, int]]] = {kind: {} for kind in _TABLES}
    retired: set[str] = set()
    count, head = 0, ledger.GENESIS

    def problem(seq: int, what: str) -> None:
        if len(problems) < max_problems:
            problems.append((seq, what))

    chains: list[tuple[str | None, int, str]] = [(None, 1, "")]  # (node, its first seq, message prefix)
    if store.is_lake:
        from workbench.store import lake  # floor 1 too; only a lake needs its node list

        chains = [
            (n.node_id, lake.seq_range(n.node_index)[0], f"node {n.node_id}, ") for n in lake.nodes(store)
        ]
    for node_id, first, label in chains:
        chain, expected, chain_ok = ledger.GENESIS, first, True
        for seq, kind, ref, body, d, c, when in entries.iter_entries(cur, node_id=node_id, first=first):
            count += 1
            local = seq - first + 1
            if seq != expected:
                gap = f"{expected - first + 1}..{local - 1}"
                problem(expected, f"{label}entry {gap}: missing (deleted ledger entries)")
                chain_ok = False
            expected = seq + 1
            if entries.entry_digest(kind, ref, body) != d:
                problem(
                    seq, f"{label}entry {local} ({kind} {ref}): altered (digest does not match its content)"
                )
            nxt = ledger.chain_next(chain, d)
            if chain_ok and nxt != c:
                problem(seq, f"{label}entry {local}: chain breaks (entry altered, inserted or reordered)")
                chain_ok = False
            chain = nxt if chain_ok else c
            if kind == entries.FINDING_RETIRED:
                retired.add(ref)
            if kind not in sealed:
                problem(seq, f"{label}entry {local}: unknown kind {kind!r}")
                continue
            earlier = sealed[kind].get(ref)
            if earlier is None or str(earlier[2]) <= str(when):  # a later entry supersedes (probe results)
                sealed[kind][ref] = (seq, body, when, label, local)
        head = chain
    for ref in retired:
        sealed[entries.FINDING].pop(ref, None)
    for kind, (table, body_sql, ref_sql) in _TABLES.items():
        stored = entries.bodies(cur, table, body_sql, ref_sql)
        noun = _NOUN[kind]
        for ref, (seq, body, _when, label, local) in sealed[kind].items():
            if ref not in stored:
                problem(seq, f"{label}{noun} {ref}: deleted (sealed by entry {local})")
            elif stored[ref] != body:
                fields = ", ".join(entries.differing_fields(body, stored[ref]))
                problem(seq, f"{label}{noun} {ref}: field(s) {fields} edited (sealed by entry {local})")
        for ref in stored.keys() - sealed[kind].keys():
            problem(count + 1, f"{noun} {ref}: not sealed in the ledger (inserted or restored by hand)")
    for run_id in runs_with_unsealed_provenance(cur):
        problem(
            count + 1, f"probe run {run_id}: provenance differs from the copy sealed in its results (edited)"
        )
    problems.sort(key=lambda p: p[0])
    return count, head, problems


def runs_with_unsealed_provenance(cur: duckdb.DuckDBPyConnection) -> list[int]:
    """Probe runs whose `provenance` column differs from the copy sealed inside their results' data.

    Why: the run row is not sealed, but the UI's run list, the API and exports show it; since the runner
    seals the model's provenance (model, weights hash, "Q4_1 GGUF de-quantized...") in every result, the
    run's copy is re-derivable, so it is checked rather than trusted. Runs whose results predate sealed
    provenance have nothing to compare with."""
    rows = cur.execute(
        "SELECT r.id, r.provenance, p FROM probe_runs r"
        " JOIN (SELECT run_id, json_extract(data, '$.provenance') AS p FROM probe_results) x"
        " ON x.run_id = r.id WHERE p IS NOT NULL ORDER BY r.id"
    ).fetchall()
    bad: list[int] = []
    for run_id, stored, sealed in rows:
        if json.loads(stored or "{}") != json.loads(sealed) and int(run_id) not in bad:
            bad.append(int(run_id))
    return bad


def truncations_limit(truncations: object) -> int | None:
    """The attribute-length limit in force when a span was ingested, read from its truncation record
    (None: nothing was cut, so no limit applies)."""
    cuts = json.loads(truncations) if isinstance(truncations, str) else truncations
    kept = [c[2] for c in cuts if isinstance(c, list) and len(c) == 3] if isinstance(cuts, list) else []
    return min(kept) if kept and all(isinstance(k, int) for k in kept) else None
