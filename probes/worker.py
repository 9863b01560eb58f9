"""The probe worker inside `workbench serve`: takes queued probe runs, oldest first, and has a child
process (`probes/job_process.py`) compute them.

Why a thread here and the model in a child: DuckDB admits one writing process (the server), so the
claiming, progress and result writes happen on this thread; torch, the model load and the forward passes
happen in the child, which shares no GIL with the UI and the receivers and can be killed at any instant.
This module never imports torch. The child loads the model with its first job and stays warm.

On `stop()` (SIGTERM of the server) the child is terminated at once, even mid-load or mid-job, and the
run it had goes back to 'queued' (a server restart is not the run's fault; the next server runs it). A
child that dies on its own (a crash, the out-of-memory killer) fails its run with the exit status, and
a fresh child starts with the next run.

A `model` given to the constructor runs jobs on this thread instead (tests, embedding, no server).

In lake mode every node runs a worker over the one shared queue: a run is claimed only under its lease
in the catalog (`workbench.store.lake_lease`), so exactly one node runs it; the lease is renewed with
each progress message and released when the run ends. At start and stop a node requeues only runs whose
lease nobody else holds (a dead node's lapse after PROBE_LEASE_S).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probes.job_process import PARENT_ENV
from probes.text import step_input
from workbench.errors import WorkbenchError
from workbench.model import ProbeResult
from workbench.settings import ENV_PREFIX, Settings, env_name
from workbench.store import probes as probe_store
from workbench.store import queries
from workbench.store.connection import Store
from workbench.store.lake_lease import Lease, LeaseTable

if TYPE_CHECKING:  # torch and transformer_lens load with the first job, not with the server
    from probes.models import LoadedModel

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
# How long a terminated child may take before it is killed; stop() as a whole stays well under 10 s.
TERMINATE_GRACE_S = 2.0
# Lake mode: how long a node's lease on a probe run lasts without a progress message (a model load).
PROBE_LEASE_S = 900.0
_ROOT = Path(__file__).resolve().parent.parent


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


def _exit_text(code: int | None) -> str:
    if code is None:
        return "is unresponsive"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the out-of-memory killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


class JobProcess:
    """One `python -m probes.job_process` child: send a job, read its JSON-line answers from a queue.

    A reader thread turns stdout lines into dicts on `messages`; None there means the child's stdout
    closed (it exited or was killed)."""

    def __init__(self, settings: Settings) -> None:
        # The child's settings are exactly the parent's (CLI flags included), not a re-read of WORKBENCH_*.
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update(
            {
                env_name("data_dir"): str(settings.data_dir),
                env_name("probe_model"): settings.probe_model,
                env_name("probe_threads"): str(settings.probe_threads),
                "PYTHONPATH": os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p),
                "PYTHONUNBUFFERED": "1",
                PARENT_ENV: str(os.getpid()),
            }
        )
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        # Its own session: a Ctrl-C in the server's terminal reaches the server, which then stops this.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "probes.job_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            encoding="utf-8",
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="probe-job-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.messages.put(json.loads(line))
            except json.JSONDecodeError:
                log.warning("probe job process wrote a non-protocol line: %.200s", line)
        self.messages.put(None)

    def send(self, job: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()

    def close(self) -> int | None:
        """Terminate (then kill) the child; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TERMINATE_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        return self.proc.returncode


