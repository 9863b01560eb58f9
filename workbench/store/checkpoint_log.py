"""The service that appends signed tree heads to a log outside the data directory while `serve` runs.

Why: a head kept only inside the database can be cut with the tail it covers. Written every N spans
or every N minutes (`WORKBENCH_CHECKPOINT_EVERY`: "10000" spans, or "5m"), to `WORKBENCH_CHECKPOINT_LOG`,
and once more at stop. Follows the Service pattern of workbench/server.py build_services (start, stop).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from workbench.errors import WorkbenchError
from workbench.store import treehead
from workbench.store.connection import Store

log = logging.getLogger(__name__)


def parse_every(text: str) -> tuple[int | None, float | None]:
    """("10000") -> (10000 spans, None); ("5m") -> (None, 300 seconds)."""
    value = text.strip().lower()
    try:
        if value.endswith("m"):
            return None, float(value[:-1]) * 60
        return int(value), None
    except ValueError as exc:
        raise WorkbenchError(
            f"WORKBENCH_CHECKPOINT_EVERY: {text!r} is neither spans (10000) nor minutes (5m)"
        ) from exc


class CheckpointLogService:
    """Appends a signed tree head to `path` when `every` is reached; the file is opened for append and
    fsynced, so a crash loses at most the head being written."""

    name = "checkpoint-log"

    def __init__(
        self, store: Store, key: Ed25519PrivateKey, path: Path, every: str, poll_s: float = 5.0
    ) -> None:
        self.store, self.key, self.path = store, key, path
        self.every_spans, self.every_s = parse_every(every)
        self.poll_s = poll_s if self.every_s is None else min(poll_s, self.every_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-checkpoint-log", daemon=True)
        self._last_size = -1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        self.write_now()

    def write_now(self) -> None:
        """Append a head of the ledger as it is now, unless the last one written has the same size."""
        try:
            head = treehead.current(self.store)
            if head.size == self._last_size:
                return
            note = treehead.sign(head, self.key)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(note + "\n")
                f.flush()
                os.fsync(f.fileno())
            self._last_size = head.size
        except Exception:  # a checkpoint failure must not stop ingest; it is logged loudly
            log.exception("could not append a signed tree head to %s", self.path)

    def _run(self) -> None:
        waited = 0.0
        while not self._stop.wait(self.poll_s):
            waited += self.poll_s
            if self.every_s is not None and waited >= self.every_s:
                waited = 0.0
                self.write_now()
            elif self.every_spans is not None:
                row = self.store.cursor().execute("SELECT coalesce(max(seq), 0) FROM ledger").fetchone()
                size = int(row[0]) if row else 0
                if size - max(self._last_size, 0) >= self.every_spans:
                    self.write_now()
