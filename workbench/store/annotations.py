"""Investigators' notes on steps (or whole traces), written by the UI and read by the UI and the export.

Why here and not in the UI: the export reads the same rows, and the write must take the store's
write lock so that a note never interleaves with an ingest batch's transaction.

Notes are append-only evidence: each is sealed by a ledger entry (workbench/store/entries.py), and an
edit is a new note that names the one it supersedes, so the history stays readable and verifiable.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from workbench.errors import BadInput
from workbench.model import Annotation
from workbench.store import entries, lake_writes
from workbench.store.connection import Store

MAX_TEXT = 20_000
MAX_AUTHOR = 200


def add_annotation(store: Store, trace_id: str, step_seq: int | None, author: str, text: str) -> Annotation:
    """Store a note; a blank author or text, or an unknown trace or step, is refused with BadInput."""
    author, text = _checked(store, author, text)
    cur = store.cursor()
    if step_seq is not None:
        found = cur.execute(
            "SELECT 1 FROM steps WHERE seq = ? AND trace_id = ?", [step_seq, trace_id]
        ).fetchone()
        if found is None:
            raise BadInput(f"annotation: trace {trace_id} has no step with seq {step_seq}")
    elif cur.execute("SELECT 1 FROM steps WHERE trace_id = ? LIMIT 1", [trace_id]).fetchone() is None:
        raise BadInput(f"annotation: no trace {trace_id}")
    return _append(store, trace_id, step_seq, author, text, None)


def edit_annotation(store: Store, annotation_id: int, author: str, text: str) -> Annotation:
    """Edit a note by appending a new one that supersedes it; the old text stays in its history.
    Only the current version of a note can be edited (BadInput otherwise)."""
    author, text = _checked(store, author, text)
    cur = store.cursor()
    row = cur.execute("SELECT trace_id, step_seq FROM annotations WHERE id = ?", [annotation_id]).fetchone()
    if row is None:
        raise BadInput(f"annotation: no annotation {annotation_id}")
    newer = cur.execute("SELECT id FROM annotations WHERE supersedes = ?", [annotation_id]).fetchone()
    if newer is not None:
        raise BadInput(f"annotation {annotation_id} was already edited; edit its newest version {newer[0]}")
    return _append(store, str(row[0]), row[1], author, text, annotation_id)


def _checked(store: Store, author: str, text: str) -> tuple[str, str]:
    if store.read_only:
        raise BadInput(
            "annotation: the database is open read-only; notes are written inside `workbench serve`"
        )
    author, text = author.strip(), text.strip()
    if not author:
        raise BadInput("annotation: who wrote it? (author is empty)")
    if not text:
        raise BadInput("annotation: the note is empty")
    if len(author) > MAX_AUTHOR or len(text) > MAX_TEXT:
        raise BadInput(f"annotation: author is limited to {MAX_AUTHOR} and text to {MAX_TEXT} characters")
    return author, text


def _append(
    store: Store, trace_id: str, step_seq: int | None, author: str, text: str, supersedes: int | None
) -> Annotation:
    """Insert the note and its ledger entry in one transaction."""
    now = datetime.now(UTC)
    columns = "trace_id, step_seq, author, text, created_at, supersedes"
    values = [trace_id, step_seq, author, text, now, supersedes]

    def work(cur: duckdb.DuckDBPyConnection) -> int:
        if store.is_lake:  # no sequences in DuckLake: the id comes from this node's slice
            (new_id,) = lake_writes.next_ids(cur, store, ("annotations",), 1)
            cur.execute(
                f"INSERT INTO annotations (id, {columns}) VALUES (?, ?, ?, ?, ?, ?, ?)", [new_id, *values]
            )
        else:
            row = cur.execute(
                f"INSERT INTO annotations ({columns}) VALUES (?, ?, ?, ?, ?, ?) RETURNING id", values
            ).fetchone()
            assert row is not None
            new_id = int(row[0])
        sealed = entries.bodies(cur, "annotations", entries.ANNOTATION_BODY, "id", "id = ?", [new_id])
        entries.append(cur, [(entries.ANNOTATION, str(new_id), sealed[str(new_id)])], store)
        return new_id

    new_id = lake_writes.atomic(store, work, "writing an annotation")
    return Annotation(
        trace_id=trace_id,
        step_seq=step_seq,
        author=author,
        text=text,
        created_at_ns=int(now.timestamp() * 1_000_000) * 1_000,
        id=new_id,
    )


def annotation_history(store: Store, annotation_id: int) -> list[Annotation]:
    """Every version of a note, oldest first, given the id of any of its versions (the UI's history)."""
    rows = (
        store.cursor()
        .execute(
            """
            WITH RECURSIVE back(id) AS (
                SELECT id FROM annotations WHERE id = ?
                UNION SELECT a.supersedes FROM annotations a JOIN back b ON a.id = b.id
                WHERE a.supersedes IS NOT NULL
            ), fwd(id) AS (
                SELECT id FROM annotations WHERE id = ?
                UNION SELECT a.id FROM annotations a JOIN fwd f ON a.supersedes = f.id
            )
            SELECT id, trace_id, step_seq, author, text, epoch_ns(created_at) FROM annotations
            WHERE id IN (SELECT id FROM back UNION SELECT id FROM fwd) ORDER BY created_at, id
            """,
            [annotation_id, annotation_id],
        )
        .fetchall()
    )
    return [_to_annotation(r) for r in rows]


def _to_annotation(r: tuple[object, ...]) -> Annotation:
    return Annotation(
        id=int(str(r[0])),
        trace_id=str(r[1]),
        step_seq=None if r[2] is None else int(str(r[2])),
        author=str(r[3]),
        text=str(r[4]),
        created_at_ns=int(str(r[5])),
    )


def list_annotations(store: Store, trace_id: str, step_seq: int | None = None) -> list[Annotation]:
    """A trace's notes (their current versions: an edited note shows its newest text), oldest first;
    with `step_seq`, only that step's."""
    sql = "SELECT id, trace_id, step_seq, author, text, epoch_ns(created_at) FROM annotations a"
    sql += " WHERE trace_id = ?"
    sql += " AND NOT EXISTS (SELECT 1 FROM annotations n WHERE n.supersedes = a.id)"
    params: list[object] = [trace_id]
    if step_seq is not None:
        sql += " AND step_seq = ?"
        params.append(step_seq)
    rows = store.cursor().execute(sql + " ORDER BY created_at, id", params).fetchall()
    return [_to_annotation(r) for r in rows]
