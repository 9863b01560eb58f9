"""Signed tree heads: checkpoints that leave the database, so truncation and rewrite are caught.

An insider with the data directory can rewrite spans, ledger and internal checkpoints consistently, or
cut the tail; only a tree head kept elsewhere can tell. The text form follows the C2SP signed-note and
tlog-checkpoint formats (modelled on RFC 6962 section 3.5 signed tree heads):

    agent-audit-workbench/ledger        origin
    1234                                tree size of the span ledger
    <base64 root>                       RFC 6962 root over the span digests
    entries 56 <base64 root>            the second chain (findings, annotations, probe results)
    time 2025-01-01T00:00:00Z
                                        blank line, then signature lines
    — workbench <base64(key id[4] || Ed25519 signature over the text above the blank line)>

A log file is such notes one after the other. Pure functions over bytes and the store; the key is
passed in (the data directory's key, loaded by the caller: workbench/export/signing.py).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from workbench.errors import WorkbenchError
from workbench.store import entries, ledger
from workbench.store.connection import Store

ORIGIN = "agent-audit-workbench/ledger"
KEY_NAME = "workbench"
_SIG_PREFIX = "\u2014 "  # em dash and a space, as in C2SP signed notes


@dataclass(frozen=True)
class TreeHead:
    size: int
    root: bytes
    entries_size: int
    entries_root: bytes
    time: datetime

    def text(self) -> str:
        """The signed text: stable, line-oriented, one value per line."""
        b64 = base64.b64encode
        return (
            f"{ORIGIN}\n{self.size}\n{b64(self.root).decode()}\n"
            f"entries {self.entries_size} {b64(self.entries_root).decode()}\n"
            f"time {self.time.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        )


def key_id(public: Ed25519PublicKey, name: str = KEY_NAME) -> bytes:
    """C2SP note key id: SHA-256(name || '\\n' || 0x01 || raw public key), first 4 bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4]


def current(store: Store) -> TreeHead:
    """The tree head of the database as it is now (O(n) hashing of the stored digests)."""
    cur = store.cursor()
    spans = [bytes(d) for (d,) in cur.execute("SELECT digest FROM ledger ORDER BY seq").fetchall()]
    others = entries.entry_digests(cur)
    return TreeHead(
        len(spans),
        ledger.merkle_root(spans),
        len(others),
        ledger.merkle_root(others),
        datetime.now(UTC).replace(microsecond=0),
    )


def sign(head: TreeHead, key: Ed25519PrivateKey, name: str = KEY_NAME) -> str:
    """The signed note for `head`."""
    text = head.text()
    sig = key.sign(text.encode())
    return f"{text}\n{_SIG_PREFIX}{name} {base64.b64encode(key_id(key.public_key(), name) + sig).decode()}\n"


def parse_log(data: str, public: Ed25519PublicKey, where: str, name: str = KEY_NAME) -> list[TreeHead]:
    """Every note in a checkpoint file or log, oldest first; a bad signature or form raises."""
    heads: list[TreeHead] = []
    blocks = data.replace("\r\n", "\n").split("\n\n")
    i = 0
    while i < len(blocks):
        body = blocks[i].strip("\n")
        if not body:
            i += 1
            continue
        if i + 1 >= len(blocks):
            raise WorkbenchError(f"{where}: note {len(heads) + 1} has no signature")
        heads.append(
            _verify(body + "\n", blocks[i + 1].strip("\n"), public, name, f"{where} note {len(heads) + 1}")
        )
        i += 2
    if not heads:
        raise WorkbenchError(f"{where}: no signed tree head in it")
    return heads


