"""From a request body to a batch ready to commit, in this process or in decode worker processes.

`prepare_body` is everything between the bytes a receiver read and the columns the writer inserts:
decompress, parse, validate, decode, normalize, build the Arrow columns and hash the canonical bytes.
It is pure and returns values (never raises for bad input), so it runs the same on a receiver's
thread and in a `DecodePool` worker.

Why worker processes: that work is about two thirds of the CPU an ingested span costs, all of it
Python holding the GIL. In one process it cannot use a second core however many threads run it; in a
worker process it runs beside the server, which keeps only HTTP, the ledger chain and the DuckDB
insert. A batch comes back as Arrow IPC (see `workbench.store.batch.Batch`), a few memory copies.
Nothing about durability changes: the server still answers only after its own commit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Protocol

from collectors import decode, decode_logs
from collectors.batching import build_batch, build_log_batch
from collectors.checks import safe_text
from collectors.pipeline import Normalizer, default_normalizer, safe_normalize
from workbench.errors import BadInput
from workbench.store.batch import Batch

log = logging.getLogger(__name__)


class _SpawnWithoutMainProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that does not re-run the parent's `__main__`.

    Spawn re-imports the parent's main module in the child. Inside `workbench serve`, Streamlit replaces
    `sys.modules["__main__"]` with the last UI page it ran, so a worker started after a page load (a
    replacement for a dead worker, or the first one in a test session that used AppTest) ran that page:
    it opened the database read-only and held its lock. Workers need nothing from `__main__`; the
    functions they run are importable by module name.
    """

    _swap = threading.Lock()

    def start(self) -> None:
        with self._swap:
            main = sys.modules.get("__main__")
            sys.modules["__main__"] = types.ModuleType("__main__")  # no __file__, no __spec__
            try:
                super().start()
            finally:
                if main is not None:
                    sys.modules["__main__"] = main


class _SpawnWithoutMain(multiprocessing.context.SpawnContext):
    Process = _SpawnWithoutMainProcess


class DecodeLimits(Protocol):
    """The settings decoding obeys (`workbench.settings.Settings` has them)."""

    @property
    def max_decompressed_bytes(self) -> int: ...

    @property
    def max_spans_per_request(self) -> int: ...

    @property
    def max_attribute_length(self) -> int: ...

    @property
    def max_value_depth(self) -> int: ...


@dataclass(frozen=True)
class Limits:
    """DecodeLimits as a small value to send to worker processes (Settings holds paths and a token)."""

    max_decompressed_bytes: int
    max_spans_per_request: int
    max_attribute_length: int
    max_value_depth: int = decode.DEFAULT_VALUE_DEPTH

    @classmethod
    def of(cls, settings: DecodeLimits) -> Limits:
        return cls(
            settings.max_decompressed_bytes,
            settings.max_spans_per_request,
            settings.max_attribute_length,
            settings.max_value_depth,
        )


@dataclass(frozen=True)
class Prepared:
    """The usable spans of a request (None when there were none) and a message per span that was not."""

    batch: Batch | None
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Refused:
    """A request refused whole: the HTTP status and the message that says what and where."""

    status: int
    message: str


# The two OTLP signals a body can hold (the path it was posted to, the gRPC service it called).
TRACES, LOGS = "traces", "logs"


def decode_logs_body(
    body: bytes, content_type: str, encoding: str | None, limits: DecodeLimits
) -> decode_logs.LogDecodeResult:
    """decode_body for a logs request: the same decompression, limits and per-record isolation."""
    raw = decode.decompress(body, encoding, limits.max_decompressed_bytes)
    req, left_out = decode_logs.parse_request(raw, content_type)
    n = decode_logs.count_records(req) + len(left_out)
    if n > limits.max_spans_per_request:
        raise BadInput(
            f"request holds {n} log records; the limit is {limits.max_spans_per_request} per request "
            "(WORKBENCH_MAX_SPANS_PER_REQUEST, which bounds log records too): send smaller batches",
            413,
        )
    result = decode_logs.to_records(req, limits.max_attribute_length, limits.max_value_depth)
    result.errors[:0] = left_out
    return result


