"""The lake's tables: the embedded schema, less what DuckLake refuses, plus who wrote each ledger row.

Why derived, not written out again: the embedded migrations (`workbench/store/migrations/`) are the one
description of every column, and a second hand-kept copy would drift. We apply them to a throwaway
in-memory DuckDB, read back each table's columns, and emit `CREATE TABLE IF NOT EXISTS` without what
DuckLake has no notion of (PRIMARY KEY, UNIQUE, sequences and `nextval` defaults, indexes); NOT NULL
stays. The ledger tables gain a `node_id` column (every node keeps its own chain), and the lake adds
`lake_nodes` (one row per node: its index, first and last seen, and the guard every commit updates) and
`lake_meta` (the counter that hands out node indexes).
"""

from __future__ import annotations

import functools

import duckdb

# Tables whose rows belong to one node's chain: they carry the writing node's id.
NODE_TABLES = ("ledger", "ledger_checkpoints", "ledger_entries")

# Bump when the lake's tables change; recorded in lake_meta.schema_version.
LAKE_SCHEMA_VERSION = 2  # 2: trace_commits (migration 0051)

_LAKE_ONLY = """
CREATE TABLE IF NOT EXISTS lake_nodes (
    node_id     VARCHAR NOT NULL,     -- settings.node_id: the name in messages ("node n2, seq 17")
    node_index  BIGINT NOT NULL,      -- the high bits of every seq this node hands out (lake.seq_range)
    first_seen  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL, -- updated by every group commit of the node (the commit guard)
    last_seq    BIGINT NOT NULL       -- the node's ledger head at its last commit (informative)
);
CREATE TABLE IF NOT EXISTS lake_meta (
    schema_version   INTEGER NOT NULL,
    next_node_index  BIGINT NOT NULL
);
"""


@functools.cache
def statements() -> tuple[str, ...]:
    """The DDL that creates every lake table, idempotently, in a stable order."""
    from workbench.store.connection import migrations  # the embedded migrations, the one source

    con = duckdb.connect()
    try:
        for _version, _name, sql in migrations():
            con.execute(sql)
        tables = [
            t
            for (t,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
                " ORDER BY table_name"
            ).fetchall()
        ]
        out = []
        for table in tables:
            cols = con.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                " WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
            parts = [f"{name} {kind}{'' if null == 'YES' else ' NOT NULL'}" for name, kind, null in cols]
            if table in NODE_TABLES:
                parts.append("node_id VARCHAR NOT NULL")
            out.append(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(parts)})")
    finally:
        con.close()
    out += [s.strip() for s in _LAKE_ONLY.split(";") if s.strip()]
    return tuple(out)
