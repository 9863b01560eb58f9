"""`workbench demo`: its data directory rules in-process, and the whole demo as a user runs it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from sample_traces.catalog import SAMPLES
from tests.polling import wait_for
from workbench.cli import cli
from workbench.cli.demo import DEFAULT_DEMO_DIR, MARKER, demo_settings
from workbench.settings import Settings


def test_demo_directory_defaults_and_overrides() -> None:
    assert demo_settings(Settings(), None).data_dir == DEFAULT_DEMO_DIR == Path(".workbench/demo")
    chosen = demo_settings(Settings(db=Path("/data/real.duckdb")), Path("/tmp/d"))
    assert chosen.data_dir == Path("/tmp/d") and chosen.db_path == Path("/tmp/d/workbench.duckdb")


def test_demo_refuses_a_directory_it_did_not_create(tmp_path: Path) -> None:
    precious = tmp_path / "real"
    precious.mkdir()
    (precious / "workbench.duckdb").write_text("someone's data")
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(precious)])
    assert result.exit_code == 1
    assert "not created by `workbench demo`" in result.output and "Traceback" not in result.output
    assert (precious / "workbench.duckdb").read_text() == "someone's data"


def _workbench() -> list[str]:
    """The installed console script when there is one: it runs outside the source folder's sys.path."""
    script = Path(sys.executable).parent / "workbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "workbench.cli"]


@pytest.mark.slow
def test_demo_live_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    data.mkdir()
    (data / MARKER).write_text("")
    (data / "left-over.txt").write_text("from the last demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    # a free UI port: 8501 may be taken by any other Streamlit on the machine
    env.update(WORKBENCH_DATA_DIR=str(data), WORKBENCH_UI_PORT="0", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [*_workbench(), "demo", "--live", "--pace", "0", "--http-port", "0", "--grpc-port", "0"],
        cwd=tmp_path,  # not the source folder: the samples must be found without it on sys.path
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    seen: list[str] = []

    def live() -> bool:
        assert proc.poll() is None, "".join(seen)
        while not lines.empty():
            seen.append(lines.get())
        return any(line.startswith("live: every scripted agent has run") for line in seen)

    try:
        wait_for(live, 120, 0.2, "the demo to say every agent has run", details=lambda: "".join(seen))
        assert not (data / "left-over.txt").exists(), "the demo starts from a fresh directory"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    pumping.join(10)  # the demo exited: its output ends, and the pump with it
    while not lines.empty():
        seen.append(lines.get())
    output = "".join(seen)
    assert "94 spans from 5 sample incidents" in output
    for sample in SAMPLES:  # a deep link into the UI for every incident
        assert f"/replay?trace={sample.trace_id()}" in output
    table = [line for line in output.splitlines() if line.split(" ")[0] and len(line.split(" ")[0]) == 32]
    assert len(table) == 2 * len(SAMPLES), output
    verified = CliRunner().invoke(cli, ["--data-dir", str(data), "ledger", "verify"])
    assert verified.exit_code == 0 and "ledger OK: 188 spans" in verified.output
