"""The catalog DSN's password never reaches an error message or a store's name.

Why: `--lake` takes a libpq connection string, which may hold the catalog's password, and the error of a
failed ATTACH is printed to the terminal and the server log. DuckDB's own error text may quote the
string as well, so both are masked."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.settings import Settings
from workbench.store import lake
from workbench.store.lake_lease import LeaseTable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "dsn",
    [
        "host=127.0.0.1 port={port} user=wb password=hunter2-secret dbname=lake connect_timeout=2",
        "host=127.0.0.1 port={port} password='hunter2-secret with space' dbname=lake connect_timeout=2",
        "postgresql://wb:hunter2-secret@127.0.0.1:{port}/lake?connect_timeout=2",
    ],
)
def test_a_failed_attach_names_the_catalog_without_its_password(tmp_path: Path, dsn: str) -> None:
    dsn = dsn.format(port=_closed_port())
    settings = Settings(data_dir=tmp_path, lake=dsn, data_path=str(tmp_path / "data"), node_id="n1")
    with pytest.raises(WorkbenchError) as err:
        lake.open_lake(settings)
    message = str(err.value)
    assert "cannot attach the lake" in message
    assert "127.0.0.1" in message  # still says which catalog
    assert "hunter2" not in message
    with pytest.raises(WorkbenchError) as err:
        LeaseTable(dsn, "n1")
    assert "127.0.0.1" in str(err.value) and "hunter2" not in str(err.value)


def test_redaction_keeps_everything_but_the_password() -> None:
    assert lake.redact_dsn("host=h port=5 password=pw dbname=d") == "host=h port=5 password=*** dbname=d"
    assert lake.redact_dsn("PASSWORD = 'a b\\' c' user=u") == "PASSWORD = *** user=u"
    assert lake.redact_dsn("postgres://u:p%40ss@h:1/d") == "postgres://u:***@h:1/d"
    assert lake.redact_dsn("postgres://u@h/d") == "postgres://u@h/d"
    assert lake.redact_dsn(None) == ""
