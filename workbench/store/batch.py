"""Spans and their steps as Arrow columns, the form the writer inserts: built where decoding ran.

Why a separate form: turning records into columns (JSON text for attributes, one Arrow array per
column) and hashing each span's canonical bytes are most of a write's Python work. Done by whoever
decoded the request (a receiver thread, or a decode worker process that hands the batch over as Arrow
IPC), they leave the single writer thread only numbering, chaining and inserting. A `Batch` holds
everything except what only the writer can know: sequence numbers, source, batch id, receive time.

Schemas are explicit so that batches from different requests concatenate (a column that is None in
every row of one batch would otherwise be inferred as Arrow's null type there and a string elsewhere).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import orjson
import pyarrow as pa

from workbench.model import Attributes, LogRecord, SpanEvent, SpanLink, SpanRecord, Step, StepKind, StoredStep
from workbench.store import ledger

_DIGEST_SIZE = 32  # SHA-256


def to_json(value: Any) -> str:
    """JSON text for attribute-like values; decode already turned bytes into {'bytesValue': base64}.

    orjson because this runs for every attribute of every span on the ingest path (10x json.dumps),
    and because it writes NaN and infinities as null: DuckDB's JSON type refuses them, and a refused
    value would fail the whole batch. The canonical bytes keep the exact double.
    """
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


# Strings longer than this are left out of the spans table's `attributes` column (see slim_attributes).
LONG_ATTRIBUTE = 256
# Attributes the workbench itself reads from that column (retry attempts, side effects): kept whatever
# their length, so no reader of the column has to decode the canonical bytes to find them.
KEPT_PREFIX = "workbench."


def slim_attributes(attributes: Attributes) -> Attributes:
    """The span's attributes without its long strings: what the spans table's `attributes` column holds.

    Why: message text is most of an agent span's bytes, and it was written three times per span (the
    sealed canonical bytes, this column, the step's text), each copy costing the writer CPU in DuckDB
    and the checkpoint. The column exists for queries over small attributes (retry attempts, side
    effects, ids); a long string is read from the sealed canonical bytes (the replay decodes them) or
    from the step. Re-derivable exactly: `ledger verify` decodes the canonical bytes and applies this
    same function. Only top-level string values are judged, so it costs one pass over the keys; rows
    stored before this rule hold every attribute and verify accepts that form too.
    """
    if not any(type(v) is str and len(v) > LONG_ATTRIBUTE for v in attributes.values()):
        return attributes
    return {
        k: v
        for k, v in attributes.items()
        if not (type(v) is str and len(v) > LONG_ATTRIBUTE) or k.startswith(KEPT_PREFIX)
    }


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


_str, _i8, _i64, _u32 = pa.string(), pa.int8(), pa.int64(), pa.uint32()

# The spans table's columns that come from the records (the writer adds seq, source, batch_id, received_at).
SPAN_SCHEMA = pa.schema(
    [
        ("trace_id", _str),
        ("span_id", _str),
        ("parent_span_id", _str),
        ("name", _str),
        ("kind", _i8),
        ("start_time_ns", _i64),
        ("end_time_ns", _i64),
        ("status_code", _i8),
        ("status_message", _str),
        ("trace_state", _str),
        ("flags", _u32),
        ("service_name", _str),
        ("resource", _str),
        ("resource_schema_url", _str),
        ("scope_name", _str),
        ("scope_version", _str),
        ("scope_attributes", _str),
        ("scope_schema_url", _str),
        ("attributes", _str),
        ("events", _str),
        ("links", _str),
        ("dropped_attributes_count", _u32),
        ("dropped_events_count", _u32),
        ("dropped_links_count", _u32),
        ("truncations", _str),
        ("canonical", pa.binary()),
    ]
)

STEP_COLUMNS = (
    "trace_id span_id parent_span_id kind name start_time_ns end_time_ns convention service_name actor "
    "operation model provider tool_name tool_call_id tool_arguments tool_result input_text output_text "
    "reasoning_text tokens_in tokens_out tokens_reasoning tokens_cached cost_usd is_error error "
    "session_id user_id event_fields"
).split()

if tuple(f.name for f in fields(Step)) != tuple(STEP_COLUMNS):  # stored_step builds a Step by position
    raise RuntimeError("STEP_COLUMNS must list Step's fields in their order")

# A step read back: `SELECT seq, <STEP_COLUMNS> FROM steps`, each row turned into a StoredStep by stored_step.
STEP_SELECT = "SELECT seq, " + ", ".join(STEP_COLUMNS) + " FROM steps"
_KIND_AT = STEP_COLUMNS.index("kind")
_KINDS = {str(kind): kind for kind in StepKind}


def stored_step(row: Sequence[Any]) -> StoredStep:
    """One STEP_SELECT row as a StoredStep. By position, not by keyword: the findings scanner and the
    replay turn every step they read into one, and a dict of 30 keywords per row was most of that."""
    values = list(row[1:])
    kind = values[_KIND_AT]
    values[_KIND_AT] = _KINDS.get(kind) or StepKind(kind)
    return StoredStep(seq=int(row[0]), step=Step(*values))


_STEP_TYPES = {"start_time_ns": _i64, "end_time_ns": _i64, "cost_usd": pa.float64(), "is_error": pa.bool_()}
_STEP_TYPES.update({f"tokens_{k}": _i64 for k in ("in", "out", "reasoning", "cached")})
STEP_SCHEMA = pa.schema([(name, _STEP_TYPES.get(name, _str)) for name in STEP_COLUMNS])

_STEP_ROW = operator.attrgetter(*STEP_COLUMNS)


def _shared_json() -> Callable[[Any], str]:
    """`to_json` remembering what it encoded by id(): the records of one (resource, scope) group share
    their resource and scope dicts, so each is encoded once per batch, not once per record. Valid while
    the batch keeps those dicts alive."""
    shared: dict[int, str] = {}

    def shared_json(value: Any) -> str:
        text = shared.get(id(value))
        if text is None:
            text = shared[id(value)] = to_json(value)
        return text

    return shared_json


def span_columns(r: Sequence[SpanRecord]) -> pa.Table:
    """The records as a table of SPAN_SCHEMA."""
    shared_json = _shared_json()

    columns = {
        "trace_id": [x.trace_id for x in r],
        "span_id": [x.span_id for x in r],
        "parent_span_id": [x.parent_span_id for x in r],
        "name": [x.name for x in r],
        "kind": [x.kind for x in r],
        "start_time_ns": [x.start_time_ns for x in r],
        "end_time_ns": [x.end_time_ns for x in r],
        "status_code": [x.status_code for x in r],
        "status_message": [x.status_message for x in r],
        "trace_state": [x.trace_state for x in r],
        "flags": [x.flags for x in r],
        "service_name": [x.service_name for x in r],
        "resource": [shared_json(x.resource) for x in r],
        "resource_schema_url": [x.resource_schema_url for x in r],
        "scope_name": [x.scope_name for x in r],
        "scope_version": [x.scope_version for x in r],
        "scope_attributes": [shared_json(x.scope_attributes) for x in r],
        "scope_schema_url": [x.scope_schema_url for x in r],
        "attributes": [to_json(slim_attributes(x.attributes)) for x in r],
        # Most spans have no events, links or truncations: "[]" without a trip through the encoder.
        "events": [to_json([_event_dict(e) for e in x.events]) if x.events else "[]" for x in r],
        "links": [to_json([_link_dict(k) for k in x.links]) if x.links else "[]" for x in r],
        "dropped_attributes_count": [x.dropped_attributes_count for x in r],
        "dropped_events_count": [x.dropped_events_count for x in r],
        "dropped_links_count": [x.dropped_links_count for x in r],
        "truncations": [
            to_json([[t.location, t.original_length, t.kept_length] for t in x.truncations])
            if x.truncations
            else "[]"
            for x in r
        ],
        "canonical": [x.canonical for x in r],
    }
    return pa.Table.from_pydict(columns, schema=SPAN_SCHEMA)


def step_columns(steps: Sequence[Step]) -> pa.Table:
    """The steps as a table of STEP_SCHEMA."""
    # Rows as tuples by one C-level attrgetter each, then transposed: cheaper than a getattr per cell.
    rows = zip(*map(_STEP_ROW, steps), strict=True) if steps else ((),) * len(STEP_COLUMNS)
    columns: dict[str, Any] = dict(zip(STEP_COLUMNS, rows, strict=True))
    columns["kind"] = [str(kind) for kind in columns["kind"]]
    return pa.Table.from_pydict(columns, schema=STEP_SCHEMA)


def steps_table(seqs: Sequence[int], steps: Sequence[Step]) -> pa.Table:
    """Steps with their sequence numbers: a table the steps table takes BY NAME."""
    return step_columns(steps).add_column(0, "seq", pa.array(seqs, _i64))


# The logs table's columns that come from the records (the writer adds seq, digest, source, batch_id,
# received_at).
LOG_SCHEMA = pa.schema(
    [
        ("trace_id", _str),
        ("span_id", _str),
        ("time_ns", _i64),
        ("observed_time_ns", _i64),
        ("severity_number", pa.int32()),
        ("severity_text", _str),
        ("event_name", _str),
        ("body", _str),
        ("attributes", _str),
        ("flags", _u32),
        ("dropped_attributes_count", _u32),
        ("service_name", _str),
        ("resource", _str),
        ("resource_schema_url", _str),
        ("scope_name", _str),
        ("scope_version", _str),
        ("scope_attributes", _str),
        ("scope_schema_url", _str),
        ("truncations", _str),
        ("canonical", pa.binary()),
    ]
)


def log_columns(r: Sequence[LogRecord]) -> pa.Table:
    """The log records as a table of LOG_SCHEMA (body NULL when the record has none)."""
    shared_json = _shared_json()

    columns = {
        "trace_id": [x.trace_id for x in r],
        "span_id": [x.span_id for x in r],
        "time_ns": [x.time_ns for x in r],
        "observed_time_ns": [x.observed_time_ns for x in r],
        "severity_number": [x.severity_number for x in r],
        "severity_text": [x.severity_text for x in r],
        "event_name": [x.event_name for x in r],
        "body": [None if x.body is None else to_json(x.body) for x in r],
        "attributes": [to_json(x.attributes) for x in r],
        "flags": [x.flags for x in r],
        "dropped_attributes_count": [x.dropped_attributes_count for x in r],
        "service_name": [x.service_name for x in r],
        "resource": [shared_json(x.resource) for x in r],
        "resource_schema_url": [x.resource_schema_url for x in r],
        "scope_name": [x.scope_name for x in r],
        "scope_version": [x.scope_version for x in r],
        "scope_attributes": [shared_json(x.scope_attributes) for x in r],
        "scope_schema_url": [x.scope_schema_url for x in r],
        "truncations": [
            to_json([[t.location, t.original_length, t.kept_length] for t in x.truncations])
            if x.truncations
            else "[]"
            for x in r
        ],
        "canonical": [x.canonical for x in r],
    }
    return pa.Table.from_pydict(columns, schema=LOG_SCHEMA)


_NO_SPANS = SPAN_SCHEMA.empty_table()
_NO_STEPS = STEP_SCHEMA.empty_table()
_NO_LOGS = LOG_SCHEMA.empty_table()


@dataclass(frozen=True, slots=True)
class Batch:
    """One request's spans (SPAN_SCHEMA), their steps (STEP_SCHEMA) and the SHA-256 of each span's
    canonical bytes, in the same order; or one request's log records (LOG_SCHEMA) and their digests.
    Both kinds go through the same queue, group commit and ledger. Pickles as Arrow IPC, so it crosses
    processes cheaply."""

    spans: pa.Table
    steps: pa.Table
    digests: tuple[bytes, ...]
    logs: pa.Table = field(default_factory=LOG_SCHEMA.empty_table)
    log_digests: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, records: Sequence[SpanRecord], steps: Sequence[Step]) -> Batch:
        if len(records) != len(steps):
            raise ValueError("one step per span")
        return cls(
            span_columns(records), step_columns(steps), tuple(ledger.digest(r.canonical) for r in records)
        )

    @classmethod
    def of_logs(cls, records: Sequence[LogRecord]) -> Batch:
        return cls(
            _NO_SPANS,
            _NO_STEPS,
            (),
            log_columns(records),
            tuple(ledger.digest(r.canonical) for r in records),
        )

    @property
    def span_count(self) -> int:
        return len(self.digests)

    def __len__(self) -> int:
        """Records of both kinds: what the queue bounds and a commit group counts."""
        return len(self.digests) + len(self.log_digests)

    def __reduce__(self) -> tuple[Any, tuple[bytes, bytes, bytes, bytes, bytes]]:
        return (
            _from_ipc,
            (
                _to_ipc(self.spans),
                _to_ipc(self.steps),
                b"".join(self.digests),
                _to_ipc(self.logs),
                b"".join(self.log_digests),
            ),
        )


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as out:
        out.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(
    spans: bytes, steps: bytes, digests: bytes, logs: bytes = b"", log_digests: bytes = b""
) -> Batch:
    def read(data: bytes, schema: pa.Schema) -> pa.Table:
        table = pa.ipc.open_stream(data).read_all()
        if not table.schema.equals(schema):
            raise ValueError(f"batch columns do not match the schema: {table.schema}")
        return table

    def split(joined: bytes) -> tuple[bytes, ...]:
        return tuple(joined[i : i + _DIGEST_SIZE] for i in range(0, len(joined), _DIGEST_SIZE))

    log_table = read(logs, LOG_SCHEMA) if logs else _NO_LOGS
    batch = Batch(
        read(spans, SPAN_SCHEMA), read(steps, STEP_SCHEMA), split(digests), log_table, split(log_digests)
    )
    if not batch.spans.num_rows == batch.steps.num_rows == len(batch.digests):
        raise ValueError("a batch needs one step and one digest per span")
    if batch.logs.num_rows != len(batch.log_digests):
        raise ValueError("a batch needs one digest per log record")
    return batch


def arrow_stream(table: pa.Table) -> object:
    """A one-shot Arrow C stream over `table`, for DuckDB to read by replacement scan (name it in the
    SQL from a local variable) exactly once.

    Why not the table itself: DuckDB wraps a `pa.Table` in a pyarrow.dataset scanner (for projection and
    filter pushdown), whose set-up cost 0.69 ms of CPU per statement against 0.32 ms for a bare stream
    (200 rows, 30 columns; DuckDB 1.5.5, pyarrow 26), about half of the writer thread's CPU in a profile of
    `workbench serve`, which runs five such statements per group commit. A bare stream is read as is: the
    caller selects the columns it needs first."""
    return table.__arrow_c_stream__()
