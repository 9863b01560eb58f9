"""Shared fixtures: an isolated data directory for every test, and a real `workbench serve` subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchmarks.browser import CHROMIUM, chromium
from tests.polling import wait_for

# PostgreSQL (Debian's package, installed by `make postgres`): the lake's catalog in the lake tests.
from tests.postgres import postgres_dsn, postgres_server  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test touches the user's ./.workbench: every WORKBENCH_* variable is cleared, the data dir is tmp."""
    for name in list(os.environ):
        if name.startswith("WORKBENCH_"):
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(data))
    return data


@dataclass
class ServerProcess:
    """`workbench serve` as a child process on free loopback ports, as a user would run it."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    http_port: int = 0
    grpc_port: int = 0
    ui_port: int = 0  # the workbench UI, read from the "UI  http://..." startup line
    log_path: Path | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def traces_url(self) -> str:
        return f"{self.http_url}/v1/traces"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "workbench.duckdb"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        info = self.data_dir / "server.json"
        info.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
        env.update(
            {
                "WORKBENCH_DATA_DIR": str(self.data_dir),
                "WORKBENCH_HTTP_PORT": "0",
                "WORKBENCH_GRPC_PORT": "0",
                "WORKBENCH_UI_PORT": "0",  # the in-process UI too: never a fixed port in tests
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env)
        self.log_path = self.data_dir / f"serve-{int(time.time() * 1000)}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"workbench serve exited with {proc.returncode}:\n{self.log()}")
            # the line alone: "Address already in use" contains the word too
            return re.search(r"^ready$", self.log(), re.MULTILINE) is not None

        try:
            wait_for(ready, timeout, 0.05, "workbench serve to say ready", details=self.log)
        except AssertionError:
            self.kill()
            raise
        data = json.loads(info.read_text())
        self.http_port, self.grpc_port = data["http_port"], data["grpc_port"]
        ui = re.search(r"^UI +http://[^ ]*:(\d+)/", self.log(), re.MULTILINE)
        self.ui_port = int(ui.group(1)) if ui else 0
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash that acknowledged-means-durable must survive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: a graceful shutdown commits the queue and releases the database."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """A started server on a fresh data directory; stopped (gracefully) after the test."""
    server = ServerProcess(tmp_path / "served").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# Debian's chromium, driven by Playwright (which never downloads a browser here): the UI's browser tests,
# opened by the helper the benchmarks use too, so both drive the same browser with the same flags.
@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
        )
    # A fresh user data dir per test; Streamlit scrolls inside its own container, so a tall window is
    # what makes a full screenshot.
    with chromium(tmp_path / "chromium-profile", height=2400) as context:
        yield context.new_page()
