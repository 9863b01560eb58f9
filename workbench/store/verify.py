"""`workbench ledger verify`: walk spans, log records and ledger in ingest order and name the first thing
that is off.

Checks, per sequence number: the ledger is gapless; every ledger entry has its span or its log record
(exactly one of them) and every span and log record its ledger entry; SHA-256 of the canonical bytes
equals the recorded digest; the chain recomputes; optionally the queryable columns still say what the
canonical bytes say. Then every checkpoint's Merkle root and chain head recompute. Memory stays
bounded: rows are read a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import duckdb

from workbench.store import ledger, verify_derived
from workbench.store.connection import Store
from workbench.store.verify_derived import StepDeriver

# Given (seq, canonical bytes, stored column values), say what differs, or None.
RowCheck = Callable[[int, bytes, dict[str, object]], str | None]

# The columns of a log record a `log_check` is given (collectors.integrity.stored_log_columns_check).
LOG_CHECK_COLUMNS = (
    "trace_id span_id time_ns observed_time_ns severity_number severity_text event_name body attributes "
    "truncations"
).split()


def _log_values(cur: duckdb.DuckDBPyConnection, seq: int) -> dict[str, object]:
    """One log record's checked columns (read one by one: only when a log check is asked for)."""
    row = cur.execute(f"SELECT {', '.join(LOG_CHECK_COLUMNS)} FROM logs WHERE seq = ?", [seq]).fetchone()
    return dict(zip(LOG_CHECK_COLUMNS, row or (None,) * len(LOG_CHECK_COLUMNS), strict=True))


ROW_CHECK_COLUMNS = (
    "trace_id span_id parent_span_id name kind start_time_ns end_time_ns status_code status_message "
    "attributes events truncations"
).split()


@dataclass
class VerifyReport:
    checked: int = 0
    checkpoints: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (seq, what is wrong)
    chain_head: bytes = ledger.GENESIS
    # Steps re-derived from the spans, and the second chain over findings, annotations, probe results.
    step_problems: list[tuple[int, str]] = field(default_factory=list)
    entries: int = 0
    entries_head: bytes = ledger.GENESIS
    entry_problems: list[tuple[int, str]] = field(default_factory=list)
    # Records sealed more than once with the same bytes (see `stored_twice`): a notice, not a failure.
    stored_twice: int = 0
    stored_twice_examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.problems or self.step_problems or self.entry_problems)

    @property
    def all_problems(self) -> list[str]:
        """Every problem, span ledger first, then re-derived steps, then the entries chain."""
        return [p for _, p in self.problems + self.step_problems + self.entry_problems]

    @property
    def first_bad_seq(self) -> int | None:
        return min(seq for seq, _ in self.problems) if self.problems else None


def stored_twice(
    store: Store, limit: int = 20, name_seq: Callable[[int], str] = str
) -> tuple[int, list[str]]:
    """(how many extra copies, up to `limit` descriptions) of spans and log records stored more than once
    with the same bytes: the same trace id, span id and digest under two seqs, or a log record's digest
    under two seqs.

    Why verify looks: a redelivery must never be stored again, and a lake before the fix in
    `SpanWriter._write` could store one twice when two nodes received it at the same moment (each looked
    it up before its transaction began). Both copies are sealed and intact, so the count is reported
    beside the verdict, not as a broken ledger; a copy that also got a step fails the step check
    (`verify_derived.verify_steps`: counted twice), and this says why. A span resent with other bytes
    is a version (`version_of`), not a copy, and is not counted.
    `name_seq` writes a seq as the report shows it (a lake names the node).
    """
    cur = store.cursor()
    spans = cur.execute(
        "SELECT s.trace_id, s.span_id, list(s.seq ORDER BY s.seq) FROM spans s JOIN ledger l ON l.seq = s.seq"
        " GROUP BY s.trace_id, s.span_id, l.digest HAVING count(*) > 1 ORDER BY min(s.seq)"
    ).fetchall()
    logs = cur.execute(
        "SELECT list(seq ORDER BY seq) FROM logs GROUP BY digest HAVING count(*) > 1 ORDER BY min(seq)"
    ).fetchall()
    extra = sum(len(seqs) - 1 for *_, seqs in spans) + sum(len(seqs) - 1 for (seqs,) in logs)
    examples = [
        f"span {span_id} of trace {trace_id} stored {len(seqs)} times with the same bytes, seqs "
        + ", ".join(map(name_seq, seqs))
        for trace_id, span_id, seqs in spans[:limit]
    ]
    examples += [
        f"log record stored {len(seqs)} times with the same bytes, seqs " + ", ".join(map(name_seq, seqs))
        for (seqs,) in logs[: max(0, limit - len(examples))]
    ]
    return extra, examples


