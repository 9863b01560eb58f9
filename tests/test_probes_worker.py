"""The probe worker runs jobs in a child process (probes/job_process.py): a real child with the tiny
`boot_native` model (tests/probes_tiny.py) on a real DuckDB file; a killed child fails its run clearly
and the next run gets a fresh one; stop() mid-job ends the child and requeues the run (how long stop()
takes is measured by benchmarks/probe_worker.py, not asserted here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.polling import wait_for
from workbench.cli.loading import ingest_files
from workbench.settings import Settings
from workbench.store import probes as probe_store
from workbench.store import queries
from workbench.store.connection import Store

ROOT = Path(__file__).resolve().parent.parent
DB_SAMPLE = ROOT / "sample_traces" / "db_deletion.json"
DB_TRACE = "0413e656"
GATE_ENV = "PROBES_WORKER_TEST_GATE"
# What the child loads: the tiny model, held back while the gate file named by GATE_ENV exists.
GATED_TINY = "factory:tests.test_probes_worker:gated_tiny_model"


def gated_tiny_model() -> Any:
    """Model factory for the child process: waits while the gate file exists (a slow model load the
    test can stand in the middle of), then builds the tiny model."""
    gate = os.environ.get(GATE_ENV)
    if gate:
        wait_for(lambda: not Path(gate).exists(), 120, 0.05, f"the test to remove the gate file {gate}")
    from tests.probes_tiny import tiny_model

    return tiny_model()


def _wait(what: str, check: Any, timeout: float = 120) -> Any:
    return wait_for(check, timeout, 0.05, what)


def _status(store: Store, run_id: int) -> probe_store.ProbeRun:
    run = probe_store.get_run(store, run_id)
    assert run is not None
    return run


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Store, str, int, Path]:
    gate = tmp_path / "gate"
    monkeypatch.setenv(GATE_ENV, str(gate))
    settings = Settings(data_dir=tmp_path / "data", probe_context_chars=300, probe_model=GATED_TINY)
    ingest_files(settings, [DB_SAMPLE])
    store = Store(settings.db_path)
    trace = queries.resolve_trace_id(store, DB_TRACE)
    steps = queries.trace_steps(store, trace)
    seq = next(s for s in steps if s.step.reasoning_text and "DROP" in (s.step.output_text or "")).seq
    return settings, store, trace, seq, gate


def test_worker_runs_jobs_in_a_child_that_is_replaced_after_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probes.worker import ProbeWorker

    settings, store, trace, seq, gate = _setup(tmp_path, monkeypatch)
    gate.touch()
    with store:
        worker = ProbeWorker(settings, store)
        worker.start()
        try:
            crashed = probe_store.insert_run(store, trace, seq, ["logit_lens"])
            _wait("the run to be claimed", lambda: _status(store, crashed).status == "running")
            pid = _wait("the job process", lambda: worker.child_pid)
            os.kill(pid, signal.SIGKILL)  # mid-job: the child is still loading the model
            run = _wait(
                "the crashed run to fail", lambda: (r := _status(store, crashed)).status == "failed" and r
            )
            assert "killed by SIGKILL" in (run.error or "") and "next run" in (run.error or ""), run.error

            gate.unlink()
            bad = probe_store.insert_run(store, trace, seq, ["patching"])  # no counterfactual
            good = probe_store.insert_run(
                store,
                trace,
                seq,
                ["logit_lens", "attention", "patching"],
                {"counterfactual_reasoning": "Archive."},
            )
            done = _wait(
                "the good run", lambda: (r := _status(store, good)).status in ("done", "failed") and r
            )
            assert done.status == "done", done.error
            assert worker.child_pid not in (None, pid)  # a fresh child, still warm after the job
            failed = _status(store, bad)
            assert failed.status == "failed" and "counterfactual" in (failed.error or "")
        finally:
            worker.stop()
        assert done.provenance["model_id"] == "native-tiny"
        assert done.provenance["mode"] == "TransformerBridge" and done.progress == 1.0
        results = {r.analysis: r for r in probe_store.results_of_run(store, good)}
        assert set(results) == {"logit_lens", "attention", "patching"}
        lens = results["logit_lens"].data
        assert len(lens["target_rank"]) == 3 and len(lens["tokens"]) == len(lens["char_spans"])
        assert "DROP" in lens["step_text"] or "drop" in lens["step_text"]


def test_stop_mid_job_ends_the_child_and_requeues_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probes.worker import ProbeWorker

    settings, store, trace, seq, gate = _setup(tmp_path, monkeypatch)
    gate.touch()  # the child never gets past the model load
    with store:
        worker = ProbeWorker(settings, store)
        worker.start()
        run_id = probe_store.insert_run(store, trace, seq, ["logit_lens"])
        _wait("the run to be claimed", lambda: _status(store, run_id).status == "running")
        pid = _wait("the job process", lambda: worker.child_pid)
        worker.stop()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the child is gone (reaped), not left behind
        assert _status(store, run_id).status == "queued"


def test_the_worker_module_does_not_import_torch() -> None:
    code = (
        "import sys, probes.worker, workbench.server.api, workbench.cli.probe, workbench.cli; "
        "print(sorted(m for m in ('torch', 'transformer_lens') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # killed, waiting for init to reap it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_dies_with_a_killed_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = tmp_path / "gate"
    gate.touch()  # the child would sit in its model load for two minutes
    monkeypatch.setenv(GATE_ENV, str(gate))
    code = (
        "import sys, time\n"
        "from probes.worker import JobProcess\n"
        "from workbench.settings import Settings\n"
        f"child = JobProcess(Settings(data_dir={str(tmp_path / 'd')!r}, probe_model={GATED_TINY!r}))\n"
        "child.send({'run_id': 1, 'input': {'context': 'c', 'reasoning': 'r', 'action': 'a'}, "
        "'analyses': ['attention'], 'params': {}})\n"
        "assert child.messages.get(timeout=120)['message'] == 'loading model'\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        pid = int(server.stdout.readline())
        time.sleep(0.5)  # it said "loading model": it sits in the gated load, writing nothing
        assert not _gone(pid)
    finally:
        server.kill()  # the server process dies without a chance to stop its worker
        server.wait(10)
    _wait("the orphaned child to die", lambda: _gone(pid), timeout=20)
