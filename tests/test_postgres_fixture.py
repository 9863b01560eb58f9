"""The PostgreSQL fixture itself: a real server, a database per test, and DuckLake's catalog on it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import pytest

from workbench.server import postgres_local
from workbench.server.postgres_local import LocalPostgres
from workbench.store import extensions


def test_each_test_gets_its_own_empty_database(postgres_server: LocalPostgres, postgres_dsn: str) -> None:
    dbname = postgres_dsn.split()[0].removeprefix("dbname=")
    assert dbname in postgres_server.databases
    assert postgres_server.psql("SELECT current_database()", dbname).strip() == dbname
    tables = postgres_server.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", dbname)
    assert tables.strip() == "0"


def test_server_listens_on_loopback_with_its_socket_in_its_directory(postgres_server: LocalPostgres) -> None:
    settings = postgres_server.psql(
        "SELECT current_setting('listen_addresses') || ' ' || current_setting('unix_socket_directories')"
    ).split()
    assert settings == ["127.0.0.1", str(postgres_server.socket_dir)]
    assert (postgres_server.socket_dir / f".s.PGSQL.{postgres_server.port}").exists()
    if os.geteuid() == 0:  # initdb refuses root: the server runs as someone else
        assert postgres_server.user is not None and postgres_server.user.pw_uid != 0
        assert postgres_server.data.stat().st_uid == postgres_server.user.pw_uid


def test_ducklake_catalog_in_the_fixture_database(postgres_dsn: str, tmp_path: Path) -> None:
    con = duckdb.connect(config=extensions.config())
    extensions.load(con, "ducklake", "postgres")
    con.execute(f"ATTACH 'ducklake:postgres:{postgres_dsn}' AS lake (DATA_PATH '{tmp_path / 'lake'}/')")
    con.execute("CREATE TABLE lake.t (a INTEGER NOT NULL, b VARCHAR)")
    con.execute("INSERT INTO lake.t VALUES (1, 'x'), (2, 'y')")
    assert con.execute("SELECT sum(a) FROM lake.t").fetchone() == (3,)
    con.close()
    # a second client (another node) reads what the first committed, through the same catalog
    other = duckdb.connect(config=extensions.config())
    extensions.load(other, "ducklake", "postgres")
    other.execute(f"ATTACH 'ducklake:postgres:{postgres_dsn}' AS lake (DATA_PATH '{tmp_path / 'lake'}/')")
    assert other.execute("SELECT b FROM lake.t ORDER BY a").fetchall() == [("x",), ("y",)]
    other.close()


def test_missing_binaries_are_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres_local, "_SEARCH", str(tmp_path / "nowhere" / "*" / "bin"))
    with pytest.raises(postgres_local.PostgresMissing, match="make postgres"):
        postgres_local.binaries_dir()


def test_stop_is_idempotent_and_a_restart_reuses_the_cluster() -> None:
    root = Path(tempfile.mkdtemp(prefix="workbench-pg-stop-"))
    try:
        server = postgres_local.start(root, durable=False)
        assert server.running()
        assert server.psql("SELECT 1").strip() == "1"
        server.stop()
        assert not server.running()
        server.stop()
        # the directory is kept, so a restart reuses the cluster (the demo relies on it)
        again = postgres_local.start(root, durable=False)
        assert again.psql("SELECT 2").strip() == "2"
        again.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
