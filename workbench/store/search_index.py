"""The full-text side index of step text: SQLite FTS5 in a file beside the DuckDB file.

Why a side index: the Traces page's search is a case-insensitive substring match over every step's
input, output, reasoning, tool arguments, tool result and name, and a scan of that text grows with the
store (seconds at a million spans). DuckDB's fts extension builds its index once, by a PRAGMA over a
whole table, and does not maintain it on insert, so a store that ingests all day would search a stale
index or rebuild it constantly. SQLite's FTS5 (standard library, no new dependency) appends to its
index as rows come, in its own file, so it never takes the DuckDB writer's lock or bytes.

What it is: derived data, never evidence. Nothing in the ledger, the export or verify reads it; it can
be deleted at any time (the server rebuilds it from the steps), and it is rebuilt when missing,
unreadable, or made for another database (its watermark's chain hash differs from the ledger's).
A process that only reads the file (a CLI command, a UI over a read-only store) uses it under the same
check and never writes it (`left_beside`).

How it stays exact: the index only narrows. `candidates` turns the search text into word terms that any
step containing the text must hold (a word the text encloses whole, or a prefix of the word it ends
on), and returns the traces of the steps that hold them all: a superset of the traces that match. The
search then runs the same substring match as the scan, in DuckDB, on those traces plus every trace
with a step or a GenAI event newer than the index's watermark. So the answer is the scan's answer,
only cheaper; text with no usable term (two letters, only punctuation) is scanned as before. The
word the text ends on is looked up among the stored words (`words`) and asked for as those words,
never as an FTS5 prefix term, whose cost grows with the store (see `candidates`).

Terms are built from ASCII letters and digits only, and are always quoted: no byte of the user's text
is ever read as FTS5 query syntax. Steps whose text changes after indexing (a GenAI event joined
later) get another document for the same step: stale documents only widen the superset.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.store.connection import Store

log = logging.getLogger(__name__)

FORMAT = "1"
SUFFIX = ".search.sqlite"
TEXT_COLUMNS = ("name", "input_text", "output_text", "reasoning_text", "tool_arguments", "tool_result")
CHUNK = 5_000  # steps read from DuckDB and inserted per SQLite transaction
CAP = 20_000  # more candidate documents than this: the index does not narrow enough, scan instead

# What DuckDB's lower() of a step's text looks like to the index: the columns joined by newlines (a
# separator, so no word spans two columns).
_DOC_SQL = (
    "SELECT seq, trace_id, lower(concat_ws(chr(10), "
    + ", ".join(f"coalesce({c}, '')" for c in TEXT_COLUMNS)
    + ")) FROM steps"
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (doc INTEGER PRIMARY KEY, seq INTEGER NOT NULL, trace_id TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS text USING fts5(body, content='', detail=none, tokenize='ascii');
CREATE TABLE IF NOT EXISTS words (word TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS word_grams USING fts5(word, tokenize='trigram case_sensitive 1');
"""
# Per connection, in memory: one chunk's bodies, and its words as FTS5's tokenizer finds them.
_CHUNK_SCHEMA = """
PRAGMA temp_store = MEMORY;
CREATE TEMP TABLE chunk (doc INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE VIRTUAL TABLE temp.chunk_text USING fts5(body, content='', detail=none, tokenize='ascii');
CREATE VIRTUAL TABLE temp.chunk_words USING fts5vocab(temp, chunk_text, row);
CREATE TEMP TABLE new_words (word TEXT NOT NULL);
"""
# FTS5's `ascii` tokenizer: a word is a run of ASCII letters and digits and any non-ASCII character;
# every other ASCII character separates. Defined on ASCII classes alone, so Python finds exactly its
# words (unicode61 would need SQLite's own Unicode tables, which differ from Python's at the edges).
_WORD = re.compile(r"[a-z0-9\x80-\U0010ffff]+")
WORDS_PER_QUERY = 64  # a text inside more stored words than this: scan instead
MIN_INFIX = 3  # the trigram index of words finds a text inside a word from three characters on


