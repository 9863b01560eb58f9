"""The probe worker inside `workbench serve`: takes queued probe runs, oldest first, on its own thread.

Why a thread in the server process: DuckDB admits one writing process, and the model is large enough
that loading it once and keeping it warm matters. The model loads lazily on the first job, so a server
that never probes never pays for it. The UI queues a run and polls its status and progress; it never
waits on the model.
"""

from __future__ import annotations

import logging
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probes.text import step_input
from workbench.errors import WorkbenchError
from workbench.settings import Settings
from workbench.store import probes as probe_store
from workbench.store import queries
from workbench.store.connection import Store

if TYPE_CHECKING:  # torch and transformer_lens load with the first job, not with the server
    from probes.models import LoadedModel

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5


def execute_run(store: Store, run: probe_store.ProbeRun, model: LoadedModel, settings: Settings) -> None:
    """Run one claimed probe run to 'done' or 'failed'; never raises for a bad run."""
    from probes.runner import run_analyses

    try:
        probe_store.set_provenance(store, run.id, model.provenance.as_dict())
        steps = queries.trace_steps(store, run.trace_id)
        inp = step_input(steps, run.step_seq, settings.probe_context_chars)
        results = run_analyses(
            model,
            inp,
            run.analyses,
            run.params,
            progress=lambda f, _msg: probe_store.set_progress(store, run.id, 0.9 * f),
            run_id=run.id,
        )
        for result in results:
            probe_store.write_result(store, result)
        probe_store.finish_run(store, run.id)
    except WorkbenchError as exc:
        probe_store.finish_run(store, run.id, error=str(exc))
    except Exception as exc:  # a bug in one run must not take the worker (or the server) down
        log.error("probe run %s failed:\n%s", run.id, traceback.format_exc())
        probe_store.finish_run(store, run.id, error=f"{type(exc).__name__}: {exc}")


class ProbeWorker:
    """A `workbench.server.Service`: polls `probe_runs` for queued rows and runs them one at a time."""

    name = "probe-worker"

    def __init__(self, settings: Settings, store: Store, model: LoadedModel | None = None) -> None:
        self.settings = settings
        self.store = store
        self._model = model
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def model(self) -> LoadedModel:
        if self._model is None:
            from probes.models import load_model

            self._model = load_model(
                self.settings.probe_model, Path(self.settings.data_dir), self.settings.probe_threads
            )
        return self._model

    def start(self) -> None:
        requeued = probe_store.requeue_running(self.store)
        if requeued:
            log.warning("requeued %d probe run(s) left running by an earlier process", requeued)
        self._thread = threading.Thread(target=self._loop, name="probe-worker", daemon=True)
        self._thread.start()

    def wake(self, *_: Any) -> None:
        """Look at the queue now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run = probe_store.claim_next(self.store)
            except Exception:
                log.exception("probe worker cannot read the queue")
                run = None
            if run is None:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
                continue
            try:
                model = self.model()
            except WorkbenchError as exc:
                probe_store.finish_run(self.store, run.id, error=str(exc))
                continue
            except Exception as exc:
                log.exception("loading the probe model failed")
                probe_store.finish_run(self.store, run.id, error=f"model load failed: {exc}")
                continue
            execute_run(self.store, run, model, self.settings)
