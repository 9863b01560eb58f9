"""Investigators' notes on steps (or whole traces), written by the UI and read by the UI and the export.

Why here and not in the UI: the export reads the same rows, and the write must take the store's
write lock so that a note never interleaves with an ingest batch's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from workbench.errors import BadInput
from workbench.model import Annotation
from workbench.store.connection import Store

MAX_TEXT = 20_000
MAX_AUTHOR = 200


def add_annotation(store: Store, trace_id: str, step_seq: int | None, author: str, text: str) -> Annotation:
    """Store a note; a blank author or text, or an unknown trace or step, is refused with BadInput."""
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
    cur = store.cursor()
    if step_seq is not None:
        found = cur.execute(
            "SELECT 1 FROM steps WHERE seq = ? AND trace_id = ?", [step_seq, trace_id]
        ).fetchone()
        if found is None:
            raise BadInput(f"annotation: trace {trace_id} has no step with seq {step_seq}")
    elif cur.execute("SELECT 1 FROM steps WHERE trace_id = ? LIMIT 1", [trace_id]).fetchone() is None:
        raise BadInput(f"annotation: no trace {trace_id}")
    now = datetime.now(UTC)
    with store.write_lock:
        row = cur.execute(
            "INSERT INTO annotations (trace_id, step_seq, author, text, created_at) VALUES (?, ?, ?, ?, ?) "
            "RETURNING id",
            [trace_id, step_seq, author, text, now],
        ).fetchone()
    assert row is not None
    return Annotation(
        trace_id=trace_id,
        step_seq=step_seq,
        author=author,
        text=text,
        created_at_ns=int(now.timestamp() * 1_000_000) * 1_000,
        id=int(row[0]),
    )


def list_annotations(store: Store, trace_id: str, step_seq: int | None = None) -> list[Annotation]:
    """A trace's notes, oldest first; with `step_seq`, only that step's."""
    sql = "SELECT id, trace_id, step_seq, author, text, epoch_ns(created_at) FROM annotations"
    sql += " WHERE trace_id = ?"
    params: list[object] = [trace_id]
    if step_seq is not None:
        sql += " AND step_seq = ?"
        params.append(step_seq)
    rows = store.cursor().execute(sql + " ORDER BY created_at, id", params).fetchall()
    return [
        Annotation(
            id=int(r[0]), trace_id=r[1], step_seq=r[2], author=r[3], text=r[4], created_at_ns=int(r[5])
        )
        for r in rows
    ]
