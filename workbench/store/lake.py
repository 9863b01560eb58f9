"""Lake mode: many `workbench serve` nodes writing one DuckLake (catalog in PostgreSQL, Parquet on a
shared data path), and every command reading all of it from any node.

Why DuckLake: it gives several processes one transactional store on existing engines (PostgreSQL for the
catalog, files or S3 for data) while every query we have stays DuckDB SQL. What it lacks shapes the rest:
no PRIMARY KEY, UNIQUE, sequences or indexes (`lake_schema.py` derives tables without them), and
concurrent writers are reconciled at commit by snapshot conflicts (`duckdb.TransactionException`), which
we retry.

Sequence numbers: a node's seqs are `node_index << SEQ_BITS | local`, local counting 1, 2, 3... So seqs
stay unique across nodes, every existing join on `seq` (steps, findings, probe runs, exports) keeps
working unchanged, and each node's ledger is a contiguous run that its own hash chain and Merkle tree
cover. The node index is handed out once, by a counter row in `lake_meta` whose concurrent updates
conflict, so two nodes can never get the same index.

Every group commit of a node also updates that node's row of `lake_nodes`. DuckLake treats an update as a
delete plus an insert, and a delete from a table another open snapshot inserted into (or deleted from)
is a conflict: so group commits of different nodes are serialized by the catalog, and the redelivery
lookup a commit made is still true when it commits (no unique index could guarantee that for us).
"""

from __future__ import annotations

import hashlib
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import duckdb

from workbench.errors import WorkbenchError
from workbench.settings import Settings
from workbench.store import extensions, lake_schema, trace_commits
from workbench.store.connection import Store

SEQ_BITS = 40  # a node may seal 2**40 - 1 records; 2**22 nodes fit in a positive BIGINT
_LOCAL_MASK = (1 << SEQ_BITS) - 1

# Below this many rows an insert is written into the catalog (PostgreSQL) instead of a Parquet file of
# its own: a group commit of a few requests is typically smaller, and thousands of tiny files would make
# every read slow. Larger commits go to Parquet directly.
INLINE_ROW_LIMIT = 1000

T = TypeVar("T")


def seq_range(node_index: int) -> tuple[int, int]:
    """The first and last seq a node with this index may hand out."""
    base = node_index << SEQ_BITS
    return base + 1, base + _LOCAL_MASK


def split_seq(seq: int) -> tuple[int, int]:
    """(node index, the node-local seq: 1 for the node's first record)."""
    return seq >> SEQ_BITS, seq & _LOCAL_MASK


def default_node_id(settings: Settings) -> str:
    """hostname-<8 hex of the data directory>: stable across restarts, distinct per data directory."""
    where = str(Path(settings.data_dir).resolve())
    return f"{socket.gethostname()}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"


def is_conflict(exc: BaseException) -> bool:
    """Whether a failed commit lost a race with another node (retry) rather than failed (raise)."""
    return isinstance(exc, duckdb.TransactionException) or (
        isinstance(exc, duckdb.Error) and "conflict" in str(exc).lower()
    )


def retrying(attempt: Callable[[], T], what: str, *, attempts: int = 30, delay: float = 0.01) -> T:
    """Run `attempt` until it does not lose a catalog race, with jittered exponential backoff.

    `attempt` must be a whole transaction that rolls itself back on failure, so a retry redoes every
    lookup against the newer snapshot."""
    for n in range(attempts):
        try:
            return attempt()
        except duckdb.Error as exc:
            if not is_conflict(exc) or n == attempts - 1:
                raise
        time.sleep(min(1.0, delay * 2**n) * (0.5 + random.random()))
    raise WorkbenchError(f"{what}: still conflicting after {attempts} attempts")  # pragma: no cover


