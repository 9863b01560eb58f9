"""The global checkpoint of a lake: one signed root over every node's tree head, stored in the lake.

Why: in a lake each node keeps its own hash chain and Merkle tree (its ledger rows carry its node id), so
no single chain covers the lake. A node that lost its tail, or whose rows were rewritten, must still be
caught, and by any node. So periodically (serve in lake mode, every WORKBENCH_CHECKPOINT_EVERY; or
`workbench ledger checkpoint`) one node reads every node's tree head in one snapshot and commits them as
one signed note in `lake_roots`. `ledger verify` proves that each node's tree today extends its head in
the latest root (RFC 6962 consistency), and names the node whose tree does not.

The note follows the C2SP signed-note form of `treehead.py` (Ed25519, key id, em-dash signature line):

    agent-audit-workbench/lake-root
    nodes 2
    <base64 RFC 6962 root over SHA-256 of each node line below>
    node "host-a-1f2e3d4c" 1234 <base64 span root> entries 56 <base64 entries root>
    node "host-b-9a8b7c6d" 987 <base64 span root> entries 0 <base64 entries root>
    time 2026-01-01T00:00:00Z

Node ids are written as JSON strings, so no id can forge a line. The signer's public key is stored beside
the note: the note then proves which node signed what it saw; anchoring it outside the lake (append it to
a checkpoint log) is what catches a rewrite of the lake by someone holding that node's key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from workbench.errors import WorkbenchError
from workbench.settings import Settings
from workbench.store import ledger, treehead
from workbench.store.checkpoint_log import parse_every
from workbench.store.connection import Store
from workbench.store.lake import redact_dsn, retrying, rollback

log = logging.getLogger(__name__)

ORIGIN = "agent-audit-workbench/lake-root"
_STAMP = "%Y-%m-%dT%H:%M:%SZ"

CREATE = (
    "CREATE TABLE IF NOT EXISTS lake_roots ("
    " created_at TIMESTAMPTZ NOT NULL,"
    " signer_node VARCHAR NOT NULL,"
    " public_key BLOB NOT NULL,"  # raw Ed25519 public key of the signer
    " note VARCHAR NOT NULL)"  # the signed note, text and signature
)


@dataclass(frozen=True)
class NodeHead:
    node_id: str
    size: int
    root: bytes
    entries_size: int
    entries_root: bytes

    def line(self) -> str:
        b64 = base64.b64encode
        return (
            f"node {json.dumps(self.node_id)} {self.size} {b64(self.root).decode()} "
            f"entries {self.entries_size} {b64(self.entries_root).decode()}"
        )


@dataclass(frozen=True)
class GlobalRoot:
    heads: tuple[NodeHead, ...]
    time: datetime

    @property
    def root(self) -> bytes:
        """RFC 6962 root over the node lines: one value that commits to every node's head."""
        return ledger.merkle_root([hashlib.sha256(h.line().encode()).digest() for h in self.heads])

    def text(self) -> str:
        lines = [ORIGIN, f"nodes {len(self.heads)}", base64.b64encode(self.root).decode()]
        lines += [h.line() for h in self.heads]
        lines.append(f"time {self.time.astimezone(UTC).strftime(_STAMP)}")
        return "\n".join(lines) + "\n"

    def head(self, node_id: str) -> NodeHead | None:
        return next((h for h in self.heads if h.node_id == node_id), None)


def _leaves(cur: duckdb.DuckDBPyConnection, table: str, node_id: str) -> list[bytes]:
    rows = cur.execute(f"SELECT digest FROM {table} WHERE node_id = ? ORDER BY seq", [node_id]).fetchall()
    return [bytes(d) for (d,) in rows]


def _node_ids(cur: duckdb.DuckDBPyConnection) -> list[str]:
    rows = cur.execute(
        "SELECT node_id FROM lake_nodes UNION SELECT DISTINCT node_id FROM ledger"
        " UNION SELECT DISTINCT node_id FROM ledger_entries ORDER BY 1"
    ).fetchall()
    return [str(n) for (n,) in rows]


def current(cur: duckdb.DuckDBPyConnection) -> GlobalRoot:
    """Every node's tree head as the cursor's snapshot sees them (call inside one transaction)."""
    heads = []
    for node_id in _node_ids(cur):
        spans, others = _leaves(cur, "ledger", node_id), _leaves(cur, "ledger_entries", node_id)
        heads.append(
            NodeHead(node_id, len(spans), ledger.merkle_root(spans), len(others), ledger.merkle_root(others))
        )
    return GlobalRoot(tuple(heads), datetime.now(UTC).replace(microsecond=0))


def sign(root: GlobalRoot, key: Ed25519PrivateKey, name: str = treehead.KEY_NAME) -> str:
    """The signed note for `root`."""
    text = root.text()
    blob = treehead.key_id(key.public_key(), name) + key.sign(text.encode())
    return f"{text}\n\u2014 {name} {base64.b64encode(blob).decode()}\n"


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ensure_table(store: Store) -> None:
    """Create `lake_roots` if missing; nodes racing to create it retry (a conflict) and find it there."""
    cur = store.cursor()
    retrying(lambda: cur.execute(CREATE), "creating lake_roots")


def open_for_roots(settings: Settings) -> Store:
    """The lake, writable, for `ledger checkpoint`: unlike `open_lake` it registers no node (a command
    that only signs what the nodes wrote is not one of them)."""
    from workbench.store import lake

    store = Store.over(lake._attach(settings, read_only=False), f"lake:{redact_dsn(settings.lake)}")
    store.is_lake = True
    store.node_id = settings.node_id or lake.default_node_id(settings)
    return store


