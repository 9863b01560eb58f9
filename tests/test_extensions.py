"""The DuckDB extensions the lake and search need load offline, from the wheels, in a real connection."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from workbench.store import extensions


def test_every_extension_loads_offline_and_works(tmp_path: Path) -> None:
    con = duckdb.connect(config=extensions.config())
    extensions.load(con, "ducklake", "postgres", "httpfs", "fts")
    loaded = {
        r[0] for r in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()
    }
    assert {"ducklake", "postgres_scanner", "httpfs", "fts"} <= loaded
    # a DuckLake with a local catalog file: the catalog and data path work without any network
    con.execute(f"ATTACH 'ducklake:{tmp_path / 'meta.ducklake'}' AS lk (DATA_PATH '{tmp_path / 'data'}/')")
    con.execute("CREATE TABLE lk.t (a INTEGER NOT NULL, b VARCHAR)")
    con.execute("INSERT INTO lk.t VALUES (1, 'x'), (2, 'y')")
    assert con.execute("SELECT sum(a) FROM lk.t").fetchone() == (3,)
    con.close()


def test_unknown_extension_is_a_clear_error() -> None:
    con = duckdb.connect(config=extensions.config())
    with pytest.raises(ValueError, match="spatial"):
        extensions.load(con, "spatial")