def rollback(cur: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open: a commit that lost a race has already ended it."""
    try:
        cur.execute("ROLLBACK")
    except duckdb.TransactionException as exc:
        if "no transaction is active" not in str(exc).lower():
            raise


_PASSWORD_KV = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_PASSWORD_URI = re.compile(r"(\w[\w+.-]*://[^/@\s:]*:)[^@\s]*@")


def redact_dsn(text: str | None) -> str:
    """`text` with every libpq password masked: `password=...` (quoted or not) and the `user:pass@` of a
    URI. Why: the catalog DSN may carry the password, and it ends up in error messages and store names
    that reach terminals, logs and the UI; DuckDB's own errors may quote the connection string too."""
    return _PASSWORD_URI.sub(r"\1***@", _PASSWORD_KV.sub(r"\1***", text or ""))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_ATTACH_ATTEMPTS = 20


def _lost_catalog_init_race(exc: BaseException) -> bool:
    """Whether an ATTACH failed because another node was creating the catalog's tables at that moment."""
    text = str(exc).lower()
    return "duplicate key" in text or "already exists" in text


def _attach(settings: Settings, read_only: bool) -> duckdb.DuckDBPyConnection:
    if not settings.lake:
        raise WorkbenchError("lake mode needs a catalog: --lake / WORKBENCH_LAKE")
    con = duckdb.connect(config=dict(extensions.config()))
    try:
        names = ["ducklake", "postgres"]
        if settings.data_path and "://" in settings.data_path:
            names.append("httpfs")
        extensions.load(con, *names)
        # DuckDB draws a progress bar on stdout for queries over 2 s (a lake's first ATTACH is one);
        # it would land in the middle of a command's output.
        con.execute("SET enable_progress_bar = false")
        options = [f"DATA_INLINING_ROW_LIMIT {INLINE_ROW_LIMIT}"]
        if settings.data_path:
            if "://" not in settings.data_path:
                Path(settings.data_path).mkdir(parents=True, exist_ok=True)
            options.append(f"DATA_PATH {_quote(settings.data_path)}")
        if read_only:
            options.append("READ_ONLY")
        catalog = _quote("ducklake:postgres:" + settings.lake)
        for attempt in range(_ATTACH_ATTEMPTS):
            try:
                con.execute(f"ATTACH {catalog} AS lake ({', '.join(options)})")
                break
            except duckdb.Error as exc:
                # Two nodes attaching an empty catalog at once both create DuckLake's own tables; the
                # loser gets PostgreSQL's duplicate-key error. The winner's tables are there a moment
                # later, so attaching again finds them.
                if attempt + 1 < _ATTACH_ATTEMPTS and _lost_catalog_init_race(exc):
                    time.sleep(0.05 * (attempt + 1) + random.random() * 0.05)
                    continue
                raise WorkbenchError(
                    f"cannot attach the lake (catalog {redact_dsn(settings.lake)!r}): {redact_dsn(str(exc))}"
                ) from exc
        con.execute("USE lake")
        return con
    except BaseException:
        con.close()
        raise


def _cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    cur = con.cursor()
    cur.execute("USE lake")
    return cur


def _has_schema(cur: duckdb.DuckDBPyConnection) -> bool:
    row = cur.execute(
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_catalog = 'lake' AND table_name = 'lake_meta'"
    ).fetchone()
    if not row or not row[0]:
        return False
    version = cur.execute("SELECT max(schema_version) FROM lake_meta").fetchone()
    return bool(version and version[0] == lake_schema.LAKE_SCHEMA_VERSION)


def _create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every lake table in one transaction; several nodes may start at once: the loser of the race
    (both create the same table: a conflict) retries and finds the tables there."""
    cur = _cursor(con)

    def attempt() -> None:
        if _has_schema(cur):
            return
        cur.execute("BEGIN TRANSACTION")
        try:
            for statement in lake_schema.statements():
                cur.execute(statement)
            (rows,) = cur.execute("SELECT count(*) FROM lake_meta").fetchone() or (0,)
            if not rows:
                cur.execute("INSERT INTO lake_meta VALUES (?, 1)", [lake_schema.LAKE_SCHEMA_VERSION])
            else:
                # A lake made by an older release: version 2 added trace_commits, which its steps need
                # (CREATE TABLE IF NOT EXISTS made it empty above). Concurrent upgrades conflict on
                # lake_meta and the loser finds it done.
                trace_commits.refill(cur)
                cur.execute("UPDATE lake_meta SET schema_version = ?", [lake_schema.LAKE_SCHEMA_VERSION])
            cur.execute("COMMIT")
        except BaseException:
            rollback(cur)
            raise

    try:
        retrying(attempt, "creating the lake's tables")
    finally:
        cur.close()


def _register(con: duckdb.DuckDBPyConnection, node_id: str) -> int:
    """This node's index: found by its id when it has been here before (a restart rejoins), else the
    next one from lake_meta's counter, whose concurrent updates conflict, so no two nodes share one."""
    cur = _cursor(con)

    def attempt() -> int:
        now = datetime.now(UTC)
        cur.execute("BEGIN TRANSACTION")
        try:
            row = cur.execute("SELECT node_index FROM lake_nodes WHERE node_id = ?", [node_id]).fetchone()
            if row:
                index = int(row[0])
                cur.execute("UPDATE lake_nodes SET last_seen = ? WHERE node_id = ?", [now, node_id])
            else:
                (index,) = cur.execute("SELECT next_node_index FROM lake_meta").fetchone() or (1,)
                cur.execute("UPDATE lake_meta SET next_node_index = next_node_index + 1")
                cur.execute("INSERT INTO lake_nodes VALUES (?, ?, ?, ?, 0)", [node_id, index, now, now])
            cur.execute("COMMIT")
            return int(index)
        except BaseException:
            rollback(cur)
            raise

    try:
        return retrying(attempt, f"registering node {node_id}")
    finally:
        cur.close()


def open_lake(settings: Settings, *, read_only: bool = False) -> Store:
    """A Store over the lake (ATTACHed as `lake`, `USE lake`). Read-write: the tables are created if
    missing and this node is registered (`store.node_id`, `store.seq_range`). Read-only: the lake must
    exist; reads see every node."""
    con = _attach(settings, read_only)
    try:
        if read_only:
            if not _has_schema(_cursor(con)):
                raise WorkbenchError(
                    f"no workbench lake in catalog {redact_dsn(settings.lake)!r}"
                    " (start a `workbench serve --lake` node first)"
                )
        else:
            _create_schema(con)
        store = Store.over(con, f"lake:{redact_dsn(settings.lake)}", read_only=read_only)
        store.is_lake = True
        store.node_id = settings.node_id or default_node_id(settings)
        if not read_only:
            store.node_index = _register(con, store.node_id)
            store.seq_range = seq_range(store.node_index)
        return store
    except BaseException:
        con.close()
        raise


def open_store(settings: Settings, *, read_only: bool = False) -> Store:
    """The lake when `settings.lake` is set, else the embedded DuckDB file."""
    if settings.lake:
        return open_lake(settings, read_only=read_only)
    return Store(settings.db_path, read_only=read_only)


@dataclass(frozen=True)
class Node:
    node_id: str
    node_index: int
    first_seen: datetime
    last_seen: datetime


def nodes(store: Store) -> list[Node]:
    """Every node that ever wrote to the lake, by index."""
    rows = (
        store.cursor()
        .execute("SELECT node_id, node_index, first_seen, last_seen FROM lake_nodes ORDER BY node_index")
        .fetchall()
    )
    return [Node(str(a), int(b), c, d) for a, b, c, d in rows]


def touch(cur: duckdb.DuckDBPyConnection, store: Store, last_seq: int) -> None:
    """Inside a group commit: record this node's head and take the catalog's turn (see the module doc:
    this update is what makes concurrent commits of two nodes conflict, so one retries)."""
    cur.execute(
        "UPDATE lake_nodes SET last_seen = ?, last_seq = ? WHERE node_id = ?",
        [datetime.now(UTC), last_seq, store.node_id],
    )
