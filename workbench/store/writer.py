"""Batched, transactional writes of spans, their steps, log records and their ledger entries.

One call of `SpanWriter.write_batches` is one DuckDB transaction: either every span of the batches,
its step and its ledger entry are committed, or none is. Sequence numbers, the chain head and the
Merkle frontier live in memory and advance only after the commit succeeds, so a failed batch leaves no
gap. The batches arrive as Arrow columns (`workbench.store.batch`), built by whoever decoded them.

Delivery is idempotent: a span whose (trace id, span id, digest) is already stored, or appears earlier
in the same group, is acknowledged and counted but not stored again. A span whose id is stored with a
different digest is kept and sealed as a conflicting version (`version_of`), without a step, so
nothing that reads steps counts it twice; the rules raise `span-rewritten` on it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa

from workbench.model import SpanRecord, Step
from workbench.store import lake_writes, ledger, log_join, trace_commits
from workbench.store.batch import Batch, arrow_stream
from workbench.store.connection import Store
from workbench.store.queries import DELIVERY_COUNTS_SQL


@dataclass
class Written:
    """What one group commit did: the seq range stored, and per batch how many spans were stored and how
    many were redeliveries acknowledged without storing; `traces`: the trace ids of the stored spans and
    log records (those the commit may have changed a finding of)."""

    first: int
    last: int
    stored: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    traces: frozenset[str] = frozenset()


_Key = tuple[str, str]
CHECKPOINT_THRESHOLD = "256MB"
MAX_VACUUM_TASKS = 0  # no row group merging at a checkpoint (see SpanWriter.__init__)


def _known_logs(cur: duckdb.DuckDBPyConnection, digests: list[bytes]) -> set[bytes]:
    """The digests among these that a stored log record already has: an index lookup (logs_digest)."""
    rows = cur.execute(
        "SELECT digest FROM logs WHERE digest IN (SELECT unnest(?::BLOB[]))", [digests]
    ).fetchall()
    return {bytes(r[0]) for r in rows}


class SpanKeys:
    """A hash of every stored (trace id, span id), in memory: which spans of a batch may be stored.

    Why not an index: DuckDB rewrites ART indexes at every checkpoint, which made ingest slow down as
    the store grew (migration 0050). Eight bytes a span (80 MB at 10M spans): a sorted array, plus a set
    of the recent keys merged into it every MERGE_AT keys.
    A hit is only a maybe (hashes collide): `_known` confirms it in the database, so a new span costs
    no query and only a redelivered one costs a scan of the span_id column.
    """

    _HASH_SQL = "SELECT hash(trace_id || ':' || span_id) AS h FROM "
    MERGE_AT = 65_536  # recent keys kept in a set before they join the sorted array

    def __init__(self, cur: duckdb.DuckDBPyConnection) -> None:
        stored = cur.execute(self._HASH_SQL + "spans").fetchnumpy()["h"]
        self._sorted = np.sort(np.asarray(stored, dtype=np.uint64))
        self._recent: set[int] = set()

    @classmethod
    def of(cls, cur: duckdb.DuckDBPyConnection, keys: pa.Table) -> np.ndarray:
        """The hashes of a table with trace_id and span_id columns, in its row order."""
        _wb_keys = arrow_stream(keys)  # noqa: F841 - read by DuckDB's replacement scan
        return np.asarray(cur.execute(cls._HASH_SQL + "_wb_keys").fetchnumpy()["h"], dtype=np.uint64)

    def maybe(self, hashes: np.ndarray) -> np.ndarray:
        """Per hash, whether a stored span may have it: a binary search in the sorted part, a set
        lookup in the recent part (np.isin sorted the whole recent part on every call)."""
        if len(self._sorted):
            at = np.searchsorted(self._sorted, hashes).clip(max=len(self._sorted) - 1)
            hit = self._sorted[at] == hashes
        else:
            hit = np.zeros(len(hashes), bool)
        if self._recent:
            recent = self._recent
            hit |= np.fromiter((h in recent for h in hashes.tolist()), bool, len(hashes))
        return hit

    def add(self, hashes: np.ndarray) -> None:
        self._recent.update(hashes.tolist())
        if len(self._recent) > self.MERGE_AT:
            new = np.sort(np.fromiter(self._recent, np.uint64, len(self._recent)))
            # A merge, not a sort of the whole: O(stored + new), about 80 MB moved at 10M spans.
            self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, new), new)
            self._recent = set()


def _known(cur: duckdb.DuckDBPyConnection, span_ids: list[str]) -> dict[_Key, tuple[int, set[bytes]]]:
    """{(trace id, span id): (seq of the first stored span, digests stored)} for these span ids: a scan
    of the span_id column, so only for ids whose key hash SpanKeys already holds."""
    rows = cur.execute(
        "SELECT s.trace_id, s.span_id, s.seq, l.digest FROM spans s JOIN ledger l ON l.seq = s.seq"
        " WHERE s.span_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY s.seq",
        [span_ids],
    ).fetchall()
    out: dict[_Key, tuple[int, set[bytes]]] = {}
    for trace_id, span_id, seq, d in rows:
        out.setdefault((trace_id, span_id), (int(seq), set()))[1].add(bytes(d))
    return out


def _rows(table: pa.Table, keep: list[int]) -> pa.Table:
    """These rows of the table (indices in increasing order). All of them, the usual case when nothing
    was redelivered, without `take`, which copies every buffer (the spans' canonical bytes and text)."""
    return table if len(keep) == table.num_rows else table.take(pa.array(keep, pa.int64()))


class SpanWriter:
    """Appends batches to the spans, steps, logs and ledger tables; the only writer of those tables.

    Log records take seqs from the same sequence as spans and are sealed in the same ledger; one whose
    canonical bytes are already stored is a redelivery (acknowledged, counted, not stored again).
    """

    def __init__(
        self,
        store: Store,
        checkpoint_interval: int = 10_000,
        normalizer_version: str = "",
        rejoin: log_join.Rejoin | None = None,
    ) -> None:
        self.store = store
        # How a step is re-derived with its GenAI events (collectors.events, passed in by floor 2); None:
        # log records are stored and sealed but never joined (a writer used without the collectors).
        self.rejoin = rejoin
        self.normalizer_version = normalizer_version
        self.checkpoint_interval = max(1, checkpoint_interval)
        self._lock = threading.Lock()
        cur = store.cursor()
        # DuckDB checkpoints when its WAL passes this size (16 MB by default: every few group commits of
        # 3 KB spans), and each checkpoint rewrites the partly filled row groups it appends to, so the
        # CPU per span grew with the fill of the current row group (192 -> 344 ms per 1,000 spans from
        # 50k to 100k stored; flat at 161 -> 152 with 1 GB). 256 MB, not 1 GB: the WAL left at a
        # shutdown is checkpointed then, and a 1 GB one outlasted a graceful stop's 30 s under load.
        # The cost: that much WAL to replay after a crash, and that much more memory before a
        # checkpoint. Nothing acknowledged depends on it: a commit is durable in the WAL.
        if not store.is_lake:
            cur.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            # Each checkpoint starts a new row group, and DuckDB's vacuum then merges the small ones at
            # the end of the table by rewriting them: of every 122,880 spans appended, about 200,000
            # rows were decompressed and compressed again (three checkpoints per row group: about 1 s,
            # then 6-15 s, then 2 s of CPU at 100k-1M stored spans; checkpoints cost 94-119 ms per
            # 1,000 spans against 24-30 without, and the writer on a 1M store 0.62x its speed on a 60k
            # one against 0.93x without: `benchmarks/write_path.py --grow`). Without it a row group
            # holds one checkpoint's spans (~40,000). Row groups whose rows are all deleted (steps
            # rewritten by renormalize) are still dropped; partly deleted ones keep their space.
            cur.execute(f"SET max_vacuum_tasks = {MAX_VACUUM_TASKS}")
        # This store's own run of seqs: all of them in a file; in a lake, this node's slice, so a node
        # that restarts recovers its chain head and frontier from its own entries only.
        lo, hi = self.seq_range = store.seq_range
        row = cur.execute(
            "SELECT seq, chain FROM ledger WHERE seq BETWEEN ? AND ? ORDER BY seq DESC LIMIT 1", [lo, hi]
        ).fetchone()
        self.last_seq: int = row[0] if row else lo - 1
        self.chain_head: bytes = bytes(row[1]) if row else ledger.GENESIS
        # The frontier is rebuilt from the stored digests: O(n) hashing once per process start.
        self.frontier = ledger.MerkleFrontier()
        for (d,) in cur.execute(
            "SELECT digest FROM ledger WHERE seq BETWEEN ? AND ? ORDER BY seq", [lo, hi]
        ).fetchall():
            self.frontier.append(bytes(d))
        (batch,) = cur.execute(
            "SELECT greatest((SELECT coalesce(max(batch_id), ?) FROM spans WHERE seq BETWEEN ? AND ?),"
            " (SELECT coalesce(max(batch_id), ?) FROM logs WHERE seq BETWEEN ? AND ?))",
            [lo - 1, lo, hi, lo - 1, lo, hi],
        ).fetchone() or (lo - 1,)
        self._batch_id = int(batch)
        # Whether a span committed now may have events stored before it (skips a lookup per commit).
        self._has_logs = bool(
            (cur.execute("SELECT count(*) FROM logs WHERE span_id <> ''").fetchone() or (0,))[0]
        )
        # In a lake, other nodes store spans this process never sees, so no memory of keys can say
        # "new": every batch asks the lake (`_write`), whose serialized commits keep the answer true.
        self._keys: SpanKeys | None = None if store.is_lake else SpanKeys(cur)
        # Store-wide delivery counts, kept current in memory so `/health` answers without a query.
        row = cur.execute(DELIVERY_COUNTS_SQL).fetchone()
        self.duplicates_total, self.versions_total = (int(row[0]), int(row[1])) if row else (0, 0)

    def write(self, records: Sequence[SpanRecord], steps: Sequence[Step], source: str) -> tuple[int, int]:
        """Commit one batch of records from one source; returns the (first, last) sequence numbers."""
        return self.write_batches([Batch.of(records, steps)], [source])

    def write_batches(self, batches: Sequence[Batch], sources: Sequence[str]) -> tuple[int, int]:
        """Commit batches, each with the name of where it came from, in one transaction (group commits
        mix requests from several receivers); returns the (first, last) sequence numbers they received."""
        written = self.write_group(batches, sources)
        return written.first, written.last

    def write_group(self, batches: Sequence[Batch], sources: Sequence[str]) -> Written:
        """As write_batches, saying per batch what was stored and what was a redelivery."""
        if len(batches) != len(sources):
            raise ValueError("one source per batch")
        if not sum(len(b) for b in batches):
            return Written(self.last_seq + 1, self.last_seq, [0] * len(batches), [0] * len(batches))
        with self._lock, self.store.write_lock:
            cur = self.store.cursor()
            try:
                if self.store.is_lake:
                    # Another node committed first: redo the whole group (its redelivery lookup too)
                    # against the newer snapshot. Nothing is acknowledged before a commit succeeds.
                    return lake_writes.retrying(lambda: self._write(cur, batches, sources), "group commit")
                return self._write(cur, batches, sources)
            finally:
                cur.close()

    def _write(
        self, cur: duckdb.DuckDBPyConnection, batches: Sequence[Batch], sources: Sequence[str]
    ) -> Written:
        """One group commit, its redelivery lookups inside its transaction. Why inside: in a lake another
        node may commit the same spans between a lookup and the commit; with the lookup in the
        transaction, that commit conflicts with this one (`lake.touch`), which is redone against the
        newer snapshot and finds them. A lookup before BEGIN read an older snapshot than the
        transaction's, and a redelivery to two nodes at once was stored twice."""
        cur.execute("BEGIN TRANSACTION")
        try:
            return self._write_in_transaction(cur, batches, sources)
        except BaseException:
            lake_writes.rollback(cur)
            raise

    def _write_in_transaction(
        self, cur: duckdb.DuckDBPyConnection, batches: Sequence[Batch], sources: Sequence[str]
    ) -> Written:
        first = self.last_seq + 1
        trace_ids = [t for b in batches for t in b.spans.column("trace_id").to_pylist()]
        span_ids = [s for b in batches for s in b.spans.column("span_id").to_pylist()]
        all_digests = [d for b in batches for d in b.digests]
        all_log_digests = [d for b in batches for d in b.log_digests]
        log_trace_ids = [t for b in batches for t in b.logs.column("trace_id").to_pylist()]
        known: dict[_Key, tuple[int, set[bytes]]] = {}
        hashes = np.zeros(0, np.uint64)
        if span_ids and self._keys is None:
            known = _known(cur, sorted(set(span_ids)))
        elif span_ids and self._keys is not None:
            keys = pa.table({"trace_id": trace_ids, "span_id": span_ids})
            hashes = SpanKeys.of(cur, keys)
            maybe = self._keys.maybe(hashes)
            if maybe.any():
                known = _known(cur, sorted({span_ids[i] for i in np.flatnonzero(maybe)}))
        known_logs = _known_logs(cur, list(set(all_log_digests))) if all_log_digests else set()
        # Seqs are handed out batch by batch (a batch's spans, then its log records), so each batch's
        # stored rows are contiguous: the pipeline reports a range per request.
        keep: list[int] = []  # span row indices (over the concatenated batches) that are stored
        span_seqs: list[int] = []
        keep_logs: list[int] = []
        log_seqs: list[int] = []
        digests: list[bytes] = []  # of the stored rows, in seq order
        version_of: list[int | None] = []
        with_step: list[int] = []
        step_seqs: list[int] = []
        stored = [0] * len(batches)
        duplicates = [0] * len(batches)
        redelivered: Counter[str] = Counter()  # trace id -> records acknowledged again, not stored
        seq = first
        row = log_row = 0
        for b_index, b in enumerate(batches):
            for _ in range(b.span_count):
                key, d = (trace_ids[row], span_ids[row]), all_digests[row]
                entry = known.get(key)
                if entry is not None and d in entry[1]:
                    duplicates[b_index] += 1
                    redelivered[key[0]] += 1
                else:
                    if entry is None:
                        known[key] = (seq, {d})
                        version_of.append(None)
                        with_step.append(row)
                        step_seqs.append(seq)
                    else:
                        entry[1].add(d)
                        version_of.append(entry[0])
                    keep.append(row)
                    span_seqs.append(seq)
                    digests.append(d)
                    stored[b_index] += 1
                    seq += 1
                row += 1
            for _ in range(len(b.log_digests)):
                d = all_log_digests[log_row]
                if d in known_logs:  # the same record, byte for byte: a redelivery
                    duplicates[b_index] += 1
                    redelivered[log_trace_ids[log_row]] += 1
                else:
                    known_logs.add(d)
                    keep_logs.append(log_row)
                    log_seqs.append(seq)
                    digests.append(d)
                    stored[b_index] += 1
                    seq += 1
                log_row += 1
        n = len(digests)
        chains = ledger.replay_chain(digests, self.chain_head)
        frontier = self.frontier.copy()
        checkpoints = []
        for at, (d, c) in enumerate(zip(digests, chains, strict=True), start=first):
            frontier.append(d)
            if (at - self.seq_range[0] + 1) % self.checkpoint_interval == 0:
                checkpoints.append((at, frontier.root(), c))
        now = datetime.now(UTC)
        batch_id = self._batch_id + 1
        spans = self._span_table(batches, sources, keep, span_seqs, version_of, batch_id, now)
        steps_tbl = _rows(pa.concat_tables([b.steps for b in batches]), with_step)
        steps_tbl = steps_tbl.add_column(0, "seq", pa.array(step_seqs, pa.int64()))
        steps_tbl = steps_tbl.append_column(
            "span_digest", pa.array([all_digests[i] for i in with_step], pa.binary())
        )
        steps_tbl = steps_tbl.append_column(
            "normalizer_version", pa.array([self.normalizer_version] * len(with_step), pa.string())
        )
        logs_tbl = self._log_table(batches, sources, keep_logs, log_seqs, all_log_digests, batch_id, now)
        ledger_tbl = pa.table(
            {
                "seq": pa.array(range(first, first + n), pa.int64()),
                "digest": pa.array(digests, pa.binary()),
                "chain": pa.array(chains, pa.binary()),
            }
        )
        if self.store.is_lake:
            ledger_tbl = ledger_tbl.append_column("node_id", pa.array([self.store.node_id] * n, pa.string()))
        # DuckDB reads the Arrow streams named in the SQL from these local variables (a
        # replacement scan): about 1 ms per table cheaper than register() and unregister(). Each
        # stream is read once (batch.arrow_stream), so each is made just before its statement.
        if keep:
            _wb_spans = arrow_stream(spans)  # noqa: F841
            cur.execute("INSERT INTO spans BY NAME SELECT * FROM _wb_spans")
            _wb_steps = arrow_stream(steps_tbl)  # noqa: F841
            cur.execute("INSERT INTO steps BY NAME SELECT * FROM _wb_steps")
        if with_step:
            # Where these steps lie, for the trace list (derived; see workbench.store.trace_commits).
            trace_commits.append(cur, steps_tbl)
        if keep_logs:
            _wb_logs = arrow_stream(logs_tbl)  # noqa: F841
            cur.execute("INSERT INTO logs BY NAME SELECT * FROM _wb_logs")
        if n:
            _wb_ledger = arrow_stream(ledger_tbl)  # noqa: F841
            cur.execute("INSERT INTO ledger BY NAME SELECT * FROM _wb_ledger")
        for size, root, head in checkpoints:
            lake_writes.insert_checkpoint(cur, self.store, size, root, head, now)
        if redelivered and self.store.is_lake:
            lake_writes.count_redeliveries(cur, redelivered)
        elif redelivered:
            cur.executemany(
                "INSERT INTO delivery_stats VALUES (?, ?) ON CONFLICT (trace_id) DO UPDATE"
                " SET duplicate_spans = delivery_stats.duplicate_spans + excluded.duplicate_spans",
                list(redelivered.items()),
            )
        if self.rejoin is not None and (keep_logs or (with_step and self._has_logs)):
            # A GenAI event and its span may arrive in either order: whichever comes second brings
            # the step up to date, in the same transaction (see workbench.store.log_join).
            touched = set(steps_tbl.column("trace_id").to_pylist()) if self._has_logs else set()
            touched |= {
                t
                for t, sp in zip(
                    logs_tbl.column("trace_id").to_pylist(),
                    logs_tbl.column("span_id").to_pylist(),
                    strict=True,
                )
                if sp
            }
            log_join.rejoin_steps(cur, sorted(touched), self.rejoin)
        if self.store.is_lake:
            lake_writes.touch(cur, self.store, first + n - 1)
        cur.execute("COMMIT")
        self.duplicates_total += sum(redelivered.values())
        self.versions_total += sum(1 for v in version_of if v is not None)
        if keep_logs:
            self._has_logs = True
        if keep and self._keys is not None:
            self._keys.add(hashes[keep])
        if n:
            self.last_seq = first + n - 1
            self.chain_head = chains[-1]
            self.frontier = frontier
            self._batch_id = batch_id
        # Told to the commit listeners, so that the findings scanner need not look the range up in a
        # store that grows (it did: 3% of the server's samples at 100k spans, 28% at 1M).
        stored_traces = frozenset(
            [trace_ids[i] for i in keep] + [t for t in (log_trace_ids[i] for i in keep_logs) if t]
        )
        return Written(first, first + n - 1, stored, duplicates, stored_traces)

    @staticmethod
    def _span_table(
        batches: Sequence[Batch],
        sources: Sequence[str],
        keep: list[int],
        seqs: list[int],
        version_of: list[int | None],
        batch_id: int,
        now: datetime,
    ) -> pa.Table:
        n = len(keep)
        spans = _rows(pa.concat_tables([b.spans for b in batches]), keep)
        spans = spans.add_column(0, "seq", pa.array(seqs, pa.int64()))
        all_sources = [s for b, s in zip(batches, sources, strict=True) for _ in range(b.span_count)]
        spans = spans.append_column("source", pa.array([all_sources[i] for i in keep], pa.string()))
        spans = spans.append_column("batch_id", pa.array([batch_id] * n, pa.int64()))
        spans = spans.append_column("received_at", pa.array([now] * n, pa.timestamp("us", tz="UTC")))
        return spans.append_column("version_of", pa.array(version_of, pa.int64()))

    @staticmethod
    def _log_table(
        batches: Sequence[Batch],
        sources: Sequence[str],
        keep: list[int],
        seqs: list[int],
        digests: list[bytes],
        batch_id: int,
        now: datetime,
    ) -> pa.Table:
        n = len(keep)
        logs = _rows(pa.concat_tables([b.logs for b in batches]), keep)
        logs = logs.add_column(0, "seq", pa.array(seqs, pa.int64()))
        logs = logs.append_column("digest", pa.array([digests[i] for i in keep], pa.binary()))
        all_sources = [s for b, s in zip(batches, sources, strict=True) for _ in range(len(b.log_digests))]
        logs = logs.append_column("source", pa.array([all_sources[i] for i in keep], pa.string()))
        logs = logs.append_column("batch_id", pa.array([batch_id] * n, pa.int64()))
        return logs.append_column("received_at", pa.array([now] * n, pa.timestamp("us", tz="UTC")))

    def checkpoint(self) -> tuple[int, bytes] | None:
        """Write a checkpoint at the current head (e.g. at shutdown) unless one is already there."""
        with self._lock, self.store.write_lock:
            if self.last_seq < self.seq_range[0]:
                return None
            cur = self.store.cursor()
            root = self.frontier.root()
            if self.store.is_lake:
                lake_writes.checkpoint_at_head(cur, self.store, self.last_seq, root, self.chain_head)
            else:
                cur.execute(
                    "INSERT INTO ledger_checkpoints VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [self.last_seq, root, self.chain_head, datetime.now(UTC)],
                )
            return self.last_seq, root
