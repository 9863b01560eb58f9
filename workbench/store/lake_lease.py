"""Leases in the lake's catalog: exactly one node works on a trace (a findings scan, a probe run) at a time.

Why in PostgreSQL and not in a lake table: DuckLake has no unique constraint, and two nodes that insert
"I hold trace T" into a lake table at once both commit (appends do not conflict). PostgreSQL, which
already holds the DuckLake catalog, does have one, so the lease is a row of `workbench_leases` (name
primary key) in the catalog database, next to DuckLake's own tables. Taking it is one atomic statement:
an upsert that only overwrites a row whose time has run out. Expiry is judged by PostgreSQL's clock
(`now()`), never by the nodes' clocks, so skew between machines cannot grant a lease twice. A node that
dies holding a lease blocks that trace only until the lease expires; a live holder renews.

We reach PostgreSQL through DuckDB's own postgres extension (loaded offline from its wheel), on a
connection of this module's own, so a lease never waits on (or rolls back with) a lake transaction and
the project needs no second PostgreSQL driver. The extension cannot return rows from a data-modifying
statement (it wraps queries in COPY), so `acquire` runs the upsert, then reads the row back and holds
the lease only if the row carries its own fresh token.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import duckdb

from workbench.errors import WorkbenchError
from workbench.store import extensions
from workbench.store.lake import redact_dsn

TABLE = "workbench_leases"
DEFAULT_TTL_S = 60.0

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    name        text PRIMARY KEY,       -- what is leased: 'scan:<trace id>', 'probe:<run id>'
    holder      text NOT NULL,          -- the node id that holds it
    token       text NOT NULL,          -- fresh per acquisition: who exactly holds it now
    expires_at  timestamptz NOT NULL    -- by PostgreSQL's clock
)"""


def _literal(text: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings is on since 9.1: only quotes double)."""
    if "\x00" in text:
        raise ValueError("a lease name or holder cannot contain NUL")
    return "'" + text.replace("'", "''") + "'"


def _interval(ttl_s: float) -> str:
    if not ttl_s >= 0:
        raise ValueError(f"a lease lasts zero seconds or more, not {ttl_s!r}")
    return f"make_interval(secs => {float(ttl_s)!r})"


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    token: str
    expires_at: datetime


class LeaseTable:
    """The leases of one lake, as seen by one holder (a node). Thread-safe: one lock around its connection.

    `acquire` returns a Lease or None (someone else holds it); `renew` extends a lease still ours;
    `release` ends it early so another node need not wait for the expiry.
    """

    def __init__(self, catalog_dsn: str, holder: str) -> None:
        if not holder:
            raise ValueError("a lease holder needs a name (the node id)")
        self.holder = holder
        self._lock = threading.Lock()
        options: dict[str, str | bool | int | float | list[str]] = {**extensions.config()}
        self._con = duckdb.connect(config=options)
        try:
            extensions.load(self._con, "postgres")
            quoted = "'" + catalog_dsn.replace("'", "''") + "'"  # ATTACH takes no parameters
            self._con.execute(f"ATTACH {quoted} AS wb_catalog (TYPE postgres)")
            self._execute(_CREATE)
        except duckdb.Error as exc:
            self._con.close()
            raise WorkbenchError(
                f"cannot reach the lake's catalog for leases ({redact_dsn(catalog_dsn)!r}):"
                f" {redact_dsn(str(exc))}"
            ) from exc
        except BaseException:
            self._con.close()
            raise

    def _execute(self, sql: str) -> bool:
        """Run one statement; False when it lost a race with another node's statement on the same row.

        DuckDB's postgres extension runs it under REPEATABLE READ, where a concurrent change to the row
        is a serialization failure rather than a wait: the other node got there first."""
        try:
            self._con.execute("CALL postgres_execute('wb_catalog', ?)", [sql])
        except duckdb.Error as exc:
            if "could not serialize" in str(exc) or "deadlock detected" in str(exc):
                return False
            raise
        return True

    def _query(self, sql: str) -> list[tuple[object, ...]]:
        return self._con.execute("SELECT * FROM postgres_query('wb_catalog', ?)", [sql]).fetchall()

    def _row(self, name: str) -> tuple[str, str, datetime, bool] | None:
        rows = self._query(
            f"SELECT holder, token, expires_at, expires_at > now() FROM {TABLE} WHERE name = {_literal(name)}"
        )
        if not rows:
            return None
        holder, token, expires_at, live = rows[0]
        return str(holder), str(token), expires_at, bool(live)  # type: ignore[return-value]

    def acquire(self, name: str, ttl_s: float = DEFAULT_TTL_S) -> Lease | None:
        """The lease on `name` for `ttl_s` seconds if nobody holds it (or their time ran out), else None."""
        token = uuid.uuid4().hex
        with self._lock:
            self._execute(
                f"INSERT INTO {TABLE} AS l (name, holder, token, expires_at) VALUES ("
                f"{_literal(name)}, {_literal(self.holder)}, {_literal(token)}, now() + {_interval(ttl_s)}) "
                "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, token = EXCLUDED.token, "
                "expires_at = EXCLUDED.expires_at WHERE l.expires_at <= now()"
            )
            row = self._row(name)
        if row is None or row[1] != token:
            return None
        return Lease(name, self.holder, token, row[2])

    def renew(self, lease: Lease, ttl_s: float = DEFAULT_TTL_S) -> Lease | None:
        """Extend a lease that is still ours (even if just expired, as long as nobody took it); None if
        it was lost, in which case the caller must stop its work on it."""
        with self._lock:
            for _ in range(3):  # a race here can only be with a node taking the lease over
                if self._execute(
                    f"UPDATE {TABLE} SET expires_at = now() + {_interval(ttl_s)} "
                    f"WHERE name = {_literal(lease.name)} AND token = {_literal(lease.token)}"
                ):
                    break
            row = self._row(lease.name)
        if row is None or row[1] != lease.token:
            return None
        return Lease(lease.name, lease.holder, lease.token, row[2])

    def release(self, lease: Lease) -> None:
        """End a lease of ours now; one that was already taken over is left to its new holder (a race with
        that takeover is lost quietly: the lease is no longer ours to end)."""
        with self._lock:
            self._execute(
                f"DELETE FROM {TABLE} WHERE name = {_literal(lease.name)} AND token = {_literal(lease.token)}"
            )

    def holder_of(self, name: str) -> str | None:
        """Who holds `name` now (a lease past its expiry is held by nobody)."""
        with self._lock:
            row = self._row(name)
        return row[0] if row is not None and row[3] else None

    @contextlib.contextmanager
    def held(self, name: str, ttl_s: float = DEFAULT_TTL_S) -> Iterator[Lease | None]:
        """`with leases.held(name) as lease:` work only when `lease` is not None; released on the way out."""
        lease = self.acquire(name, ttl_s)
        try:
            yield lease
        finally:
            if lease is not None:
                self.release(lease)

    def close(self) -> None:
        with self._lock:
            self._con.close()


def scan_lease_name(trace_id: str) -> str:
    """The lease a node holds while it scans one trace for findings."""
    return f"scan:{trace_id}"


def probe_lease_name(run_id: int | str) -> str:
    """The lease a node holds while it runs one probe run."""
    return f"probe:{run_id}"
