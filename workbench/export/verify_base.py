"""What the verifier reports (`Problem`, `VerifyResult`) and how it reads a bundle (`_Bundle`: a
directory or a zip, read the same way, every byte hashed as it streams by).

A zip is read strictly. A bundle is flat, so a member whose name is absolute, holds `..` or any path
separator is refused; so is a name that occurs twice, because tools disagree on which copy is "the"
file (Python's zipfile reads the last, `unzip -p` the first): a forged report and findings placed first
would be what a person reads while the genuine copies after them pass every hash.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

MAX_PROBLEMS = 200
_STREAMED = ("spans.jsonl", "proofs.jsonl")


@dataclass(frozen=True)
class Problem:
    file: str
    what: str
    line: int | None = None
    span_id: str | None = None

    def __str__(self) -> str:
        where = self.file + (f" line {self.line}" if self.line is not None else "")
        where += f" (span {self.span_id})" if self.span_id else ""
        return f"{where}: {self.what}"


@dataclass
class VerifyResult:
    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    key_id: str | None = None
    bundle_id: str | None = None
    dropped: int = 0
    streamed: dict[str, dict[str, Any]] = field(default_factory=dict)  # hashes of files read line by line
    pinned: bool = False  # the signature was checked against a key (or fingerprint) from outside the bundle
    # wall and CPU (this process) time of each part: "crypto" (signature, file hashes, span digests,
    # chain, proofs, entries) and "derive" (JSON lines against spans.pb, steps re-derived from spans)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what could not be checked, and why (not problems)
    # a lake bundle: the node that sealed each line of spans.jsonl (named in that line's problems)
    line_nodes: dict[int, str] = field(default_factory=dict)

    def name_nodes(self) -> None:
        """Put the sealing node in front of each problem on a span line of a lake bundle."""
        span_files = ("spans.jsonl", "proofs.jsonl", "spans.pb")
        for i, p in enumerate(self.problems):
            node = self.line_nodes.get(p.line or 0) if p.file in span_files else None
            if node is not None and not p.what.startswith("node "):
                self.problems[i] = Problem(p.file, f"node {node}, {p.what}", p.line, p.span_id)

    @property
    def ok(self) -> bool:
        """Everything in the bundle agrees with itself and with its signature. Says nothing about WHO
        signed unless `pinned`: see `trusted`."""
        return not self.problems and not self.dropped

    @property
    def trusted(self) -> bool:
        """`ok` and signed by the key the caller pinned: the only verdict a script should accept."""
        return self.ok and self.pinned

    def add(self, file: str, what: str, line: int | None = None, span_id: str | None = None) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(file, what, line, span_id))
        else:
            self.dropped += 1


class _Damaged(Exception):
    """A zip member that cannot be decompressed (its CRC or deflate stream was altered)."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(why)
        self.name = name


class _Bundle:
    """A bundle directory or zip, read the same way."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self.refused: list[tuple[str, str]] = []  # (member name, why) of zip members read strictly
        if path.is_dir():
            self._names = sorted(p.name for p in path.iterdir() if p.is_file() or p.is_dir())
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile as exc:
                raise WorkbenchError(
                    f"{path}: neither a bundle directory nor a readable zip ({exc})"
                ) from exc
            self._names, self.refused = _strict_names(self._zip.namelist())
        else:
            raise WorkbenchError(f"{path}: no such bundle")

    def names(self) -> list[str]:
        return self._names

    def read(self, name: str) -> bytes:
        return b"".join(self.chunks(name))

    def chunks(self, name: str) -> Iterator[bytes]:
        if self._zip is not None:
            try:
                with self._zip.open(name) as f:
                    while block := f.read(1 << 20):
                        yield block
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise _Damaged(name, str(exc)) from exc
        else:
            with (self.path / name).open("rb") as f:
                while block := f.read(1 << 20):
                    yield block

    def lines(self, name: str, seen: dict[str, Any] | None = None) -> Iterator[bytes]:
        """Lines without their newline; `seen` gets the file's SHA-256 and size once read to the end."""
        rest = b""
        h = hashlib.sha256()
        size = 0
        for block in self.chunks(name):
            if seen is not None:
                h.update(block)
            size += len(block)
            block = rest + block
            parts = block.split(b"\n")
            rest = parts.pop()
            yield from parts
        if rest:
            yield rest
        if seen is not None:
            seen.update(sha256=h.hexdigest(), bytes=size)


class Framing(ValueError):
    """spans.pb does not parse as length-delimited records (cut short, or a length out of range)."""


def records(chunks: Iterator[bytes], seen: dict[str, Any] | None = None) -> Iterator[bytes]:
    """Length-delimited records (varint length, then the bytes) from a byte stream; `seen` gets the
    stream's SHA-256 and size once read to the end. Raises Framing on a cut or malformed record."""
    h = hashlib.sha256()
    size = 0
    buf = b""
    at = 0
    for block in chunks:
        h.update(block)
        size += len(block)
        buf = buf[at:] + block
        at = 0
        end = len(buf)
        while at < end:
            n = shift = 0
            i = at
            complete = False
            while i < end:
                b = buf[i]
                i += 1
                n |= (b & 0x7F) << shift
                if b < 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 35:
                    raise Framing(f"record at byte {size - len(buf) + at}: length varint too long")
            if not complete or i + n > end:
                break  # the rest of this record is in the next block
            yield buf[i : i + n]
            at = i + n
    if at < len(buf):
        raise Framing(f"the last record (at byte {size - len(buf) + at}) is cut short")
    if seen is not None:
        seen.update(sha256=h.hexdigest(), bytes=size)


def _strict_names(members: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The member names of a flat bundle zip, and every member refused with the reason."""
    refused: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in members:
        if name in seen:
            refused.append((name, "duplicate zip member name (tools disagree on which copy is read)"))
        elif name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            refused.append((name, "absolute path in the zip (a bundle is flat)"))
        elif ".." in name.replace("\\", "/").split("/"):
            refused.append((name, "'..' in a zip member path (it points outside the bundle)"))
        elif "/" in name or "\\" in name or not name:
            refused.append((name, "a zip member in a folder (a bundle is flat)"))
        seen.add(name)
    return sorted(seen), refused


def _get(doc: Any, path: list[Any]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: Any, path: list[Any], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value
