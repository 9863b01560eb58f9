"""The path from decoded spans to committed rows: normalize, queue with a bound, group-commit, acknowledge.

Receivers call `IngestPipeline.submit` (records) or `submit_batch` (records already normalized and put
in columns, e.g. by a decode worker process) and answer their client only when the returned future
resolves, which happens after the DuckDB transaction holding those spans has committed: acknowledged
means durable. Concurrent requests are grouped into one transaction (group commit) to amortize its
cost. The queue is bounded in spans: when full, submitting raises `Overloaded` at once instead of
buffering.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from collectors import events
from collectors.batching import build_batch, build_log_batch, describe, split
from workbench.errors import Overloaded
from workbench.model import IngestResult, LogRecord, SpanRecord, Step, StepKind
from workbench.store.batch import Batch
from workbench.store.connection import Store
from workbench.store.writer import SpanWriter

log = logging.getLogger(__name__)

Normalizer = Callable[[SpanRecord], Step]
# Called on the writer thread after each commit with the first and last seq committed and the trace ids
# of what it stored. Listeners (findings at ingest, the search indexer) must only hand these to their
# own thread: the writer waits for them, and so does every client waiting for its acknowledgement.
CommitListener = Callable[[int, int, frozenset[str]], None]


def default_normalizer() -> Normalizer:
    from collectors.normalize import normalize

    return normalize


def normalizer_version_of(normalize: Normalizer) -> str:
    """The version each step records (so `ledger verify` knows what to re-derive with): the shipped
    normalizer's NORMALIZER_VERSION, or 'custom:<name>' for any other function."""
    from collectors import normalize as shipped

    if normalize is shipped.normalize:
        return shipped.NORMALIZER_VERSION
    return f"custom:{getattr(normalize, '__qualname__', type(normalize).__name__)}"


def safe_normalize(normalize: Normalizer, record: SpanRecord) -> Step:
    """A step for every span, even when a mapping has a bug: the span is kept as `other`."""
    try:
        return normalize(record)
    except Exception as exc:  # a mapping bug must never lose a span
        log.exception("normalizer failed on span %s", record.span_id)
        return Step(
            trace_id=record.trace_id,
            span_id=record.span_id,
            parent_span_id=record.parent_span_id,
            kind=StepKind.OTHER,
            name=record.name,
            start_time_ns=record.start_time_ns,
            end_time_ns=record.end_time_ns,
            convention="unknown",
            service_name=record.service_name,
            error=f"normalizer failed: {type(exc).__name__}: {exc}",
        )


@dataclass
class _Pending:
    batch: Batch
    source: str
    future: Future[IngestResult]