def verify_ledger(
    store: Store,
    row_check: RowCheck | None = None,
    chunk: int = 5_000,
    max_problems: int = 20,
    *,
    derive: StepDeriver | None = None,
    normalizer_version: str = "",
    derive_seqs: Sequence[int] | None = None,
    log_check: RowCheck | None = None,
    seq_range: tuple[int, int] | None = None,
) -> VerifyReport:
    """Recompute the ledger from the stored spans; problems are reported in sequence order. With
    `derive`, every step is re-derived and compared; the second chain is always checked.

    With `seq_range`, only that run of seqs is walked, as one chain from the genesis hash (one lake
    node's ledger, `workbench.store.lake_verify`), and the second chain is left to the caller."""
    report = VerifyReport()
    lo, hi = seq_range or (1, 2**62)
    if seq_range is None:
        report.entries, report.entries_head, report.entry_problems = verify_derived.verify_entries(
            store, max_problems
        )
        report.stored_twice, report.stored_twice_examples = stored_twice(store, max_problems)
    if derive is not None:
        report.step_problems = verify_derived.verify_steps(
            store, derive, normalizer_version, max_problems=max_problems, seqs=derive_seqs, seq_range=(lo, hi)
        )
    cur = store.cursor()
    row = cur.execute(
        "SELECT greatest(coalesce((SELECT max(seq) FROM ledger WHERE seq BETWEEN $1 AND $2), 0),"
        " coalesce((SELECT max(seq) FROM spans WHERE seq BETWEEN $1 AND $2), 0),"
        " coalesce((SELECT max(seq) FROM logs WHERE seq BETWEEN $1 AND $2), 0))",
        [lo, hi],
    ).fetchone()
    top = int(row[0]) if row else 0
    checkpoints = {
        int(size): (bytes(root), bytes(head))
        for size, root, head in cur.execute(
            "SELECT tree_size, merkle_root, chain_head FROM ledger_checkpoints"
            " WHERE tree_size BETWEEN ? AND ? ORDER BY tree_size",
            [lo, hi],
        ).fetchall()
    }
    extra_cols = ", " + ", ".join(f"s.{c}" for c in ROW_CHECK_COLUMNS) if row_check else ""
    frontier = ledger.MerkleFrontier()
    chain = ledger.GENESIS
    chain_ok = True

    def problem(seq: int, what: str) -> None:
        if len(report.problems) < max_problems:
            report.problems.append((seq, what))

    for start in range(lo, top + 1, chunk):
        end = min(top, start + chunk - 1)
        rows = cur.execute(
            f"""
            SELECT r.seq, l.seq IS NOT NULL, l.digest, l.chain, s.seq IS NOT NULL, s.canonical,
                   g.seq IS NOT NULL, g.canonical, g.digest {extra_cols}
            FROM range(?, ? + 1) r(seq)
            LEFT JOIN ledger l ON l.seq = r.seq
            LEFT JOIN spans s ON s.seq = r.seq
            LEFT JOIN logs g ON g.seq = r.seq
            ORDER BY r.seq
            """,
            [start, end],
        ).fetchall()
        previous = None
        for r in rows:
            seq, in_ledger, digest_v, chain_v, in_spans, canonical, in_logs, log_canonical, log_digest = r[:9]
            if in_spans and in_logs:
                problem(seq, f"seq {seq}: held by a span and a log record at once (inserted row)")
            elif in_logs:
                in_spans, canonical = True, log_canonical  # checked alike below; columns checked apart
            if seq == previous:  # only possible if someone rebuilt the table without its primary key
                problem(seq, f"seq {seq}: several spans share this sequence number (inserted span)")
                continue
            previous = seq
            report.checked += 1
            if not in_ledger and not in_spans:
                problem(seq, f"seq {seq}: missing from both spans and ledger (deleted rows)")
                chain_ok = False
                continue
            what = "log record" if in_logs else "span"
            if not in_ledger:
                problem(seq, f"seq {seq}: {what} has no ledger entry (inserted {what})")
                chain_ok = False
                continue
            recorded = bytes(digest_v)
            frontier.append(recorded)
            expected_chain = ledger.chain_next(chain, recorded)
            if chain_ok and bytes(chain_v) != expected_chain:
                problem(seq, f"seq {seq}: ledger chain breaks (entry altered, inserted or reordered)")
                chain_ok = False
            chain = bytes(chain_v) if not chain_ok else expected_chain
            if not in_spans:
                problem(seq, f"seq {seq}: span deleted (ledger entry has no span or log record)")
            else:
                if ledger.digest(bytes(canonical)) != recorded:
                    problem(
                        seq, f"seq {seq}: {what} modified (canonical bytes do not match the ledger digest)"
                    )
                elif in_logs:
                    if bytes(log_digest) != recorded:
                        problem(
                            seq, f"seq {seq}: log record modified (its digest column is not the ledger's)"
                        )
                    elif log_check is not None:
                        differs = log_check(seq, bytes(canonical), _log_values(cur, seq))
                        if differs:
                            problem(seq, f"seq {seq}: log record modified ({differs})")
                elif row_check is not None:
                    values = dict(zip(ROW_CHECK_COLUMNS, r[9:], strict=True))
                    differs = row_check(seq, bytes(canonical), values)
                    if differs:
                        problem(seq, f"seq {seq}: span modified ({differs})")
            if seq in checkpoints:
                root, head = checkpoints[seq]
                report.checkpoints += 1
                if frontier.root() != root:
                    problem(seq, f"checkpoint at {seq}: Merkle root does not match the ledger digests")
                if chain_ok and head != expected_chain:
                    problem(seq, f"checkpoint at {seq}: chain head does not match the ledger")
    for size in sorted(checkpoints, reverse=True):
        if size > top:
            problem(
                top + 1,
                f"seq {top + 1}..{size}: covered by the checkpoint at {size}"
                " but no longer exist (tail deleted)",
            )
            break
    report.problems.sort(key=lambda p: p[0])
    report.chain_head = chain
    return report