def decode_body(
    body: bytes, content_type: str, encoding: str | None, limits: DecodeLimits
) -> decode.DecodeResult:
    """Everything between the raw body and the span records; raises BadInput."""
    raw = decode.decompress(body, encoding, limits.max_decompressed_bytes)
    req, left_out = decode.parse_request(raw, content_type)
    n = decode.count_spans(req) + len(left_out)
    if n > limits.max_spans_per_request:
        raise BadInput(
            f"request holds {n} spans; the limit is {limits.max_spans_per_request} per request "
            "(WORKBENCH_MAX_SPANS_PER_REQUEST): send smaller batches",
            413,
        )
    result = decode.to_records(req, limits.max_attribute_length, limits.max_value_depth)
    result.errors[:0] = left_out
    return result


def prepare_body(
    body: bytes,
    content_type: str,
    encoding: str | None,
    limits: DecodeLimits,
    normalize: Normalizer | None = None,
    otlp_signal: str = TRACES,
) -> Prepared | Refused:
    """A body as a batch ready to commit, or why it was refused. Bad input comes back as a value: an
    exception's traceback would hold the body and the decompressed bytes alive (see receiver_http).

    Never raises for anything a body holds: a surprise in decoding is a 400 naming the exception
    (and logged), because the alternative, a 500, would close the client's connection and tell it
    nothing; a span whose columns cannot be built is refused alone (collectors.batching).
    """
    try:
        if otlp_signal == LOGS:
            logs = decode_logs_body(body, content_type, encoding, limits)
            if not logs.records:
                return Prepared(None, logs.errors)
            batch, errors = build_log_batch(logs.records)
            return Prepared(batch, logs.errors + errors)
        result = decode_body(body, content_type, encoding, limits)
    except BadInput as exc:
        return Refused(exc.status, safe_text(str(exc), 2000))
    except RecursionError:
        return Refused(400, "request nested too deeply to be read")
    except Exception as exc:
        log.exception("a request body could not be decoded")
        return Refused(400, f"request could not be decoded: {type(exc).__name__}: {safe_text(str(exc))}")
    if not result.records:
        return Prepared(None, result.errors)
    norm = normalize or default_normalizer()
    steps = [safe_normalize(norm, r) for r in result.records]
    batch, errors = build_batch(result.records, steps)
    return Prepared(batch, result.errors + errors)


class DecodePool:
    """`prepare_body` in `workers` spawned processes, restarted if one of them dies.

    Workers exit on their own when the server process is gone, even after a SIGKILL: a pool's pipes
    are shared with every worker, so none would ever see end-of-file (see `_watch_parent`).
    """

    def __init__(self, workers: int, limits: DecodeLimits) -> None:
        if workers < 1:
            raise ValueError("a decode pool needs at least one worker")
        self.workers = workers
        self.limits = Limits.of(limits)
        self._lock = threading.Lock()
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            self.workers,
            mp_context=_SpawnWithoutMain(),  # spawn: no fork of a process running threads
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        # Spawning and importing take a second or two: start every worker now, not on the first request.
        for _ in range(self.workers):
            executor.submit(_ready)
        return executor

    def submit(
        self, body: bytes, content_type: str, encoding: str | None, otlp_signal: str = TRACES
    ) -> Future[Prepared | Refused]:
        """Prepare a body in a worker. The future fails with BrokenProcessPool if its worker died (the
        request can be retried: nothing was stored); the next submit starts a new pool."""
        args = (body, content_type, encoding, self.limits, None, otlp_signal)
        with self._lock:
            try:
                return self._executor.submit(prepare_body, *args)
            except BrokenProcessPool:
                log.warning("a decode worker died; starting %d new ones", self.workers)
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._start()
                return self._executor.submit(prepare_body, *args)

    def close(self) -> None:
        """Stop the workers once the requests they hold are done."""
        with self._lock:
            self._executor.shutdown(wait=True, cancel_futures=True)


def _ready() -> None:
    """A no-op task: its completion means a worker has started and imported what decoding needs."""


def _init_worker(parent_pid: int) -> None:
    # Ctrl-C reaches the whole process group; the server stops the pool itself, in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="watch-parent", daemon=True).start()
    default_normalizer()  # import the normalizer before the first request, not during it


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)  # the server is gone: nobody can use what this worker would prepare
