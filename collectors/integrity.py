"""The check `ledger verify` runs on each span's queryable columns against its canonical bytes.

The hash chain protects the canonical bytes; this catches the other way of tampering, editing a
column (a tool argument, a name) that investigators read while leaving the canonical bytes alone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from collectors import decode_logs, events
from collectors.decode import record_from_canonical
from collectors.pipeline import default_normalizer, safe_normalize
from workbench.errors import BadInput
from workbench.model import Attributes, LogRecord, Step, StepKind
from workbench.store import log_join
from workbench.store.batch import slim_attributes, to_json
from workbench.store.connection import Store
from workbench.store.verify_derived import truncations_limit

_SCALARS = (
    "trace_id span_id parent_span_id name kind start_time_ns end_time_ns status_code status_message"
).split()


def stored_columns_check() -> Callable[[int, bytes, dict[str, object]], str | None]:
    """A RowCheck for workbench.store.verify that re-decodes the canonical bytes and compares.

    Values are re-decoded with the attribute-length limit that was in force when the span was ingested,
    read from the row's own truncation record (no truncation: no limit), so changing
    WORKBENCH_MAX_ATTRIBUTE_LENGTH later does not make honest rows look edited.
    """

    def check(seq: int, canonical: bytes, values: dict[str, object]) -> str | None:
        cuts = _loads(values["truncations"])
        kept = [c[2] for c in cuts if isinstance(c, list) and len(c) == 3] if isinstance(cuts, list) else []
        limit = min(kept) if kept and all(isinstance(k, int) for k in kept) else sys.maxsize
        try:
            record = record_from_canonical(canonical, limit)
        except BadInput as exc:
            return str(exc)
        differing = [c for c in _SCALARS if getattr(record, c) != values[c]]
        recut = [[t.location, t.original_length, t.kept_length] for t in record.truncations]
        if recut != cuts:
            differing.append("truncations")
        if not _attributes_match(_loads(values["attributes"]), record.attributes):
            differing.append("attributes")
        events = [{"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes} for e in record.events]
        loaded = _loads(values["events"])
        stored_events = [
            {k: v for k, v in e.items() if k != "dropped_attributes_count"}
            for e in (loaded if isinstance(loaded, list) else [])
            if isinstance(e, dict)
        ]
        if stored_events != json.loads(to_json(events)):
            differing.append("events")
        return f"column(s) {', '.join(differing)} differ from the canonical bytes" if differing else None

    return check


def stored_log_columns_check() -> Callable[[int, bytes, dict[str, object]], str | None]:
    """The RowCheck of a log record's columns (workbench.store.verify.LOG_CHECK_COLUMNS) against its
    canonical bytes, with the attribute limit of its own ingest, as for spans."""

    def check(seq: int, canonical: bytes, values: dict[str, object]) -> str | None:
        cuts = _loads(values["truncations"])
        limit = truncations_limit(values["truncations"]) or sys.maxsize
        try:
            record = decode_logs.record_from_canonical(canonical, limit)
        except BadInput as exc:
            return str(exc)
        scalars = "trace_id span_id time_ns observed_time_ns severity_number severity_text event_name"
        differing = [c for c in scalars.split() if getattr(record, c) != values[c]]
        if [[t.location, t.original_length, t.kept_length] for t in record.truncations] != cuts:
            differing.append("truncations")
        if _loads(values["attributes"]) != json.loads(to_json(record.attributes)):
            differing.append("attributes")
        body = values["body"]
        if (None if body is None else _loads(body)) != (
            None if record.body is None else json.loads(to_json(record.body))
        ):
            differing.append("body")
        return f"column(s) {', '.join(differing)} differ from the canonical bytes" if differing else None

    return check


def _attributes_match(stored: object, attributes: Attributes) -> bool:
    """Whether a span's `attributes` column is one of its two honest forms: the slim one the writer
    stores (`slim_attributes`), or every attribute (rows stored before the long strings were left out).
    Both are derived from the canonical bytes, so either is exactly re-derivable; anything else is an
    edit."""
    slim = slim_attributes(attributes)
    if stored == json.loads(to_json(slim)):
        return True
    return slim is not attributes and stored == json.loads(to_json(attributes))


def _loads(value: object) -> object:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def step_deriver(store: Store | None = None) -> Callable[[bytes, object], Step]:
    """A StepDeriver for workbench.store.verify_derived: the `renormalize` path, in memory.

    The span is decoded with the attribute-length limit of its own ingest (as in the column check), so
    the step comes out as it did then, and normalized by today's normalizer. With a `store`, a span that
    has stored log records is joined with them exactly as ingest joined it (collectors.events), so a
    step filled from GenAI events verifies; without one, such a step reads as differing.
    """
    normalize = default_normalizer()
    traces: set[str] = set()
    if store is not None:
        rows = store.cursor().execute("SELECT DISTINCT trace_id FROM logs WHERE span_id <> ''")
        traces = {str(t) for (t,) in rows.fetchall()}
    cache: dict[str, list[LogRecord]] = {}  # the last trace's events: verify reads steps in seq order

    def derive(canonical: bytes, truncations: object) -> Step:
        limit = truncations_limit(truncations) or sys.maxsize
        try:
            record = record_from_canonical(canonical, limit)
        except BadInput as exc:
            return Step(
                trace_id="",
                span_id="",
                parent_span_id="",
                kind=StepKind.OTHER,
                name="",
                start_time_ns=0,
                end_time_ns=0,
                convention="unknown",
                error=f"undecodable span: {exc}",
            )
        if store is not None and record.trace_id in traces:
            if record.trace_id not in cache:
                cache.clear()
                stored = log_join.events_of(store.cursor(), [record.trace_id]).get(record.trace_id, [])
                cache[record.trace_id] = events.decode_events(stored)
            return events.join(record, cache[record.trace_id], normalize)
        return safe_normalize(normalize, record)

    return derive