def check_signature(
    text: str, sigs: str, public: Ed25519PublicKey, name: str, where: str, *, missing: str
) -> None:
    """Raise unless one of a signed note's signature lines is a valid signature of `text` by `public`
    under key name `name` (C2SP signed-note: key id = first 4 bytes of the blob). `missing` says whose
    signature was looked for; lines by other keys are skipped, as the format allows co-signers."""
    want = key_id(public, name)
    for line in sigs.splitlines():
        if not line.startswith(_SIG_PREFIX + name + " "):
            continue
        try:
            blob = base64.b64decode(line.split(" ")[-1], validate=True)
        except ValueError:
            continue
        if blob[:4] != want:
            continue
        try:
            public.verify(blob[4:], text.encode())
        except InvalidSignature as exc:
            raise WorkbenchError(
                f"{where}: the signature does not hold (edited or signed by another key)"
            ) from exc
        return
    raise WorkbenchError(f"{where}: no signature by {missing}")


def _verify(text: str, sigs: str, public: Ed25519PublicKey, name: str, where: str) -> TreeHead:
    check_signature(text, sigs, public, name, where, missing="this data directory's key")
    return _parse(text, where)


def _parse(text: str, where: str) -> TreeHead:
    lines = text.rstrip("\n").split("\n")
    try:
        if len(lines) != 5 or lines[0] != ORIGIN:
            raise ValueError("unexpected lines")
        _, n_entries, entries_root = lines[3].split(" ")
        if not lines[3].startswith("entries ") or not lines[4].startswith("time "):
            raise ValueError("unexpected lines")
        return TreeHead(
            int(lines[1]),
            base64.b64decode(lines[2], validate=True),
            int(n_entries),
            base64.b64decode(entries_root, validate=True),
            datetime.strptime(lines[4][5:], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        )
    except ValueError as exc:
        raise WorkbenchError(f"{where}: not a workbench tree head ({exc})") from exc


def check_extends(store: Store, heads: list[TreeHead]) -> list[str]:
    """Problems, if today's ledger does not extend every signed head (RFC 6962 consistency proofs).

    Names the first missing entry on truncation. On a rewrite, a root alone cannot say which leaf
    changed; with a log of several heads the first changed entry is bounded by the last head that
    still holds and the first that does not.
    """
    cur = store.cursor()
    spans = [bytes(d) for (d,) in cur.execute("SELECT digest FROM ledger ORDER BY seq").fetchall()]
    problems = _check_tree("span ledger seq", spans, [(h.size, h.root, h.time) for h in heads])
    problems += _check_tree(
        "ledger entry", entries.entry_digests(cur), [(h.entries_size, h.entries_root, h.time) for h in heads]
    )
    return problems


def _check_tree(what: str, leaves: list[bytes], heads: list[tuple[int, bytes, datetime]]) -> list[str]:
    levels = ledger.merkle_levels(leaves)
    n, root = len(leaves), ledger.levels_root(levels)
    held = 0
    for size, signed_root, when in sorted(heads, key=lambda h: h[0]):
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        if size > n:
            return [f"{what} {n + 1}..{size}: signed at {stamp} but missing (tail truncated)"]
        proof = ledger.consistency_proof(size, levels) if size else []
        if not ledger.verify_consistency(size, n, signed_root, root, proof):
            return [
                f"{what} {held + 1}..{size}: changed since the head signed at {stamp} (size {size});"
                f" the first changed entry is in this range"
            ]
        held = size
    return []


def extends(head: TreeHead, span_levels: list[list[bytes]], entry_levels: list[list[bytes]]) -> list[str]:
    """Problems, if the trees given by their levels (ledger.merkle_levels) do not extend `head`: the
    check of check_extends for trees already built (an export has them)."""
    problems: list[str] = []
    for what, size, root, levels in (
        ("span ledger seq", head.size, head.root, span_levels),
        ("ledger entry", head.entries_size, head.entries_root, entry_levels),
    ):
        n = len(levels[0]) if levels else 0
        stamp = head.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        if size > n:
            problems.append(f"{what} {n + 1}..{size}: signed at {stamp} but missing (tail truncated)")
            continue
        proof = ledger.consistency_proof(size, levels) if 0 < size < n else []
        if not ledger.verify_consistency(size, n, root, ledger.levels_root(levels), proof):
            problems.append(f"{what} 1..{size}: changed since the head signed at {stamp}")
    return problems