def index_path(store: Store) -> Path:
    return store.path.with_name(store.path.name + SUFFIX)


def terms(text: str) -> tuple[list[str], str]:
    """FTS5 terms every text containing `text` (lower-cased) must hold, each quoted; and, when there is
    none, the longest word part of `text`, which only a lookup of the stored words can use.

    A word of `text` is a whole stored word when separators stand on both sides of it inside `text`,
    and the beginning of one when a separator stands before it. The first word (it may be the end of a
    longer one) says nothing by itself. Words hold no quote character, so quoting is all the escaping a
    term needs: no character of the user's text is read as query syntax.
    """
    out: list[str] = []
    longest = ""
    for m in _WORD.finditer(text):
        start, end = m.span()
        longest = max(longest, m.group(), key=len)
        if start == 0:
            continue
        out.append(f'"{m.group()}"' if end < len(text) else f'"{m.group()}"*')
    return list(dict.fromkeys(out)), longest


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection (a URI built by pathlib, so a `?` or `#` in the path is a path character)."""
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)


def _meta(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return str(row[0]) if row else ""


class SearchIndex:
    """The side index file: `update` appends what is new in the store, `candidates` narrows a search.

    One writer (the indexer service's thread); any thread may call `candidates`, each call on its own
    read connection (WAL), so a search never waits on an update.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            return self._init(sqlite3.connect(self.path, check_same_thread=False))
        except sqlite3.DatabaseError as exc:
            log.warning("search index %s unreadable (%s): rebuilding it", self.path, exc)
            self._remove()
            return self._init(sqlite3.connect(self.path, check_same_thread=False))

    def _init(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # derived data: a crash costs a rebuild, never evidence
        conn.executescript(_SCHEMA + _CHUNK_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('format', ?), ('watermark', '0'), ('chain', '')", [FORMAT])
            conn.commit()
        elif row[0] != FORMAT:
            conn.close()
            raise sqlite3.DatabaseError(f"index format {row[0]}, this version writes {FORMAT}")
        return conn

    def _remove(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def _meta(self, conn: sqlite3.Connection, key: str) -> str:
        return _meta(conn, key)

    def close(self) -> None:
        """Close the writing connection (SQLite folds its WAL into the file); searches still read it."""
        with self._lock:
            self._conn.close()

    @property
    def watermark(self) -> int:
        """Every step with a seq up to here is indexed, and every GenAI event up to here joined."""
        with self._lock:
            return int(self._meta(self._conn, "watermark") or 0)

    def reset(self) -> None:
        """Start again from nothing (after a renormalize, or for another database)."""
        with self._lock:
            self._conn.close()
            self._remove()
            self._conn = self._init(sqlite3.connect(self.path, check_same_thread=False))

    def matches_store(self, store: Store) -> bool:
        """Whether the index was built from this database: the ledger's chain at the watermark agrees."""
        mark = self.watermark
        if mark == 0:
            return True
        with self._lock:
            chain = self._meta(self._conn, "chain")
        row = store.cursor().execute("SELECT chain FROM ledger WHERE seq = ?", [mark]).fetchone()
        return row is not None and bytes(row[0]).hex() == chain

    def update(self, store: Store) -> int:
        """Index the steps committed since the watermark, and again those whose GenAI events arrived
        since; returns how many seqs the watermark moved (0: up to date). At most CHUNK seqs a call."""
        mark = self.watermark
        cur = store.cursor()
        # One statement for the newest seq (up to a chunk), its chain and whether any GenAI event came
        # with it: each DuckDB statement costs milliseconds, paid per update. max() past the watermark,
        # not ORDER BY seq DESC: DuckDB skips the row groups below the watermark by their min/max, so
        # this stays cheap as the store grows (a top-1 sort read the whole seq column: 13 ms at 1M rows).
        # (A file's seqs have no gaps, so the next chunk's range always holds the next seq.)
        row = cur.execute(
            "SELECT max(seq), arg_max(chain, seq), (SELECT count(*) FROM logs WHERE seq > $mark"
            " AND seq <= $end AND span_id <> '') FROM ledger WHERE seq > $mark AND seq <= $end",
            {"mark": mark, "end": mark + CHUNK},
        ).fetchone()
        if row is None or row[0] is None:
            return 0
        top, chain, events = int(row[0]), row[1], int(row[2])
        rows = cur.execute(_DOC_SQL + " WHERE seq > ? AND seq <= ? ORDER BY seq", [mark, top]).fetchall()
        if events:  # steps stored earlier whose events arrived now: indexed again with the events' text
            rows += cur.execute(
                _DOC_SQL + " WHERE seq <= ? AND (trace_id, span_id) IN (SELECT trace_id, span_id FROM logs"
                " WHERE seq > ? AND seq <= ? AND span_id <> '')",
                [mark, mark, top],
            ).fetchall()
        self._append(rows, top, bytes(chain).hex())
        return top - mark

    def _append(self, rows: Sequence[tuple[int, str, str]], top: int, chain: str) -> None:
        """One SQLite transaction: the documents, and the words new to the index with their trigrams.

        The chunk's words come from SQLite, not Python: its bodies also go into an in-memory FTS5
        table with the same tokenizer, whose fts5vocab lists the chunk's distinct words (C, where a
        Python regex over every body was most of the indexer's CPU). So the stored words are exactly
        the tokens FTS5 indexed, by construction; only words never seen before get trigrams.
        """
        with self._lock:
            conn = self._conn
            try:
                first = (conn.execute("SELECT coalesce(max(doc), 0) FROM docs").fetchone() or (0,))[0] + 1
                conn.executemany(
                    "INSERT INTO docs VALUES (?, ?, ?)", [(first + i, r[0], r[1]) for i, r in enumerate(rows)]
                )
                conn.executemany(
                    "INSERT INTO temp.chunk VALUES (?, ?)", [(first + i, r[2]) for i, r in enumerate(rows)]
                )
                conn.execute("INSERT INTO text (rowid, body) SELECT doc, body FROM temp.chunk")
                conn.execute("INSERT INTO temp.chunk_text (rowid, body) SELECT doc, body FROM temp.chunk")
                conn.execute(
                    "INSERT INTO temp.new_words SELECT term FROM temp.chunk_words"
                    " WHERE term NOT IN (SELECT word FROM words)"
                )
                conn.execute("INSERT INTO words SELECT word FROM temp.new_words")
                conn.execute("INSERT INTO word_grams (word) SELECT word FROM temp.new_words")
                conn.execute("UPDATE meta SET value = ? WHERE key = 'watermark'", [str(top)])
                conn.execute("UPDATE meta SET value = ? WHERE key = 'chain'", [chain])
                # Empty the chunk in the same transaction, so that a failure anywhere above rolls the
                # temp tables back with the rest and the next call starts from an empty chunk.
                conn.execute("DELETE FROM temp.chunk")
                conn.execute("DELETE FROM temp.new_words")
                conn.execute("INSERT INTO temp.chunk_text (chunk_text) VALUES ('delete-all')")
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def candidates(self, needle: str) -> tuple[list[str], int] | None:
        """(trace ids that may contain `needle`, the watermark they are complete up to), or None when
        the index cannot narrow the search (no usable term, too many documents, an unreadable file)."""
        return candidates(self.path, needle)


def candidates(path: Path, needle: str) -> tuple[list[str], int] | None:
    """`SearchIndex.candidates` on the index file at `path`, read on a connection of its own (read-only)."""
    found, longest = terms(needle.lower())
    if not found and len(longest) < MIN_INFIX:
        return None
    try:
        conn = _read_only(path)
        try:
            mark = int(_meta(conn, "watermark") or 0)
            kept = [t for t in found if not t.endswith("*")]
            for term in (t for t in found if t.endswith("*")):
                # The word the text ends on, as a prefix: the stored words that start with it, spelled out.
                # FTS5 answers a prefix term by merging the whole doclist of every such word before the
                # first row (120 ms for a common one at 1M steps, growing with the store, search_read.py);
                # exact words are read lazily, so the LIMIT bounds them. More words than WORDS_PER_QUERY:
                # the term is left out, which only widens the candidates.
                words = conn.execute(
                    "SELECT word FROM words WHERE word GLOB ? LIMIT ?",
                    [term[1:-2] + "*", WORDS_PER_QUERY + 1],
                ).fetchall()
                if not words:
                    return [], mark  # no stored step holds a word starting so: none can contain the text
                if len(words) <= WORDS_PER_QUERY:
                    kept.append("(" + " OR ".join(f'"{w[0]}"' for w in words) + ")")
            query = " AND ".join(kept)
            if not query and len(longest) < MIN_INFIX:
                return None
            if not query:  # one word part: the stored words it lies inside, any of them
                words = conn.execute(
                    "SELECT word FROM word_grams WHERE word_grams MATCH ? LIMIT ?",
                    [f'"{longest}"', WORDS_PER_QUERY + 1],
                ).fetchall()
                if not words or len(words) > WORDS_PER_QUERY:
                    return ([], mark) if not words else None
                query = " OR ".join(f'"{w[0]}"' for w in words)
            rows = conn.execute(
                "SELECT d.trace_id FROM text JOIN docs d ON d.doc = text.rowid WHERE text MATCH ? LIMIT ?",
                [query, CAP + 1],
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.warning("search index %s failed (%s): scanning instead", path, exc)
        return None
    if len(rows) > CAP:
        return None
    return sorted({r[0] for r in rows}), mark


def discard(store: Store) -> None:
    """Delete this store's index file (after `renormalize` rewrote the steps): the server rebuilds it."""
    if store.is_lake:
        return  # a lake keeps no side index (workbench/server/app.py)
    path = index_path(store)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


_attached: dict[Path, SearchIndex] = {}


def attach(store: Store, index: SearchIndex) -> None:
    """Make `index` the one searches of this store's file use (the server's indexer does this)."""
    _attached[store.path.resolve()] = index


def detach(store: Store) -> None:
    _attached.pop(store.path.resolve(), None)


def attached(store: Store) -> SearchIndex | None:
    """The index the server keeps for this store, in this process, if any."""
    return _attached.get(store.path.resolve()) if _attached else None


@dataclass(frozen=True)
class LeftIndex:
    """An index a server left beside a database file, read by a process that does not keep it (a CLI
    command on the file, a UI over a read-only store). It is as good as the server's own: a search
    narrows by it up to its watermark and scans every trace with newer steps or GenAI events."""

    path: Path

    def candidates(self, needle: str) -> tuple[list[str], int] | None:
        return candidates(self.path, needle)


def left_beside(store: Store) -> LeftIndex | None:
    """The index beside this file, when it was built from this very database: its format is this
    version's and the ledger's chain at its watermark is the one it recorded (the check the server makes
    before it appends). A missing, foreign, stale-format or unreadable file gives None: scan."""
    if store.is_lake:
        return None
    path = index_path(store)
    if not path.is_file():
        return None
    try:
        conn = _read_only(path)
        try:
            fmt, mark, chain = (_meta(conn, k) for k in ("format", "watermark", "chain"))
        finally:
            conn.close()
        row = store.cursor().execute("SELECT chain FROM ledger WHERE seq = ?", [int(mark or 0)]).fetchone()
    except (sqlite3.Error, ValueError) as exc:
        log.warning("search index %s unreadable (%s): scanning instead", path, exc)
        return None
    if fmt != FORMAT or row is None or bytes(row[0]).hex() != chain:
        return None
    return LeftIndex(path)


def for_search(store: Store) -> SearchIndex | LeftIndex | None:
    """The index a search of this store narrows by: the server's in this process, else one a server
    left beside the file; None (a lake, a file never served, a foreign index): the search scans."""
    return attached(store) or left_beside(store)
