"""The last line of defence of per-span isolation: when a batch fails, find the one span that did.

Decoding checks every span before it becomes a record (collectors.checks), so a batch should never
fail to build or to commit because of one span. Should a value still slip through (a type the Arrow
columns or DuckDB refuse that no check foresaw), the batch is retried span by span: the span that
fails is refused alone, named by its ids and the error, and the others are kept. The retry runs only
after a failure, so it costs nothing on the normal path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from collectors.checks import safe_text
from workbench.model import LogRecord, SpanRecord, Step
from workbench.store.batch import Batch

log = logging.getLogger(__name__)


def _who(record: SpanRecord) -> str:
    return f"trace_id={record.trace_id} span_id={record.span_id} ({safe_text(record.name)!r})"


def build_batch(records: Sequence[SpanRecord], steps: Sequence[Step]) -> tuple[Batch | None, list[str]]:
    """The records' batch (None when none could be built) and a message per span left out."""
    if not records:
        return None, []
    try:
        return Batch.of(records, steps), []
    except Exception:
        log.exception("a batch of %d spans did not build; retrying span by span", len(records))
    good: list[tuple[SpanRecord, Step]] = []
    errors: list[str] = []
    for record, step in zip(records, steps, strict=True):
        try:
            Batch.of([record], [step])
        except Exception as exc:
            errors.append(f"{_who(record)}: could not be stored: {type(exc).__name__}: {safe_text(str(exc))}")
        else:
            good.append((record, step))
    if not good:
        return None, errors
    return Batch.of([r for r, _ in good], [s for _, s in good]), errors


def build_log_batch(records: Sequence[LogRecord]) -> tuple[Batch | None, list[str]]:
    """The log records' batch (None when none could be built) and a message per record left out."""
    if not records:
        return None, []
    try:
        return Batch.of_logs(records), []
    except Exception:
        log.exception("a batch of %d log records did not build; retrying record by record", len(records))
    good: list[LogRecord] = []
    errors: list[str] = []
    for record in records:
        try:
            Batch.of_logs([record])
        except Exception as exc:
            who = f"trace_id={record.trace_id} span_id={record.span_id} ({safe_text(record.event_name)!r})"
            errors.append(
                f"log record {who}: could not be stored: {type(exc).__name__}: {safe_text(str(exc))}"
            )
        else:
            good.append(record)
    return (Batch.of_logs(good) if good else None), errors


def split(batch: Batch) -> list[Batch]:
    """One batch per span or log record, in order: how a commit that failed is retried one by one."""
    spans = [
        Batch(batch.spans.slice(i, 1), batch.steps.slice(i, 1), batch.digests[i : i + 1])
        for i in range(batch.span_count)
    ]
    no_spans, no_steps = batch.spans.slice(0, 0), batch.steps.slice(0, 0)
    logs = [
        Batch(no_spans, no_steps, (), batch.logs.slice(i, 1), batch.log_digests[i : i + 1])
        for i in range(len(batch.log_digests))
    ]
    return spans + logs


def describe(batch: Batch, exc: BaseException) -> str:
    """Why a one-record batch could not be committed, naming the span or log record by its ids."""
    if not batch.span_count:
        row = batch.logs.slice(0, 1).to_pylist()[0]
        name = safe_text(str(row.get("event_name") or ""))
        return (
            f"log record trace_id={row.get('trace_id')} span_id={row.get('span_id')} ({name!r}): could not"
            f" be stored: {type(exc).__name__}: {safe_text(str(exc))}"
        )
    row = batch.spans.slice(0, 1).to_pylist()[0]
    name = safe_text(str(row.get("name") or ""))
    return (
        f"trace_id={row.get('trace_id')} span_id={row.get('span_id')} ({name!r}): could not be stored: "
        f"{type(exc).__name__}: {safe_text(str(exc))}"
    )