def commit_root(store: Store, key: Ed25519PrivateKey, signer: str) -> str:
    """Read every node's head in one snapshot, sign the global root and store it in the lake; the note."""
    ensure_table(store)
    cur = store.cursor()

    def attempt() -> str:
        cur.execute("BEGIN TRANSACTION")
        try:
            note = sign(current(cur), key)
            cur.execute(
                "INSERT INTO lake_roots VALUES (?, ?, ?, ?)",
                [datetime.now(UTC), signer, _raw(key.public_key()), note],
            )
            cur.execute("COMMIT")
            return note
        except BaseException:
            rollback(cur)
            raise

    return retrying(attempt, "committing the lake's global root")


def parse(note: str, public: Ed25519PublicKey, where: str, name: str = treehead.KEY_NAME) -> GlobalRoot:
    """The root a signed note holds; raises if the signature does not hold or the form is wrong."""
    text, _, sigs = note.replace("\r\n", "\n").partition("\n\n")
    text += "\n"
    treehead.check_signature(text, sigs, public, name, where, missing="the key stored with it")
    return _parse_text(text, where)


def _parse_text(text: str, where: str) -> GlobalRoot:
    lines = text.rstrip("\n").split("\n")
    try:
        if len(lines) < 4 or lines[0] != ORIGIN or not lines[1].startswith("nodes "):
            raise ValueError("unexpected lines")
        count = int(lines[1][6:])
        if len(lines) != 4 + count or not lines[-1].startswith("time "):
            raise ValueError("node count does not match")
        heads = []
        for line in lines[3 : 3 + count]:
            if not line.startswith("node "):
                raise ValueError(f"not a node line: {line[:40]!r}")
            node_id, end = json.JSONDecoder().raw_decode(line, 5)
            size, span_root, word, entries_size, entries_root = line[end:].split()
            if word != "entries":
                raise ValueError("no entries field")
            b64 = base64.b64decode
            heads.append(
                NodeHead(
                    str(node_id),
                    int(size),
                    b64(span_root, validate=True),
                    int(entries_size),
                    b64(entries_root, validate=True),
                )
            )
        parsed = GlobalRoot(tuple(heads), datetime.strptime(lines[-1][5:], _STAMP).replace(tzinfo=UTC))
        if base64.b64encode(parsed.root).decode() != lines[2]:
            raise ValueError("the root does not match the node lines")
        return parsed
    except ValueError as exc:
        raise WorkbenchError(f"{where}: not a lake root ({exc})") from exc


@dataclass(frozen=True)
class StoredRoot:
    root: GlobalRoot
    signer_node: str
    public_key: bytes
    note: str


def latest(store: Store) -> StoredRoot | None:
    """The newest global root in the lake, its signature checked; None when none was committed yet."""
    cur = store.cursor()
    there = cur.execute(
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_catalog = 'lake' AND table_name = 'lake_roots'"
    ).fetchone()
    if not there or not there[0]:
        return None
    row = cur.execute(
        "SELECT created_at, signer_node, public_key, note FROM lake_roots ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    created, signer, public, note = row
    where = f"global root of {created:%Y-%m-%dT%H:%M:%SZ} signed by node {signer}"
    key = Ed25519PublicKey.from_public_bytes(bytes(public))
    return StoredRoot(parse(str(note), key, where), str(signer), bytes(public), str(note))


def check(store: Store) -> tuple[StoredRoot | None, list[str]]:
    """The latest global root, and problems if any node's tree today does not extend its head in it."""
    stored = latest(store)
    if stored is None:
        return None, []
    cur = store.cursor()
    problems: list[str] = []
    for head in stored.root.heads:
        stamp = stored.root.time
        for what, size, signed, table in (
            ("span ledger seq", head.size, head.root, "ledger"),
            ("ledger entry", head.entries_size, head.entries_root, "ledger_entries"),
        ):
            found = treehead._check_tree(what, _leaves(cur, table, head.node_id), [(size, signed, stamp)])
            problems += [f"node {head.node_id}: {p} (global root)" for p in found]
    return stored, problems


class GlobalCheckpointService:
    """Inside `serve --lake`: commits a global root every `every` ("10000" of this node's spans, or
    "5m"), and once more at stop. Any node may run it; roots from several nodes are all valid."""

    name = "lake-checkpoint"

    def __init__(self, store: Store, key: Ed25519PrivateKey, every: str, poll_s: float = 5.0) -> None:
        self.store, self.key = store, key
        self.every_spans, self.every_s = parse_every(every)
        self.poll_s = poll_s if self.every_s is None else min(poll_s, self.every_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-lake-checkpoint", daemon=True)
        self._last_local = -1
        self.roots = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        self.commit_now()

    def _local_size(self) -> int:
        row = (
            self.store.cursor()
            .execute("SELECT count(*) FROM ledger WHERE node_id = ?", [self.store.node_id])
            .fetchone()
        )
        return int(row[0]) if row else 0

    def commit_now(self) -> None:
        """Commit a root now; a failure is logged loudly and never stops ingest."""
        try:
            size = self._local_size()
            commit_root(self.store, self.key, self.store.node_id or "node")
            self._last_local = size
            self.roots += 1
        except Exception:
            log.exception("could not commit the lake's global root")

    def _run(self) -> None:
        waited = 0.0
        while not self._stop.wait(self.poll_s):
            waited += self.poll_s
            if self.every_s is not None and waited >= self.every_s:
                waited = 0.0
                self.commit_now()
            elif (
                self.every_spans is not None
                and self._local_size() - max(self._last_local, 0) >= self.every_spans
            ):
                self.commit_now()
