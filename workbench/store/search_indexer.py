"""`SearchIndexer`: the service inside `workbench serve` that keeps the search side index in step.

Why a thread of its own: indexing a step's text costs tens of microseconds of CPU, which must not
sit between a commit and its acknowledgement. The pipeline's commit listener only wakes this thread;
it catches up from the index's watermark in bounded chunks (so a store indexed from nothing, after a
renormalize or a lost file, is indexed in the background while searches scan the rest).

It waits `debounce_s` (1 s) between updates: an update has a fixed cost of a few DuckDB statements
and an SQLite transaction (about 11 ms here), so 50-step updates cost 4x the CPU per step of
1,000-step ones (2.9 vs 0.72 s per 10,000 steps, measured). A second's lag is a second more of steps
that a search scans past the watermark; searches stay exact whatever the lag (see `search_index`).
The index is attached to the store only once it is known to belong to this database.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from workbench.store import search_index
from workbench.store.connection import Store

log = logging.getLogger(__name__)


class CommitSource(Protocol):
    def add_commit_listener(self, listener: Any) -> None: ...


class SearchIndexer:
    """Appends new steps to the side index after each commit; `stop()` ends after the current chunk."""

    name = "search-index"

    def __init__(self, store: Store, pipeline: CommitSource | None, debounce_s: float = 1.0) -> None:
        self.store = store
        self.pipeline = pipeline
        self.debounce_s = debounce_s
        self.index: search_index.SearchIndex | None = None
        self.idle = threading.Event()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-search-index", daemon=True)

    def start(self) -> None:
        if self.pipeline is not None:
            self.pipeline.add_commit_listener(self.on_commit)
        self._wake.set()  # catch up at once
        self._thread.start()

    def on_commit(self, first_seq: int, last_seq: int, traces: frozenset[str] = frozenset()) -> None:
        """Called on the writer thread: wake the indexer, nothing more."""
        self.idle.clear()
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=30)
        search_index.detach(self.store)
        if self.index is not None and not self._thread.is_alive():
            # Folds SQLite's WAL into the file: what a command on the file reads next (left_beside).
            self.index.close()

    def _open(self) -> search_index.SearchIndex:
        index = search_index.SearchIndex(search_index.index_path(self.store))
        if not index.matches_store(self.store):
            log.warning("search index %s was built from another database: rebuilding it", index.path)
            index.reset()
        search_index.attach(self.store, index)
        return index

    def _run(self) -> None:
        try:
            self.index = self._open()
        except Exception:
            log.exception("search index: cannot open it; searches scan the steps")
            return
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            try:
                while not self._stopping.is_set() and self.index.update(self.store):
                    pass
            except Exception:
                # Searches stay exact (they scan past the watermark); the next commit tries again.
                log.exception("search index: update failed")
            if not self._wake.is_set():
                self.idle.set()
            self._stopping.wait(self.debounce_s)