class ProbeWorker:
    """A `workbench.server.Service`: polls `probe_runs` for queued rows and runs them one at a time."""

    name = "probe-worker"

    def __init__(self, settings: Settings, store: Store, model: LoadedModel | None = None) -> None:
        self.settings = settings
        self.store = store
        self._model = model
        self._child: JobProcess | None = None
        self._child_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.leases: LeaseTable | None = None  # lake mode: the catalog's leases, opened by start()
        self._lease: Lease | None = None  # the lease on the run this node runs now

    @property
    def child_pid(self) -> int | None:
        """The job process's PID while one runs (tests kill it to play a crash)."""
        child = self._child
        return child.pid if child is not None and child.proc.poll() is None else None

    def start(self) -> None:
        if self.store.is_lake and self.settings.lake:
            self.leases = LeaseTable(self.settings.lake, self.store.node_id or "node")
        requeued = probe_store.requeue_running(self.store, self.leases)
        if requeued:
            log.warning("requeued %d probe run(s) left running by an earlier process", requeued)
        self._thread = threading.Thread(target=self._loop, name="probe-worker", daemon=True)
        self._thread.start()

    def wake(self, *_: Any) -> None:
        """Look at the queue now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Prompt even mid-job: the child is terminated, the thread joined, an unfinished run requeued."""
        self._stop.set()
        self._wake.set()
        with self._child_lock:
            child, self._child = self._child, None
        if child is not None:
            child.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                log.warning("probe worker thread still busy at shutdown (an in-process job)")
                return
        if self._model is None:
            requeued = probe_store.requeue_running(self.store, self.leases)
            if requeued:
                log.warning("shutdown: %d probe run(s) back to 'queued' for the next server", requeued)
        self._release()
        if self.leases is not None:
            self.leases.close()

    def _claim(self) -> probe_store.ProbeRun | None:
        if self.leases is None:
            return probe_store.claim_next(self.store)
        got = probe_store.claim_next_leased(self.store, self.leases, PROBE_LEASE_S)
        if got is None:
            return None
        run, self._lease = got
        return run

    def _release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None and self.leases is not None:
            try:
                self.leases.release(lease)
            except Exception:  # it lapses on its own
                log.exception("releasing %s failed", lease.name)

    def _renew(self) -> None:
        if self._lease is not None and self.leases is not None:
            try:
                self._lease = self.leases.renew(self._lease, PROBE_LEASE_S) or self._lease
            except Exception:
                log.exception("renewing %s failed", self._lease.name)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run = self._claim()
            except Exception:
                log.exception("probe worker cannot read the queue")
                run = None
            if run is None:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
                continue
            if self._model is not None:
                execute_run(self.store, run, self._model, self.settings)
                self._release()
                continue
            try:
                self._run_in_child(run)
            except Exception as exc:  # the store or the pipe failed: fail the run, keep the worker
                if self._stop.is_set():
                    return
                log.error("probe run %s failed:\n%s", run.id, traceback.format_exc())
                probe_store.finish_run(self.store, run.id, error=f"{type(exc).__name__}: {exc}")
            if self._stop.is_set():
                return  # stop() requeues the run, then releases its lease
            self._release()

    def _ensure_child(self) -> JobProcess:
        with self._child_lock:
            if self._stop.is_set():
                raise RuntimeError("stopping")
            if self._child is None or self._child.proc.poll() is not None:
                self._child = JobProcess(self.settings)
            return self._child

    def _run_in_child(self, run: probe_store.ProbeRun) -> None:
        try:
            steps = queries.trace_steps(self.store, run.trace_id)
            inp = step_input(steps, run.step_seq, self.settings.probe_context_chars)
        except WorkbenchError as exc:
            probe_store.finish_run(self.store, run.id, error=str(exc))
            return
        child = self._ensure_child()
        job = {
            "run_id": run.id,
            "input": {"context": inp.context, "reasoning": inp.reasoning, "action": inp.action},
            "analyses": run.analyses,
            "params": run.params,
        }
        try:
            child.send(job)
        except OSError:  # it died between jobs: its reader reports the exit below, like a death mid-job
            log.warning(
                "probe job process %s is gone; run %s fails, the next run gets a fresh one", child.pid, run.id
            )
        while True:
            try:
                msg = child.messages.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return  # stop() terminated the child and requeues the run
                continue
            if self._stop.is_set():
                return
            if msg is None:
                code = child.close()
                with self._child_lock:
                    if self._child is child:
                        self._child = None
                probe_store.finish_run(
                    self.store,
                    run.id,
                    error=f"the probe job process {_exit_text(code)} during this run; "
                    "a fresh one starts with the next run",
                )
                return
            if msg.get("run_id") != run.id:
                continue
            kind = msg.get("type")
            if kind == "progress":
                probe_store.set_progress(self.store, run.id, 0.9 * float(msg["fraction"]))
                self._renew()
            elif kind == "provenance":
                probe_store.set_provenance(self.store, run.id, msg["provenance"])
            elif kind == "done":
                for r in msg["results"]:
                    probe_store.write_result(
                        self.store, ProbeResult(run.id, r["analysis"], r["summary"], r["data"])
                    )
                probe_store.finish_run(self.store, run.id)
                return
            elif kind == "failed":
                probe_store.finish_run(self.store, run.id, error=str(msg["error"]))
                return
