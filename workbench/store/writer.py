"""Batched, transactional writes of spans, their steps and their ledger entries.

One call of `SpanWriter.write` is one DuckDB transaction: either every span of the batch, its step and
its ledger entry are committed, or none is. Sequence numbers, the chain head and the Merkle frontier
live in memory and advance only after the commit succeeds, so a failed batch leaves no gap.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from workbench.model import SpanEvent, SpanLink, SpanRecord, Step
from workbench.store import ledger
from workbench.store.connection import Store


def to_json(value: Any) -> str:
    """JSON text for attribute-like values; decode already turned bytes into {'bytesValue': base64}.

    orjson because this runs for every attribute of every span on the ingest path (10x json.dumps),
    and because it writes NaN and infinities as null: DuckDB's JSON type refuses them, and a refused
    value would fail the whole batch. The canonical bytes keep the exact double.
    """
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _event_dict(e: SpanEvent) -> dict[str, Any]:
    d: dict[str, Any] = {"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes}
    if e.dropped_attributes_count:
        d["dropped_attributes_count"] = e.dropped_attributes_count
    return d


def _link_dict(link: SpanLink) -> dict[str, Any]:
    d: dict[str, Any] = {"trace_id": link.trace_id, "span_id": link.span_id, "attributes": link.attributes}
    if link.trace_state:
        d["trace_state"] = link.trace_state
    if link.flags:
        d["flags"] = link.flags
    return d


STEP_COLUMNS = (
    "trace_id span_id parent_span_id kind name start_time_ns end_time_ns convention service_name actor "
    "operation model provider tool_name tool_call_id tool_arguments tool_result input_text output_text "
    "reasoning_text tokens_in tokens_out tokens_reasoning tokens_cached cost_usd is_error error "
    "session_id user_id"
).split()


def steps_table(seqs: Sequence[int], steps: Sequence[Step]) -> pa.Table:
    cols: dict[str, list[Any]] = {"seq": list(seqs)}
    for name in STEP_COLUMNS:
        cols[name] = [getattr(s, name) for s in steps]
    cols["kind"] = [str(s.kind) for s in steps]
    return pa.table(cols)


class SpanWriter:
    """Appends batches to the spans, steps and ledger tables; the only writer of those tables."""

    def __init__(self, store: Store, checkpoint_interval: int = 10_000) -> None:
        self.store = store
        self.checkpoint_interval = max(1, checkpoint_interval)
        self._lock = threading.Lock()
        cur = store.cursor()
        row = cur.execute("SELECT seq, chain FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        self.last_seq: int = row[0] if row else 0
        self.chain_head: bytes = bytes(row[1]) if row else ledger.GENESIS
        # The frontier is rebuilt from the stored digests: O(n) hashing once per process start.
        self.frontier = ledger.MerkleFrontier()
        for (d,) in cur.execute("SELECT digest FROM ledger ORDER BY seq").fetchall():
            self.frontier.append(bytes(d))
        (batch,) = cur.execute("SELECT coalesce(max(batch_id), 0) FROM spans").fetchone() or (0,)
        self._batch_id = int(batch)

    def write(
        self, records: Sequence[SpanRecord], steps: Sequence[Step], source: str | Sequence[str]
    ) -> tuple[int, int]:
        """Commit one batch; returns the (first, last) sequence numbers it received.

        `source` names where the spans came from, one name for all or one per span (group commits
        mix requests from several receivers in one transaction).
        """
        if len(records) != len(steps):
            raise ValueError("one step per span")
        sources = [source] * len(records) if isinstance(source, str) else list(source)
        if not records:
            return (self.last_seq + 1, self.last_seq)
        with self._lock, self.store.write_lock:
            first = self.last_seq + 1
            seqs = list(range(first, first + len(records)))
            digests = [ledger.digest(r.canonical) for r in records]
            chains = ledger.replay_chain(digests, self.chain_head)
            frontier = self.frontier.copy()
            checkpoints = []
            for seq, d, c in zip(seqs, digests, chains, strict=True):
                frontier.append(d)
                if seq % self.checkpoint_interval == 0:
                    checkpoints.append((seq, frontier.root(), c))
            now = datetime.now(UTC)
            batch_id = self._batch_id + 1
            spans = self._spans_table(seqs, records, sources, batch_id, now)
            steps_tbl = steps_table(seqs, steps)
            ledger_tbl = pa.table({"seq": seqs, "digest": digests, "chain": chains})
            cur = self.store.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                cur.register("_spans_in", spans)
                cur.register("_steps_in", steps_tbl)
                cur.register("_ledger_in", ledger_tbl)
                cur.execute("INSERT INTO spans BY NAME SELECT * FROM _spans_in")
                cur.execute("INSERT INTO steps BY NAME SELECT * FROM _steps_in")
                cur.execute("INSERT INTO ledger BY NAME SELECT * FROM _ledger_in")
                for size, root, head in checkpoints:
                    cur.execute("INSERT INTO ledger_checkpoints VALUES (?, ?, ?, ?)", [size, root, head, now])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                for name in ("_spans_in", "_steps_in", "_ledger_in"):
                    cur.unregister(name)
                cur.close()
            self.last_seq = seqs[-1]
            self.chain_head = chains[-1]
            self.frontier = frontier
            self._batch_id = batch_id
            return first, self.last_seq

    def checkpoint(self) -> tuple[int, bytes] | None:
        """Write a checkpoint at the current head (e.g. at shutdown) unless one is already there."""
        with self._lock, self.store.write_lock:
            if self.last_seq == 0:
                return None
            cur = self.store.cursor()
            root = self.frontier.root()
            cur.execute(
                "INSERT INTO ledger_checkpoints VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [self.last_seq, root, self.chain_head, datetime.now(UTC)],
            )
            return self.last_seq, root

    @staticmethod
    def _spans_table(
        seqs: Sequence[int], records: Sequence[SpanRecord], sources: list[str], batch_id: int, now: datetime
    ) -> pa.Table:
        r = records
        return pa.table(
            {
                "seq": pa.array(seqs, pa.int64()),
                "trace_id": [x.trace_id for x in r],
                "span_id": [x.span_id for x in r],
                "parent_span_id": [x.parent_span_id for x in r],
                "name": [x.name for x in r],
                "kind": pa.array([x.kind for x in r], pa.int8()),
                "start_time_ns": pa.array([x.start_time_ns for x in r], pa.int64()),
                "end_time_ns": pa.array([x.end_time_ns for x in r], pa.int64()),
                "status_code": pa.array([x.status_code for x in r], pa.int8()),
                "status_message": [x.status_message for x in r],
                "trace_state": [x.trace_state for x in r],
                "flags": pa.array([x.flags for x in r], pa.uint32()),
                "service_name": [x.service_name for x in r],
                "resource": [to_json(x.resource) for x in r],
                "resource_schema_url": [x.resource_schema_url for x in r],
                "scope_name": [x.scope_name for x in r],
                "scope_version": [x.scope_version for x in r],
                "scope_attributes": [to_json(x.scope_attributes) for x in r],
                "scope_schema_url": [x.scope_schema_url for x in r],
                "attributes": [to_json(x.attributes) for x in r],
                "events": [to_json([_event_dict(e) for e in x.events]) for x in r],
                "links": [to_json([_link_dict(k) for k in x.links]) for x in r],
                "dropped_attributes_count": pa.array([x.dropped_attributes_count for x in r], pa.uint32()),
                "dropped_events_count": pa.array([x.dropped_events_count for x in r], pa.uint32()),
                "dropped_links_count": pa.array([x.dropped_links_count for x in r], pa.uint32()),
                "truncations": [
                    to_json([[t.location, t.original_length, t.kept_length] for t in x.truncations])
                    for x in r
                ],
                "canonical": pa.array([x.canonical for x in r], pa.binary()),
                "source": sources,
                "batch_id": pa.array([batch_id] * len(r), pa.int64()),
                "received_at": pa.array([now] * len(r), pa.timestamp("us", tz="UTC")),
            }
        )
