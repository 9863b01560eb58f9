"""Probe runs through a real `workbench serve`: the API queues and reports them, `workbench probe` uses it
while the server holds the database, and while a job is in the worker's child process the OTLP receiver
and the UI still answer; the server process itself never loads torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import ServerProcess
from tests.polling import wait_for
from tests.test_probes_worker import DB_SAMPLE, DB_TRACE, GATE_ENV, GATED_TINY
from workbench.cli import cli
from workbench.store import probes as probe_store
from workbench.store.connection import Store

pytestmark = pytest.mark.slow

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _until(what: str, check: Any, timeout: float = 120) -> Any:
    return wait_for(check, timeout, 0.1, what)


def test_probe_runs_through_a_served_workbench(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()  # the worker's child holds in its model load until the test removes this
    env = {
        "WORKBENCH_PROBE_MODEL": GATED_TINY,
        "WORKBENCH_PROBE_CONTEXT_CHARS": "300",
        "WORKBENCH_AUTH_TOKEN": TOKEN,
        GATE_ENV: str(gate),
    }
    server = ServerProcess(tmp_path / "served", env=env).start()
    try:
        api = f"{server.http_url}/api/v1"
        with httpx.Client(timeout=60, headers=AUTH) as client:
            sample = DB_SAMPLE.read_bytes()
            json_body = {"Content-Type": "application/json"}
            assert client.post(server.traces_url, content=sample, headers=json_body).status_code == 200
            _until("the sample trace", lambda: client.get(f"{api}/traces").json()["total"] == 1)

            good = {"trace_id": DB_TRACE, "step": 6, "analyses": ["logit_lens", "attention"]}
            assert httpx.post(f"{api}/probe-runs", json=good).status_code == 401
            refusals = [
                ({**good, "analyses": ["astrology"]}, "unknown analysis 'astrology'"),
                ({**good, "step": 99}, "out of range: the trace has 15 steps"),
                ({**good, "step_seq": 3}, "exactly one of 'step_seq'"),
                ({**good, "analyses": ["patching"]}, "counterfactual_reasoning"),
                ({**good, "trace_id": "ffffffff"}, "no trace with id"),
                ({**good, "colour": "red"}, "unknown field"),
            ]
            for body, message in refusals:
                resp = client.post(f"{api}/probe-runs", json=body)
                assert resp.status_code in (400, 404) and message in resp.json()["error"], (body, resp.text)
            resp = client.post(f"{api}/probe-runs", content=b"{not json", headers=json_body)
            assert resp.status_code == 400 and "not JSON" in resp.json()["error"]
            assert client.get(f"{api}/probe-runs/424242").status_code == 404
            assert client.get(f"{api}/probe-runs/abc").status_code == 400

            queued = client.post(f"{api}/probe-runs", json=good)
            assert queued.status_code == 201, queued.text
            run = queued.json()
            assert (
                run["status"] == "queued"
                and run["step"]["index"] == 6
                and run["trace_id"].startswith(DB_TRACE)
            )
            url = f"{api}/probe-runs/{run['id']}"
            _until("the run to start", lambda: client.get(url).json()["status"] == "running")

            # mid-job (the child is loading its model): ingest and the UI still answer
            assert client.post(server.traces_url, content=sample, headers=json_body).status_code == 200
            assert server.ui_port, server.log()
            health = httpx.get(f"http://127.0.0.1:{server.ui_port}/_stcore/health", headers=AUTH, timeout=60)
            assert health.status_code == 200

            gate.unlink()
            done = _until(
                "the run to end", lambda: (r := client.get(url).json())["status"] in ("done", "failed") and r
            )
            assert done["status"] == "done", done["error"]
            assert done["progress"] == 1.0 and done["provenance"]["model_id"] == "native-tiny"
            assert {r["analysis"] for r in done["results"]} == {"logit_lens", "attention"}
            assert all(len(r["data"]["tokens"]) == len(r["data"]["char_spans"]) for r in done["results"])

        # the CLI queues through the server (it cannot open the database) and prints the summary
        result = CliRunner().invoke(
            cli,
            [
                "--data-dir",
                str(server.data_dir),
                "probe",
                DB_TRACE,
                "--step",
                "12",
                "--analysis",
                "logit_lens",
            ],
            env={"WORKBENCH_AUTH_TOKEN": TOKEN},
        )
        assert result.exit_code == 0, result.output
        out = result.stdout  # the progress bar is on stderr
        assert out.startswith("probe run 2: trace 0413e656") and out.splitlines()[0].endswith("done"), out
        assert "logit lens: target" in out and "model native-tiny" in out
        assert "probe run 2" in result.stderr and "done" in result.stderr

        maps = Path(f"/proc/{server.proc.pid}/maps").read_text() if server.proc else ""
        assert maps and "libtorch" not in maps  # the model lived in the worker's child, not here
    finally:
        assert server.stop() == 0, server.log()


def test_sigterm_mid_model_load_stops_the_server_and_the_next_one_runs_the_job(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    env = {"WORKBENCH_PROBE_MODEL": GATED_TINY, "WORKBENCH_PROBE_CONTEXT_CHARS": "300", GATE_ENV: str(gate)}
    server = ServerProcess(tmp_path / "served", env=env).start()
    api = f"{server.http_url}/api/v1"
    try:
        with httpx.Client(timeout=60) as client:
            body = DB_SAMPLE.read_bytes()
            headers = {"Content-Type": "application/json"}
            assert client.post(server.traces_url, content=body, headers=headers).status_code == 200
            _until("the sample trace", lambda: client.get(f"{api}/traces").json()["total"] == 1)
            run = client.post(
                f"{api}/probe-runs", json={"trace_id": DB_TRACE, "step": 6, "analyses": ["attention"]}
            )
            assert run.status_code == 201, run.text
            url = f"{api}/probe-runs/{run.json()['id']}"
            _until("the run to start", lambda: client.get(url).json()["status"] == "running")
    finally:
        # before the child existed, this SIGTERM waited on the model load for over 60 s; a stop that
        # outlives the timeout is SIGKILLed and returns -9
        assert server.stop(timeout=20) == 0, server.log()
    with Store(server.db_path) as store:  # the shutdown put the unfinished run back in the queue
        left = probe_store.get_run(store, run.json()["id"])
        assert left is not None and left.status == "queued", left
    gate.unlink()
    server = ServerProcess(tmp_path / "served", env=env).start()
    try:
        with httpx.Client(timeout=60) as client:
            done = _until(
                "the requeued run",
                lambda: (
                    (r := client.get(url.replace(api, f"{server.http_url}/api/v1")).json())["status"]
                    in ("done", "failed")
                    and r
                ),
            )
        assert done["status"] == "done" and [r["analysis"] for r in done["results"]] == ["attention"], done
    finally:
        assert server.stop() == 0, server.log()
