"""`FindingsScanner`: the service inside `workbench serve` that keeps findings current as spans arrive.

The pipeline tells it of each committed seq range on the writer thread, where nothing slow may happen, so
the listener only records the range. The scanner's own thread waits a short debounce (a burst of commits
becomes one scan), finds the traces the new ranges touched, and rescans each of them whole: a new step
can complete a taint chain that began many steps earlier. On start it catches up from the stored
watermark, so spans committed while no scanner ran (or under other rules) are covered too.
Scan listeners (the findings exporter) hear which traces each committed scan covered, on this thread.

In lake mode several nodes share the findings, and the spans of one trace may arrive at two of them: each
trace is scanned only under its lease in the catalog (`workbench.store.lake_lease`), so exactly one node
scans it at a time. A trace whose lease another node holds is deferred and retried after the debounce
(that node may have started before our spans were committed, so our rescan is still needed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from workbench.policies.engine import Engine, ScanCancelled, ScanReport, catch_up_ids, scan_traces
from workbench.store import findings as store_findings
from workbench.store.connection import Store
from workbench.store.lake_lease import Lease, LeaseTable, scan_lease_name

log = logging.getLogger(__name__)

# Seconds waited after a scan, as a multiple of how long it took (see _run).
BACKOFF = 3.0
# How long a node's scan lease on a trace lasts: far longer than a scan, so only a dead node's lapses.
SCAN_LEASE_S = 300.0


class CommitSource(Protocol):
    """What the scanner needs of the ingest pipeline (collectors.pipeline.IngestPipeline has it)."""

    def add_commit_listener(self, listener: Any) -> None: ...


class FindingsScanner:
    """Scans traces touched by new commits on its own thread; `stop()` scans what is pending, then ends."""

    name = "findings"

    def __init__(
        self,
        store: Store,
        engine: Engine,
        pipeline: CommitSource | None,
        debounce_s: float = 0.5,
        leases: LeaseTable | None = None,
    ) -> None:
        self.store = store
        self.leases = leases  # lake mode: scan a trace only under its lease in the catalog
        self._deferred: set[str] = set()  # traces another node was scanning: retried after the debounce
        self.engine = engine
        self.pipeline = pipeline
        self.debounce_s = debounce_s
        self._ranges: list[tuple[int, int]] = []
        self._touched: set[str] = set()  # trace ids the recorded ranges stored spans or log records of
        self._unnamed = False  # a range was told without its trace ids: look them up in the store
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-findings", daemon=True)
        self.scans = 0  # completed scan passes, for tests and the log
        self.last_scan_s = 0.0
        self.idle = threading.Event()
        self._scan_listeners: list[Callable[[list[str]], None]] = []

    def add_scan_listener(self, listener: Callable[[list[str]], None]) -> None:
        """Called with the trace ids of each scan once its findings are committed; must not block."""
        self._scan_listeners.append(listener)

    def _tell(self, trace_ids: list[str]) -> None:
        for listener in self._scan_listeners:
            try:
                listener(trace_ids)
            except Exception:
                log.exception("findings: a scan listener failed")

    def start(self) -> None:
        if self.pipeline is not None:
            self.pipeline.add_commit_listener(self.on_commit)
        self._thread.start()

    def on_commit(self, first_seq: int, last_seq: int, traces: frozenset[str] | None = None) -> None:
        """Called on the writer thread: record the range and its traces and wake the scanner, nothing
        more. Without `traces` the scan looks the range up in the store."""
        with self._lock:
            self._ranges.append((first_seq, last_seq))
            if traces is None:
                self._unnamed = True
            else:
                self._touched |= traces
        self.idle.clear()
        self._wake.set()

    def stop(self, grace_s: float = 5.0) -> None:
        """Scan what is pending if that is quick; otherwise cancel it (the next start catches up from
        the watermark), so that a shutdown never waits on a 100k-step rescan."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=grace_s)
        if self._thread.is_alive():
            self.engine.cancel.set()
            self._thread.join(timeout=20)
        if self.leases is not None and not self._thread.is_alive():
            self.leases.close()

    def _run(self) -> None:
        try:
            scanned, _ = store_findings.scan_watermark(self.store)
            todo = catch_up_ids(self.store, self.engine)
            report = self._scan_ids(*todo) if todo else ScanReport()
            if report.traces:
                log.info("findings: caught up %d trace(s), %d finding(s)", report.traces, report.findings)
                if self._scan_listeners:
                    top = store_findings.max_step_seq(self.store)
                    self._tell(store_findings.traces_in_range(self.store, scanned + 1, top))
        except ScanCancelled:
            pass  # stopped while catching up: the watermark still says where to resume
        except Exception:
            log.exception("findings: catching up from the watermark failed")
        while True:
            with self._lock:
                # at shutdown, deferred traces are left to the node that holds them
                empty = not self._ranges and (not self._deferred or self._stopping.is_set())
            if empty:
                self.idle.set()
                if self._stopping.is_set():
                    return
                self._wake.wait()
            self._wake.clear()
            if not self._stopping.is_set():
                # Let a burst of commits gather. A trace is rescanned whole, so while one long trace
                # grows, back-to-back rescans would cost O(n^2) and starve ingest (the Phoenix benchmark
                # saw the scanner take 40% of the server's CPU): waiting BACKOFF times the last scan's
                # duration keeps the scanner under 1/(1+BACKOFF) of a core whatever the trace length.
                self._stopping.wait(max(self.debounce_s, BACKOFF * self.last_scan_s))
            with self._lock:
                ranges, self._ranges = self._ranges, []
                touched, self._touched = self._touched, set()
                unnamed, self._unnamed = self._unnamed, False
            if ranges or (self._deferred and not self._stopping.is_set()):
                began = time.monotonic()
                self._scan(ranges, None if unnamed else touched)
                self.last_scan_s = time.monotonic() - began

    def _scan(self, ranges: list[tuple[int, int]], touched: set[str] | None = None) -> None:
        """Rescan the traces these commits touched: named by the writer, else looked up by seq range
        (one query per range, whose cost grows with the store)."""
        try:
            traces: list[str] = sorted(touched) if touched is not None else []
            for first, last in ranges if touched is None else ():
                traces += store_findings.traces_in_range(self.store, first, last)
            with self._lock:
                traces += sorted(self._deferred - set(traces))
                self._deferred.clear()
            scanned, _ = store_findings.scan_watermark(self.store)
            top = max([scanned, *(last for _, last in ranges)])
            report = self._scan_ids(traces, top)
            self._tell(traces)
            self.scans += 1
            log.debug("findings: %d trace(s) rescanned, %d finding(s)", report.traces, report.findings)
        except ScanCancelled:
            log.info("findings: scan cancelled by shutdown; the next start catches up from the watermark")
        except Exception:
            # The process stays up: the watermark did not move, so the next start catches these traces up.
            log.exception("findings: scanning seqs %s failed", ranges)

    def _scan_ids(self, traces: list[str], watermark: int) -> ScanReport:
        """scan_traces, under each trace's lease when there are leases; traces held elsewhere wait."""
        if self.leases is None:
            return scan_traces(self.store, self.engine, traces, watermark=watermark)
        held: list[Lease] = []
        try:
            mine: list[str] = []
            for trace_id in dict.fromkeys(traces):
                lease = self.leases.acquire(scan_lease_name(trace_id), SCAN_LEASE_S)
                if lease is None:
                    with self._lock:
                        self._deferred.add(trace_id)
                else:
                    held.append(lease)
                    mine.append(trace_id)
            return scan_traces(self.store, self.engine, mine, watermark=watermark)
        finally:
            for lease in held:
                try:
                    self.leases.release(lease)
                except Exception:  # it lapses on its own; the next scan of the trace is not blocked long
                    log.exception("findings: releasing %s failed", lease.name)