class IngestPipeline:
    """Owns the single writer thread of a process; every receiver and exporter submits here."""

    def __init__(
        self,
        store: Store,
        *,
        queue_max_spans: int = 200_000,
        commit_max_spans: int = 20_000,
        checkpoint_interval: int = 10_000,
        normalize: Normalizer | None = None,
    ) -> None:
        self.store = store
        self.normalize = normalize or default_normalizer()
        self.writer = SpanWriter(
            store,
            checkpoint_interval,
            normalizer_version_of(self.normalize),
            rejoin=events.rejoiner(self.normalize),
        )
        self.queue_max_spans = queue_max_spans
        self.commit_max_spans = commit_max_spans
        self._pending: deque[_Pending] = deque()
        self._queued_spans = 0
        self._cond = threading.Condition()
        self._closing = False
        self._listeners: list[CommitListener] = []
        self._thread = threading.Thread(target=self._run, name="workbench-writer", daemon=True)
        self._thread.start()

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Be told of every committed seq range from now on (see CommitListener)."""
        self._listeners.append(listener)

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    def _admission(self, n: int) -> None:
        """Raise Overloaded unless `n` more spans fit; call with the condition held."""
        if self._closing:
            raise Overloaded("the workbench is shutting down", retry_after=5)
        # One request larger than the whole queue is still taken when the queue is empty.
        if self._queued_spans and self._queued_spans + n > self.queue_max_spans:
            raise Overloaded(
                f"ingest queue full ({self._queued_spans} spans waiting, limit {self.queue_max_spans}"
                " WORKBENCH_QUEUE_MAX_SPANS); retry later",
                retry_after=1,
            )

    def check_room(self, n: int = 1) -> None:
        """Raise Overloaded unless `n` more spans would fit now: receivers ask before decoding, so an
        overloaded server refuses a request without doing its work first."""
        with self._cond:
            self._admission(n)

    def prepare(self, records: Sequence[SpanRecord]) -> tuple[Batch | None, list[str]]:
        """Normalize and build the columns, after a quick admission check (see `check_room`); a span
        whose columns cannot be built is left out with a message (see collectors.batching).

        Callers run this on their own thread, never on an event loop: it is most of the CPU a span
        costs before the commit.
        """
        self.check_room(len(records))
        return build_batch(records, [safe_normalize(self.normalize, r) for r in records])

    def submit(self, records: Sequence[SpanRecord], source: str) -> Future[IngestResult]:
        """Normalize and queue spans for commit; the future resolves once they are durable, with the
        spans that could not be stored counted in `rejected`. Raises Overloaded if the queue is full."""
        batch, errors = self.prepare(records) if records else (None, [])
        if batch is None:
            future: Future[IngestResult] = Future()
            future.set_result(IngestResult(accepted=0, rejected=len(errors), errors=tuple(errors)))
            return future
        inner = self.submit_batch(batch, source)
        return inner if not errors else _with_errors(inner, errors)

    def submit_logs(self, records: Sequence[LogRecord], source: str) -> Future[IngestResult]:
        """Queue log records for commit, as `submit` does spans: the future resolves once they are
        durable and sealed (and any step they join re-derived). Raises Overloaded if the queue is full."""
        self.check_room(len(records))
        batch, errors = build_log_batch(records)
        if batch is None:
            future: Future[IngestResult] = Future()
            future.set_result(IngestResult(accepted=0, rejected=len(errors), errors=tuple(errors)))
            return future
        inner = self.submit_batch(batch, source)
        return inner if not errors else _with_errors(inner, errors)

    def ingest_logs(
        self, records: Sequence[LogRecord], source: str, timeout: float | None = None
    ) -> IngestResult:
        """Submit log records and wait (files, gRPC handler threads)."""
        return self.submit_logs(records, source).result(timeout)

    def submit_batch(self, batch: Batch, source: str) -> Future[IngestResult]:
        """Queue a prepared batch for commit; the future resolves once it is durable. Raises
        Overloaded if the queue is full."""
        future: Future[IngestResult] = Future()
        if not len(batch):
            future.set_result(IngestResult(accepted=0))
            return future
        with self._cond:
            self._admission(len(batch))
            self._pending.append(_Pending(batch, source, future))
            self._queued_spans += len(batch)
            self._cond.notify()
        return future

    def ingest(
        self, records: Sequence[SpanRecord], source: str, timeout: float | None = None
    ) -> IngestResult:
        """Submit and wait: the synchronous form used by files, the exporter and gRPC handler threads."""
        return self.submit(records, source).result(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, write a final checkpoint, stop the writer thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        try:
            self.writer.checkpoint()
        except Exception:
            log.exception("final ledger checkpoint failed")

    def _take_group(self) -> list[_Pending]:
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            group: list[_Pending] = []
            n = 0
            while self._pending and (not group or n + len(self._pending[0].batch) <= self.commit_max_spans):
                item = self._pending.popleft()
                group.append(item)
                n += len(item.batch)
            return group

    def _run(self) -> None:
        while True:
            group = self._take_group()
            if not group:
                return  # closing and drained
            try:
                self._commit(group)
            finally:
                with self._cond:
                    self._queued_spans -= sum(len(p.batch) for p in group)

    def _commit(self, group: list[_Pending]) -> None:
        try:
            written = self.writer.write_group([p.batch for p in group], [p.source for p in group])
        except Exception as exc:
            if len(group) == 1 and len(group[0].batch) > 1:
                self._commit_span_by_span(group[0])
                return
            if len(group) == 1:
                log.exception("commit failed for %d spans", len(group[0].batch))
                group[0].future.set_exception(exc)
                return
            # One bad request must not fail its neighbours: commit them one by one.
            for p in group:
                self._commit([p])
            return
        seq = written.first
        for p, n, dup in zip(group, written.stored, written.duplicates, strict=True):
            # A redelivered span is acknowledged as accepted: the client's copy is safely stored.
            p.future.set_result(
                IngestResult(
                    accepted=n + dup,
                    first_seq=seq if n else None,
                    last_seq=seq + n - 1 if n else None,
                    duplicates=dup,
                )
            )
            seq += n
        if written.last >= written.first:  # else nothing new was stored: nothing for listeners to look at
            self._tell_listeners(written.first, written.last, written.traces)

    def _tell_listeners(self, first: int, last: int, traces: frozenset[str]) -> None:
        for listener in self._listeners:
            try:
                listener(first, last, traces)
            except Exception:  # a listener's bug must not stop ingest
                log.exception("commit listener %r failed", listener)

    def _commit_span_by_span(self, pending: _Pending) -> None:
        """A request whose commit failed: each span in a transaction of its own, so only the span that
        fails is refused (per-span checks should have caught it before; this is the last defence)."""
        log.exception("commit failed for %d spans; retrying span by span", len(pending.batch))
        errors: list[str] = []
        seqs: list[int] = []
        duplicates = 0
        for one in split(pending.batch):
            try:
                written = self.writer.write_group([one], [pending.source])
            except Exception as exc:
                errors.append(describe(one, exc))
                continue
            duplicates += sum(written.duplicates)
            if written.last >= written.first:
                seqs.append(written.first)
                self._tell_listeners(written.first, written.last, written.traces)
        if not seqs and not duplicates:
            pending.future.set_exception(RuntimeError("; ".join(errors[:3])))
            return
        pending.future.set_result(
            IngestResult(
                len(seqs) + duplicates,
                len(errors),
                tuple(errors),
                first_seq=seqs[0] if seqs else None,
                last_seq=seqs[-1] if seqs else None,
                duplicates=duplicates,
            )
        )


def _with_errors(inner: Future[IngestResult], errors: list[str]) -> Future[IngestResult]:
    """`inner`'s result with `errors` (spans refused before the commit) added to it."""
    outer: Future[IngestResult] = Future()

    def done(f: Future[IngestResult]) -> None:
        exc = f.exception()
        if exc is not None:
            outer.set_exception(exc)
            return
        r = f.result()
        outer.set_result(
            dataclasses.replace(r, rejected=r.rejected + len(errors), errors=(*r.errors, *errors))
        )

    inner.add_done_callback(done)
    return outer
