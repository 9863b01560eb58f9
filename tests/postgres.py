"""PostgreSQL for tests: one private server per test session, a fresh database per test.

Why a session-wide server: initdb takes seconds on a shared machine, a `CREATE DATABASE` takes a
fraction of one, and a database of its own is all the isolation a test needs. The server logic lives
in `workbench.server.postgres_local` because the demo cluster and the lake benchmark start the same
server; this module only ties it to pytest's lifecycle (and fails, never skips, when PostgreSQL is
missing: `make test` installs it).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.server import postgres_local
from workbench.server.postgres_local import LocalPostgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A started PostgreSQL on a free port; stopped (fast) and deleted after the session.

    Its directory is made with mkdtemp directly under the system temp dir, not under pytest's tmp_path:
    pytest's base directory is closed (0700) to the unprivileged user the server runs as when we are root.
    """
    try:
        postgres_local.binaries_dir()
    except postgres_local.PostgresMissing as exc:
        pytest.fail(str(exc))
    root = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    server = postgres_local.start(root, durable=False)
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_dsn(postgres_server: LocalPostgres) -> str:
    """A libpq connection string to a fresh, empty database of this test's own (the `--lake` form)."""
    return postgres_server.create_database()
