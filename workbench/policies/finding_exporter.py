"""`FindingExporter`: the service inside `workbench serve` that sends each new finding out over OTLP/HTTP.

A SIEM or another collector set as `WORKBENCH_FINDINGS_OTLP_ENDPOINT` receives every finding the scanner
commits, as a `gen_ai.guardrail.security.finding` log record (`finding_events`), protobuf-encoded.

Contract, as an OpenTelemetry exporter's: it never blocks or fails ingest. The scanner tells it which
traces a committed scan touched (`on_scan`, which only records them); its own thread reads those
traces' findings back from the store (so only committed findings leave), keeps the ones not sent before
(by `finding_events.finding_id`, stable across rescans) and posts them. A failed post is retried a
bounded number of times with backoff, then dropped and counted; what is queued is bounded too. Findings
already stored when the service starts count as sent: "new" means new while this server runs.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable

from workbench.model import Finding
from workbench.policies.finding_events import export_request_bytes, finding_id
from workbench.store import findings as store_findings
from workbench.store.connection import Store

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # per batch; backoff doubles from BACKOFF_S
BACKOFF_S = 0.5
MAX_PENDING_TRACES = 10_000  # traces waiting to be read back; beyond this the oldest are dropped (logged)
MAX_REMEMBERED = 200_000  # finding ids remembered as sent
BATCH = 512  # findings per request
TIMEOUT_S = 10.0


class FindingExporter:
    """Posts new findings to an OTLP/HTTP logs endpoint on its own thread; `stop()` sends what is pending."""

    name = "findings-export"

    def __init__(self, store: Store, endpoint: str, *, headers: dict[str, str] | None = None) -> None:
        self.store = store
        self.endpoint = endpoint
        self.headers = {"Content-Type": "application/x-protobuf", **(headers or {})}
        self._pending: OrderedDict[str, None] = OrderedDict()
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-findings-export", daemon=True)
        self.exported = 0  # findings accepted by the endpoint
        self.dropped = 0  # findings given up on after MAX_ATTEMPTS, or traces dropped from a full queue
        self.idle = threading.Event()

    def start(self) -> None:
        for f in store_findings.list_findings(self.store, limit=None):
            self._remember(finding_id(f))
        self._thread.start()

    def on_scan(self, trace_ids: Iterable[str]) -> None:
        """Called by the scanner after it committed findings of these traces: record them, nothing more."""
        with self._lock:
            for trace_id in trace_ids:
                self._pending[trace_id] = None
                self._pending.move_to_end(trace_id)
            while len(self._pending) > MAX_PENDING_TRACES:
                dropped, _ = self._pending.popitem(last=False)
                self.dropped += 1
                log.warning("findings export: queue full, trace %s not exported", dropped)
        self.idle.clear()
        self._wake.set()

    def stop(self, grace_s: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=grace_s)

    def _run(self) -> None:
        while True:
            with self._lock:
                traces = list(self._pending)
                self._pending.clear()
            if not traces:
                self.idle.set()
                if self._stopping.is_set():
                    return
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                self._export(traces)
            except Exception:  # noqa: BLE001 (the exporter must not die: the next scan brings new work)
                log.exception("findings export: reading findings of %d trace(s) failed", len(traces))

    def _export(self, traces: list[str]) -> None:
        new: list[Finding] = []
        for trace_id in traces:
            for f in store_findings.list_findings(self.store, trace_id=trace_id, limit=None):
                if finding_id(f) not in self._sent:
                    new.append(f)
        for k in range(0, len(new), BATCH):
            batch = new[k : k + BATCH]
            if self._post(export_request_bytes(batch, time.time_ns())):
                self.exported += len(batch)
                for f in batch:
                    self._remember(finding_id(f))
            else:
                self.dropped += len(batch)

    def _post(self, body: bytes) -> bool:
        """True once the endpoint accepted the batch; bounded retries on failures worth retrying."""
        delay = BACKOFF_S
        for attempt in range(1, MAX_ATTEMPTS + 1):
            request = urllib.request.Request(self.endpoint, data=body, headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (configured URL)
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                retry = exc.code in (429, 502, 503, 504)
                problem = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                retry = not isinstance(exc, ValueError)
                problem = f"{type(exc).__name__}: {exc}"
            if not retry or attempt == MAX_ATTEMPTS:
                log.warning("findings export to %s failed (%s); batch dropped", self.endpoint, problem)
                return False
            if self._stopping.wait(delay):
                delay = min(delay, 0.1)  # stopping: finish quickly
            delay *= 2
        return False

    def _remember(self, key: str) -> None:
        self._sent[key] = None
        while len(self._sent) > MAX_REMEMBERED:
            self._sent.popitem(last=False)
