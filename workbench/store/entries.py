"""The second hash chain: findings, annotations and probe results sealed as ledger entries.

Why a second chain and not more leaves in the span ledger: a span's ledger index is its `seq`, which
spans, steps, exports and inclusion proofs all rely on; interleaving other entries would renumber the
evidence. So these rows get their own gapless chain and RFC 6962 tree (`ledger_entries`), and a signed
tree head covers both trees (see workbench/store/treehead.py).

An entry seals one row as {field: digest of the field's value}, computed in SQL by the same expression
when writing and when verifying, so verification names the field that changed. Entries are only ever
appended: a rescan that drops a finding appends 'finding-retired' (the row moves to findings_retired),
and an annotation edit is a new annotation that names the one it supersedes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from workbench.store import ledger

if TYPE_CHECKING:
    from workbench.store.connection import Store

FINDING, FINDING_RETIRED, ANNOTATION, PROBE_RESULT = (
    "finding",
    "finding-retired",
    "annotation",
    "probe-result",
)

_FINDING_FIELDS = (
    "trace_id step_seq span_id rule_id severity title explanation evidence_field evidence_start "
    "evidence_end evidence_excerpt taint_chain details"
).split()
_ANNOTATION_FIELDS = ["trace_id", "step_seq", "author", "text", "supersedes", "epoch_us(created_at)"]
_PROBE_FIELDS = ["run_id", "analysis", "summary", "data"]


def _body_sql(fields: Sequence[str]) -> str:
    """A DuckDB expression giving the entry body of a row: one SHA-256 per field, NULL kept as null."""

    def one(f: str) -> str:
        name = f.split("(")[-1].rstrip(")")
        return f"'{name}', CASE WHEN {f} IS NULL THEN NULL ELSE sha256(CAST({f} AS VARCHAR)) END"

    return "json_object(" + ", ".join(one(f) for f in fields) + ")"


FINDING_BODY = _body_sql(_FINDING_FIELDS)
ANNOTATION_BODY = _body_sql(_ANNOTATION_FIELDS)
PROBE_BODY = _body_sql(_PROBE_FIELDS)
PROBE_REF = "CAST(run_id AS VARCHAR) || '/' || analysis"


# The same fields as the SQL above, for rows as an export writes them (JSON columns parsed, timestamps as
# ISO 8601 text): kind -> (fields, JSON columns). Entries of kind "finding" and "finding-retired" seal
# the same fields.
ROW_FIELDS: dict[str, tuple[list[str], frozenset[str]]] = {
    FINDING: ([f for f in _FINDING_FIELDS], frozenset({"taint_chain", "details"})),
    ANNOTATION: (["trace_id", "step_seq", "author", "text", "supersedes", "created_at"], frozenset()),
    PROBE_RESULT: (list(_PROBE_FIELDS), frozenset({"summary", "data"})),
}


def _renderings(name: str, value: object, json_columns: frozenset[str]) -> list[str]:
    """The text(s) `CAST(value AS VARCHAR)` may have given for a value read back from an export.

    A JSON column was stored as text by the writer (Python's json.dumps, or compact) and parsed for the
    bundle; each deterministic rendering of the same parsed value is tried, so a different value never
    matches but the same value does whichever way it was written. `created_at` is sealed as epoch
    microseconds (`epoch_us`), exported as ISO 8601."""
    if name in json_columns:
        return [
            json.dumps(value),
            json.dumps(value, separators=(",", ":")),
            json.dumps(value, ensure_ascii=False),
        ]
    if name == "created_at" and isinstance(value, str | datetime):
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return [str((when - _EPOCH) // timedelta(microseconds=1))]
    if isinstance(value, bool):
        return [str(value).lower()]
    return [str(value)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def row_differences(kind: str, row: dict[str, object], body: str) -> list[str]:
    """The fields of an exported row whose sealed digest (in the entry `body`) it does not match: the
    verifier's side of FINDING_BODY/ANNOTATION_BODY/PROBE_BODY, pure (no database), floor 1.

    `field: sha256(CAST(value AS VARCHAR))`, NULL as null, exactly as the SQL expressions compute it
    when the row is sealed."""
    fields, json_columns = ROW_FIELDS[FINDING if kind == FINDING_RETIRED else kind]
    sealed = json.loads(body)
    out = []
    for name in fields:
        key = name.split("(")[-1].rstrip(")")
        value = row.get(key)
        want = sealed.get(key)
        if value is None or want is None:
            if value is not None or want is not None:
                out.append(key)
            continue
        if not any(
            hashlib.sha256(t.encode()).hexdigest() == want for t in _renderings(key, value, json_columns)
        ):
            out.append(key)
    return out


def entry_digest(kind: str, ref: str, body: str) -> bytes:
    """SHA-256(kind || 0x00 || ref || 0x00 || body): what the chain and the Merkle tree are over."""
    return hashlib.sha256(b"\x00".join([kind.encode(), ref.encode(), body.encode()])).digest()


def append(
    cur: duckdb.DuckDBPyConnection, entries: Iterable[tuple[str, str, str]], store: Store | None = None
) -> int:
    """Append (kind, ref, body) entries to the chain; returns how many.

    The caller holds the store's write lock and has a transaction open, so the entries commit (or roll
    back) together with the rows they seal and the sequence stays gapless. In a lake (`store.is_lake`)
    the chain is this node's own: its entries carry `node_id` and take seqs from the node's slice (the
    same `node_index << 40 | local` as its span seqs), so nodes never share a head.
    """
    items = list(entries)
    if not items:
        return 0
    node = store.node_id if store is not None and store.is_lake else None
    first = store.seq_range[0] if node is not None and store is not None else 1
    where, params = ("AND node_id = ?", [node]) if node is not None else ("", [])
    key = (store.path, node) if store is not None else None
    # The head: the newest entry at or past the last seq this process appended, so that DuckDB reads only
    # the newest row groups (a top-1 over the whole table grew with the findings: 2.6 ms of a 10 ms
    # findings write at 200k entries). Entries are only appended, so that is the head whenever any row
    # lies there; when none does (a rolled-back append, another database at this path), the full query.
    row = None
    hint = _LAST_SEQ.get(key) if key is not None else None
    if hint is not None:
        row = cur.execute(
            f"SELECT seq, chain FROM ledger_entries WHERE seq >= ? {where} ORDER BY seq DESC LIMIT 1",
            [hint, *params],
        ).fetchone()
    if row is None:
        row = cur.execute(
            f"SELECT seq, chain FROM ledger_entries WHERE TRUE {where} ORDER BY seq DESC LIMIT 1", params
        ).fetchone()
    seq, chain = (int(row[0]), bytes(row[1])) if row else (first - 1, ledger.GENESIS)
    now = datetime.now(UTC)
    rows: list[tuple[object, ...]] = []
    for kind, ref, body in items:
        seq += 1
        d = entry_digest(kind, ref, body)
        chain = ledger.chain_next(chain, d)
        rows.append((seq, kind, ref, body, d, chain, now, *([node] if node is not None else [])))
    if node is not None:
        cur.executemany(
            "INSERT INTO ledger_entries (seq, kind, ref, body, digest, chain, created_at, node_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    else:
        cur.executemany("INSERT INTO ledger_entries VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    if key is not None:
        _LAST_SEQ[key] = seq
    return len(items)


# Per store (and lake node), the last entry seq this process appended: where `append` looks for the head.
_LAST_SEQ: dict[tuple[Path, str | None], int] = {}


def bodies(
    cur: duckdb.DuckDBPyConnection,
    table: str,
    body_sql: str,
    ref_sql: str,
    where: str = "TRUE",
    params: Sequence[object] = (),
) -> dict[str, str]:
    """{ref: body} of the rows of `table` matching `where`."""
    rows = cur.execute(f"SELECT CAST({ref_sql} AS VARCHAR), {body_sql} FROM {table} WHERE {where}", params)
    return {str(r): str(b) for r, b in rows.fetchall()}


def iter_entries(
    cur: duckdb.DuckDBPyConnection, chunk: int = 5_000, *, node_id: str | None = None, first: int = 1
) -> Iterator[tuple[int, str, str, str, bytes, bytes, datetime]]:
    """(seq, kind, ref, body, digest, chain, created_at) in sequence order, a chunk at a time; in a lake,
    one node's chain (`node_id`, whose seqs start at `first`)."""
    start = first
    node = "AND node_id = ?" if node_id is not None else ""
    while True:
        rows = cur.execute(
            "SELECT seq, kind, ref, CAST(body AS VARCHAR), digest, chain, created_at FROM ledger_entries"
            f" WHERE seq >= ? {node} ORDER BY seq LIMIT ?",
            [start, *([node_id] if node_id is not None else []), chunk],
        ).fetchall()
        if not rows:
            return
        for s, k, r, b, d, c, t in rows:
            yield int(s), str(k), str(r), str(b), bytes(d), bytes(c), t
        start = int(rows[-1][0]) + 1


def entry_digests(cur: duckdb.DuckDBPyConnection, node_id: str | None = None) -> list[bytes]:
    """Every entry digest in order: the leaves of the entries' Merkle tree (in a lake, one node's)."""
    if node_id is not None:
        rows = cur.execute("SELECT digest FROM ledger_entries WHERE node_id = ? ORDER BY seq", [node_id])
    else:
        rows = cur.execute("SELECT digest FROM ledger_entries ORDER BY seq")
    return [bytes(d) for (d,) in rows.fetchall()]


def differing_fields(sealed: str, stored: str) -> list[str]:
    """The fields whose digests differ between a sealed body and the row's current body."""
    a, b = json.loads(sealed), json.loads(stored)
    return [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
