"""Opening the DuckDB file, applying migrations, and telling the user clearly when that cannot be done.

DuckDB allows one read-write process per file; threads inside it share the database through cursors.
A `Store` is that one connection. Read-only opens are for CLI commands while no server holds the file.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb

from workbench.errors import DatabaseBusy, DatabaseCorrupt, WorkbenchError

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every shipped migration, in order."""
    found = []
    for entry in resources.files("workbench.store").joinpath("migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return found


# Sequence numbers a store may hand out to its own ledger (inclusive): the whole positive range in an
# embedded file; in a lake, the node's slice (workbench.store.lake.seq_range).
EMBEDDED_SEQ_RANGE = (1, 2**62)


class Store:
    """The one connection to a workbench database, shared by the threads of one process.

    Use `cursor()` per thread; `write_lock` serializes writers so that a batch is one transaction and
    ingest sequence numbers are handed out without gaps.

    A lake store (`workbench.store.lake.open_lake`) is the same object over a DuckLake attached as `lake`:
    `is_lake` is true, `node_id` names this node, and `seq_range` is the slice of sequence numbers this
    node's ledger owns.
    """

    is_lake: bool = False
    node_id: str | None = None
    node_index: int = 0
    seq_range: tuple[int, int] = EMBEDDED_SEQ_RANGE

    @classmethod
    def over(cls, conn: duckdb.DuckDBPyConnection, label: str, *, read_only: bool = False) -> Store:
        """A Store over a connection someone else opened and prepared (the lake); no migrations run."""
        store = cls.__new__(cls)
        store.path = Path(label)
        store.read_only = read_only
        store.write_lock = threading.RLock()
        store._conn = conn
        return store

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.write_lock = threading.RLock()
        if read_only and not self.path.exists():
            raise WorkbenchError(f"no workbench database at {self.path} (ingest something first)")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(self.path, read_only)
        try:
            if read_only:
                self._check_schema()
            else:
                # Span rows are large (raw bytes plus JSON); at the default 16 MB, DuckDB would rewrite
                # its main file every few thousand spans. A larger WAL costs only a longer replay after
                # a crash, and the WAL is what makes a commit durable either way.
                self._conn.execute("SET checkpoint_threshold = '256MB'")
                self.migrate()
        except Exception:
            self._conn.close()
            raise

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread (DuckDB connections are not safe to share across threads)."""
        cur = self._conn.cursor()
        if self.is_lake:
            cur.execute("USE lake")  # a cursor is a new connection: it starts in the in-memory catalog
            cur.execute("SET enable_progress_bar = false")  # never drawn into a command's output
        return cur

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def applied_migrations(self) -> list[int]:
        cur = self.cursor()
        exists = cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        ).fetchone()
        if not exists or not exists[0]:
            return []
        rows = cur.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        return [r[0] for r in rows]

    def migrate(self) -> list[int]:
        """Apply every migration not yet applied, each in its own transaction; returns what was applied."""
        cur = self.cursor()
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
        )
        done = set(self.applied_migrations())
        applied = []
        for version, name, sql in migrations():
            if version in done:
                continue
            cur.execute("BEGIN TRANSACTION")
            try:
                cur.execute(sql)
                cur.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, datetime.now(UTC)]
                )
                cur.execute("COMMIT")
            except Exception as exc:
                cur.execute("ROLLBACK")
                raise DatabaseCorrupt(f"{self.path}: migration {name} failed: {exc}") from exc
            applied.append(version)
        if applied:
            # DuckDB 1.5.5 cannot replay a WAL holding an ALTER TABLE of a table whose columns have
            # function defaults (now(), nextval): after a crash the file would not open ("Failure while
            # replaying WAL file ... GetDefaultDatabase"). A checkpoint moves the migration into the
            # main file, so the WAL a crash leaves behind holds only data.
            cur.execute("CHECKPOINT")
        return applied

    def _check_schema(self) -> None:
        have = set(self.applied_migrations())
        want = {v for v, _, _ in migrations()}
        if not want <= have:
            missing = sorted(want - have)
            raise WorkbenchError(
                f"{self.path} is missing migrations {missing}; open it once read-write "
                "(any ingest or `workbench serve`) to upgrade it"
            )


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise DatabaseBusy(
                f"{path} is held by another process ({_holder(text)}); while `workbench serve` runs, "
                "send data to its OTLP port or stop it first"
            ) from exc
        raise DatabaseCorrupt(f"cannot open {path}: {text}") from exc
    except duckdb.Error as exc:
        raise DatabaseCorrupt(f"{path} is not a readable DuckDB database: {exc}") from exc


def _holder(message: str) -> str:
    m = re.search(r"PID (\d+)", message)
    return f"PID {m.group(1)}" if m else "another process"
