"""`workbench verify BUNDLE`: check a bundle offline, trusting nothing in it but the key you pin.

Recomputes: the Ed25519 signature over manifest.json; the SHA-256 and size of every file, and that no
file was added; for every line of spans.jsonl the canonical protobuf and its SHA-256 against the ledger
digest in proofs.jsonl (unredacted spans), the chain link, the RFC 6962 audit path to the covered root;
the chain across a contiguous range; the consistency of the covered tree with the signed checkpoint
and of the ledger's stored checkpoints; every redaction's mask at its recorded place; with the owner's
reveal file, every salted hash and the original digest of every redacted span. Each problem names the
file, the line (or row) and the span id.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import os
import zipfile
import zlib
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from workbench.errors import WorkbenchError
from workbench.export import otlp_json, signing
from workbench.export.redact import apply_originals, mask_text, salted_hash
from workbench.store import ledger

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

    @property
    def ok(self) -> bool:
        return not self.problems and not self.dropped

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
        if path.is_dir():
            self._names = sorted(p.name for p in path.iterdir() if p.is_file() or p.is_dir())
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile as exc:
                raise WorkbenchError(
                    f"{path}: neither a bundle directory nor a readable zip ({exc})"
                ) from exc
            self._names = sorted(self._zip.namelist())
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


def _get(doc: Any, path: list[Any]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: Any, path: list[Any], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def verify_bundle(
    path: Path, pubkey: bytes | None = None, reveal: bytes | None = None, jobs: int = 1
) -> VerifyResult:
    """Every check above; `pubkey` pins the signer (PEM or raw hex), `reveal` is the owner's reveal file.

    `jobs` > 1 re-encodes and hashes unredacted span lines in that many worker processes (the checks
    are independent per line); 0 picks the CPU count for bundles of 20,000 spans or more, else 1.
    """
    result = VerifyResult()
    try:
        _verify(_Bundle(path), result, pubkey, reveal, jobs)
    except _Damaged as exc:
        result.add(exc.name, f"damaged zip member (CRC or deflate error: altered bytes): {exc}")
    return result


def _verify(
    bundle: _Bundle, result: VerifyResult, pubkey: bytes | None, reveal: bytes | None, jobs: int
) -> None:
    names = set(bundle.names())
    for required in ("manifest.json", "manifest.sig", "public_key.pem"):
        if required not in names:
            result.add(required, "missing from the bundle")
    if "manifest.json" not in names:
        return
    manifest_bytes = bundle.read("manifest.json")
    try:
        manifest = orjson.loads(manifest_bytes)
    except orjson.JSONDecodeError as exc:
        result.add("manifest.json", f"not JSON: {exc}")
        return
    result.bundle_id = manifest.get("bundle_id")

    # 1. Signature, with the pinned key when there is one.
    key: Any = None
    if "public_key.pem" in names:
        try:
            key = signing.load_public_key(bundle.read("public_key.pem"), "public_key.pem")
        except WorkbenchError as exc:
            result.add("public_key.pem", str(exc))
        if key is not None and manifest.get("signing", {}).get("public_key") != signing.raw_public(key).hex():
            result.add("public_key.pem", "is not the key the manifest names (replaced key file)")
    if pubkey is not None:
        pinned = signing.load_public_key(pubkey, "--pubkey")
        if key is not None and signing.raw_public(pinned) != signing.raw_public(key):
            result.add(
                "public_key.pem",
                f"wrong key: the bundle carries key {signing.key_id(key)}, you pinned "
                f"{signing.key_id(pinned)}",
            )
        key = pinned
    if key is not None:
        result.key_id = signing.key_id(key)
        if "manifest.sig" in names:
            try:
                signature = base64.b64decode(bundle.read("manifest.sig").strip(), validate=True)
            except ValueError:
                signature = b""
            if not signing.signature_holds(key, signature, manifest_bytes):
                result.add(
                    "manifest.sig",
                    "signature does not match manifest.json (forged or altered manifest, or wrong key)",
                )

    # 2. Files: hashes, sizes, nothing added.
    listed = manifest.get("files", {})
    for name in sorted(names - set(listed) - {"manifest.json", "manifest.sig"}):
        result.add(name, "not listed in the manifest (inserted file)")
    for name, entry in sorted(listed.items()):
        if name not in names:
            result.add(name, "listed in the manifest but missing (deleted file)")
            continue
        if name in _STREAMED and all(n in names for n in _STREAMED):
            continue  # hashed while its lines are checked below: one read instead of two
        h = hashlib.sha256()
        size = 0
        for block in bundle.chunks(name):
            h.update(block)
            size += len(block)
        _compare_file(result, name, entry, {"sha256": h.hexdigest(), "bytes": size})
    result.checked["files"] = len(listed)

    if "spans.jsonl" in names and "proofs.jsonl" in names:
        try:
            if jobs <= 0:
                jobs = (os.cpu_count() or 1) if manifest.get("counts", {}).get("spans", 0) >= 20_000 else 1
            _verify_spans(bundle, manifest, result, _load_redactions(bundle, names, result), reveal, jobs)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            result.add("manifest.json", f"malformed ledger or redaction facts: {type(exc).__name__}: {exc}")
        for name in _STREAMED:
            _compare_file(result, name, listed.get(name), result.streamed.setdefault(name, {}))


def _compare_file(
    result: VerifyResult, name: str, entry: dict[str, Any] | None, seen: dict[str, Any]
) -> None:
    if entry is None:
        return
    if seen.get("sha256") != entry.get("sha256") or seen.get("bytes") != entry.get("bytes"):
        result.add(
            name,
            f"SHA-256/size differ from the manifest ({seen.get('bytes')} bytes, sha256 "
            f"{str(seen.get('sha256'))[:16]}…): file altered or replaced",
        )


def _load_redactions(
    bundle: _Bundle, names: set[str], result: VerifyResult
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    by_place: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    if "redactions.jsonl" not in names:
        return by_place
    for i, raw in enumerate(bundle.lines("redactions.jsonl"), 1):
        try:
            rec = orjson.loads(raw)
            by_place[(rec["file"], rec.get("line", rec.get("row")))].append(rec)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            result.add("redactions.jsonl", f"not a redaction record: {exc}", i)
    return by_place


def _check_masks(
    doc: Any, records: list[dict[str, Any]], result: VerifyResult, file: str, line: int, span: str | None
) -> bool:
    ok = True
    for rec in records:
        try:
            value = _get(doc, rec["path"])
            mask = mask_text(rec["kind"], rec["id"])
            if value[rec["masked_start"] : rec["masked_end"]] != mask:
                raise ValueError(f"no {mask} at {rec['masked_start']}..{rec['masked_end']}")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            ok = False
            result.add(
                file,
                f"redaction #{rec.get('id')} at {'.'.join(map(str, rec.get('path', [])))} does not match "
                f"the line: {exc}",
                line,
                span,
            )
    return ok


def _verify_spans(
    bundle: _Bundle,
    manifest: dict[str, Any],
    result: VerifyResult,
    redactions: dict[tuple[str, int], list[dict[str, Any]]],
    reveal_raw: bytes | None,
    jobs: int = 1,
) -> None:
    led = manifest.get("ledger", {})
    covered = led.get("covered", {})
    checkpoint = led.get("checkpoint", {})
    size = int(covered.get("tree_size", 0))
    covered_root = bytes.fromhex(covered.get("merkle_root", ""))
    originals: dict[int, str] = {}
    salt = b""
    if reveal_raw is not None:
        reveal = orjson.loads(reveal_raw)
        if reveal.get("bundle_id") != manifest.get("bundle_id"):
            raise WorkbenchError("the reveal file belongs to another bundle")
        salt = bytes.fromhex(reveal["salt"])
        originals = {int(k): v for k, v in reveal["originals"].items()}

    line_ids: list[str] = []
    entry_ids: list[str] = []
    entries_by_id: dict[str, tuple[int, dict[str, Any]]] = {}
    lines_by_id: dict[str, tuple[int, bytes, Any]] = {}
    entries: list[dict[str, Any]] = []  # small per-entry facts for the chain and prefix checks

    def check_pair(line_no: int, raw: bytes, doc: Any, entry: dict[str, Any]) -> None:
        span_id = entry["span_id"]
        if entry.get("redacted") and hashlib.sha256(raw).hexdigest() != entry.get("line_sha256"):
            result.add(
                "spans.jsonl",
                "redacted line altered (its SHA-256 is not the one proofs.jsonl records for it)",
                line_no,
                span_id,
            )
        if isinstance(doc, orjson.JSONDecodeError):
            result.add("spans.jsonl", f"not JSON: {doc}", line_no, span_id)
            return
        digest = bytes.fromhex(entry["digest"])
        records = redactions.get(("spans.jsonl", line_no), [])
        if entry.get("redacted") or records:
            if not records:
                result.add(
                    "proofs.jsonl",
                    "marked redacted but redactions.jsonl has no record for it",
                    line_no,
                    span_id,
                )
            if _check_masks(doc, records, result, "spans.jsonl", line_no, span_id) and originals:
                by_path: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
                for rec in records:
                    if salted_hash(salt, originals.get(rec["id"], "")) != rec["hmac_sha256"]:
                        result.add(
                            "redactions.jsonl",
                            f"redaction #{rec['id']}: the revealed original does not match its salted hash",
                            line_no,
                            span_id,
                        )
                    by_path[tuple(rec["path"])].append(rec)
                for p, recs in by_path.items():
                    _set(doc, list(p), apply_originals(_get(doc, list(p)), recs, originals))
                try:
                    if ledger.digest(otlp_json.canonical_from_json(doc)) != digest:
                        result.add(
                            "spans.jsonl",
                            "with the originals put back, the span does not hash to its ledger digest "
                            "(changed beyond its redactions)",
                            line_no,
                            span_id,
                        )
                except otlp_json.OtlpJsonError as exc:
                    result.add("spans.jsonl", str(exc), line_no, span_id)
        else:
            for problem in _check_plain(line_no, doc, entry["digest"], span_id, entry["trace_id"]):
                result.add(*problem)
            return
        span = (
            doc.get("resourceSpans", [{}])[0].get("scopeSpans", [{}])[0].get("spans", [{}])[0]
            if isinstance(doc, dict)
            else {}
        )
        if span.get("traceId") != entry["trace_id"]:
            result.add(
                "spans.jsonl",
                f"trace id {span.get('traceId')} is not {entry['trace_id']} from proofs.jsonl",
                line_no,
                span_id,
            )

    def check_entry(line_no: int, entry: dict[str, Any]) -> None:
        span_id = entry["span_id"]
        digest = bytes.fromhex(entry["digest"])
        if ledger.chain_next(bytes.fromhex(entry["chain_prev"]), digest) != bytes.fromhex(entry["chain"]):
            result.add("proofs.jsonl", f"seq {entry['seq']}: chain link does not recompute", line_no, span_id)
        index = entry["seq"] - 1
        if fast is not None and fast.holds(index, entry["digest"], entry["proof"]):
            return
        proof = [bytes.fromhex(p) for p in entry["proof"]]
        if not ledger.verify_inclusion(index, size, digest, proof, covered_root):
            result.add(
                "proofs.jsonl",
                f"seq {entry['seq']}: inclusion proof does not lead to the covered root",
                line_no,
                span_id,
            )

    fast = _PrefixTree.build(bundle, manifest, result) if _covers_prefix(manifest) else None
    pool = _Workers(jobs, result) if jobs > 1 else None
    batch: list[tuple[int, bytes, str, str, str]] = []
    spans_seen = result.streamed.setdefault("spans.jsonl", {})
    proofs_seen = result.streamed.setdefault("proofs.jsonl", {})
    for line_no, (raw, praw) in enumerate(
        _zip_longest(bundle.lines("spans.jsonl", spans_seen), bundle.lines("proofs.jsonl", proofs_seen)), 1
    ):
        entry = None
        if praw is not None:
            try:
                entry = orjson.loads(praw)
                key = entry["span_id"]
                entry_ids.append(key)
                check_entry(line_no, entry)
                entries.append(
                    {
                        "seq": entry["seq"],
                        "digest": entry["digest"],
                        "chain_prev": entry["chain_prev"],
                        "chain": entry["chain"],
                    }
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                result.add("proofs.jsonl", f"not a proof record: {exc}", line_no)
                entry = None
        if pool is not None and raw is not None and entry is not None and not entry.get("redacted"):
            quick = _quick_span_id(raw)
            if quick is not None and quick == entry["span_id"] and ("spans.jsonl", line_no) not in redactions:
                line_ids.append(quick)
                batch.append((line_no, raw, entry["digest"], quick, entry["trace_id"]))
                if len(batch) >= _BATCH:
                    pool.submit(batch)
                    batch = []
                continue
        line_id = None
        doc: Any = None
        if raw is not None:
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                doc = exc
            line_id = _span_id_of(doc)
            if line_id is None and entry is not None:  # unreadable: check it in place, where it stands
                line_id = entry["span_id"]
            line_ids.append(line_id or f"<unreadable line {line_no}>")
        if entry is not None and raw is not None and line_id == entry["span_id"]:
            check_pair(line_no, raw, doc, entry)
        else:  # out of step: pair them up by span id after the pass
            if entry is not None:
                entries_by_id[entry["span_id"]] = (line_no, entry)
            if raw is not None:
                lines_by_id[line_id or f"<unreadable line {line_no}>"] = (line_no, raw, doc)
    if pool is not None:
        if batch:
            pool.submit(batch)
        pool.finish()
    for span_id, (line_no, raw, doc) in lines_by_id.items():
        if span_id in entries_by_id:
            check_pair(line_no, raw, doc, entries_by_id[span_id][1])
    _name_order_problems(entry_ids, line_ids, result)

    counts = manifest.get("counts", {})
    if counts.get("spans") != len(line_ids):
        result.add("spans.jsonl", f"{len(line_ids)} lines, the manifest says {counts.get('spans')} spans")
    result.checked["spans"] = len(line_ids)

    # Chain across the range and the covered root, when the range allows it.
    seqs = [e["seq"] for e in entries]
    if any(b <= a for a, b in zip(seqs, seqs[1:], strict=False)):
        result.add("proofs.jsonl", "sequence numbers are not increasing (records reordered)")
    if covered.get("contiguous") and entries:
        if entries[0]["chain_prev"] != led.get("chain_before"):
            result.add("proofs.jsonl", "the first span's chain_prev is not ledger.chain_before", 1, None)
        for i in range(1, len(entries)):
            if entries[i]["chain_prev"] != entries[i - 1]["chain"]:
                result.add(
                    "proofs.jsonl",
                    f"seq {entries[i]['seq']}: chain does not continue from the line before",
                    i + 1,
                )
        if entries[-1]["chain"] != covered.get("chain_head"):
            result.add("proofs.jsonl", "the last span's chain is not the covered chain head", len(entries))
    cons = led.get("consistency", {})
    if not ledger.verify_consistency(
        size,
        int(checkpoint.get("tree_size", 0)),
        covered_root,
        bytes.fromhex(checkpoint.get("merkle_root", "")),
        [bytes.fromhex(p) for p in cons.get("proof", [])],
    ):
        result.add(
            "manifest.json",
            f"consistency proof from the covered tree ({size}) to the checkpoint does not hold",
        )
    for cp in led.get("stored_checkpoints", []):
        if not ledger.verify_consistency(
            cp["tree_size"],
            int(checkpoint.get("tree_size", 0)),
            bytes.fromhex(cp["merkle_root"]),
            bytes.fromhex(checkpoint.get("merkle_root", "")),
            [bytes.fromhex(p) for p in cp["proof"]],
        ):
            result.add(
                "manifest.json",
                f"stored checkpoint at {cp['tree_size']} is not a prefix of the signed checkpoint",
            )
    result.checked["checkpoints"] = 1 + len(led.get("stored_checkpoints", []))


def _span_id_of(doc: Any) -> str | None:
    try:
        return str(doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"])
    except (KeyError, IndexError, TypeError):
        return None


def _covers_prefix(manifest: dict[str, Any]) -> bool:
    covered = manifest.get("ledger", {}).get("covered", {})
    return bool(
        covered.get("contiguous")
        and covered.get("first_seq") == 1
        and manifest.get("counts", {}).get("spans") == covered.get("tree_size")
    )


class _PrefixTree:
    """When the bundle holds every leaf of the covered tree (seq 1..n), the whole tree can be rebuilt
    from the exported digests once (2n hashes) instead of hashing each audit path (n log n).

    Sound by construction: a proof is accepted on this path only if its digest is the one the tree was
    built from and its path equals that tree's path, and the tree's root was compared with the signed
    covered root. Anything else falls back to the per-proof RFC 9162 check, which names the problem.
    """

    def __init__(self, digests: list[str], levels: list[list[str]]) -> None:
        self.digests = digests
        self.upper = levels[:-1]  # every level that has siblings (all but the root)

    @classmethod
    def build(cls, bundle: _Bundle, manifest: dict[str, Any], result: VerifyResult) -> _PrefixTree | None:
        marker = b'"digest":"'
        digests: list[str] = []
        for raw in bundle.lines("proofs.jsonl"):
            at = raw.find(marker)
            if at < 0:
                return None
            digests.append(raw[at + 10 : at + 74].decode("ascii", "replace"))
        try:
            levels = ledger.merkle_levels([bytes.fromhex(d) for d in digests])
        except ValueError:
            return None
        if ledger.levels_root(levels).hex() != manifest["ledger"]["covered"]["merkle_root"]:
            result.add(
                "manifest.json", "the covered Merkle root does not recompute from the exported digests"
            )
            return None
        return cls(digests, [[node.hex() for node in level] for level in levels])

    def holds(self, index: int, digest: str, proof: list[str]) -> bool:
        if index >= len(self.digests) or self.digests[index] != digest:
            return False
        expected = [
            level[(index >> h) ^ 1] for h, level in enumerate(self.upper) if (index >> h) ^ 1 < len(level)
        ]
        return proof == expected


def _zip_longest(a: Iterator[bytes], b: Iterator[bytes]) -> Iterator[tuple[bytes | None, bytes | None]]:
    from itertools import zip_longest

    return zip_longest(a, b)


def _name_order_problems(expected: list[str], found: list[str], result: VerifyResult) -> None:
    """Say which lines were deleted, inserted or moved, by diffing span ids against proofs.jsonl."""
    if expected == found:
        return
    matcher = difflib.SequenceMatcher(None, expected, found, autojunk=False)
    for op, e1, e2, f1, f2 in matcher.get_opcodes():
        if op == "equal":
            continue
        gone = [s for s in expected[e1:e2] if s not in found[f1:f2]]
        new = [s for s in found[f1:f2] if s not in expected[e1:e2]]
        moved = set(expected[e1:e2]) & set(found[f1:f2])
        for s in moved:
            result.add(
                "spans.jsonl",
                f"line out of order (expected at line {e1 + 1 + expected[e1:e2].index(s)}; lines swapped "
                f"or moved)",
                f1 + 1 + found[f1:f2].index(s),
                s,
            )
        for s in gone:
            if s in found:
                result.add(
                    "spans.jsonl",
                    f"line moved away from line {e1 + 1 + expected[e1:e2].index(s)} (lines swapped or moved)",
                    found.index(s) + 1,
                    s,
                )
            else:
                result.add("spans.jsonl", "span missing (deleted line)", e1 + 1 + expected[e1:e2].index(s), s)
        for s in new:
            if s in expected:
                result.add(
                    "spans.jsonl",
                    "line out of order (lines swapped or moved)",
                    f1 + 1 + found[f1:f2].index(s),
                    s,
                )
            else:
                result.add(
                    "spans.jsonl",
                    "span not in proofs.jsonl (inserted line)",
                    f1 + 1 + found[f1:f2].index(s),
                    s,
                )


_BATCH = 2_000
ProblemTuple = tuple[str, str, int, str]


def _check_plain(line_no: int, doc: Any, digest_hex: str, span_id: str, trace_id: str) -> list[ProblemTuple]:
    """An unredacted span line against its proofs record: ids, and the ledger digest of its protobuf."""
    if isinstance(doc, Exception):
        return [("spans.jsonl", f"not JSON: {doc}", line_no, span_id)]
    out: list[ProblemTuple] = []
    try:
        span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        if span.get("spanId") != span_id:
            out.append(
                (
                    "spans.jsonl",
                    f"span id {span.get('spanId')} is not {span_id} from proofs.jsonl",
                    line_no,
                    span_id,
                )
            )
        if span.get("traceId") != trace_id:
            out.append(
                (
                    "spans.jsonl",
                    f"trace id {span.get('traceId')} is not {trace_id} from proofs.jsonl",
                    line_no,
                    span_id,
                )
            )
    except (KeyError, IndexError, TypeError, AttributeError):
        pass  # canonical_from_json below says what is wrong with the shape
    try:
        if ledger.digest(otlp_json.canonical_from_json(doc)).hex() != digest_hex:
            out.append(
                (
                    "spans.jsonl",
                    "span differs from what was ingested (its SHA-256 is not the ledger digest)",
                    line_no,
                    span_id,
                )
            )
    except otlp_json.OtlpJsonError as exc:
        out.append(("spans.jsonl", str(exc), line_no, span_id))
    return out


def _check_batch(batch: list[tuple[int, bytes, str, str, str]]) -> list[ProblemTuple]:
    """Worker-process side of _Workers: parse, re-encode and hash a batch of unredacted lines."""
    out: list[ProblemTuple] = []
    for line_no, raw, digest_hex, span_id, trace_id in batch:
        try:
            doc: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            doc = exc
        out.extend(_check_plain(line_no, doc, digest_hex, span_id, trace_id))
    return out


def _quick_span_id(raw: bytes) -> str | None:
    """The span's own id without parsing the line: the first `"spanId":"` key (a quote inside a JSON
    string is escaped, so string content cannot match). The worker re-checks it on the parsed line."""
    at = raw.find(b'"spanId":"')
    return raw[at + 10 : at + 26].decode("ascii", "replace") if at >= 0 else None


class _Workers:
    """A process pool with a bounded number of batches in flight (memory stays bounded)."""

    def __init__(self, jobs: int, result: VerifyResult) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.result = result
        self.limit = 2 * jobs
        self.pending: deque[Any] = deque()
        self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"))

    def submit(self, batch: list[tuple[int, bytes, str, str, str]]) -> None:
        self.pending.append(self.pool.submit(_check_batch, batch))
        while len(self.pending) > self.limit:
            self._collect()

    def _collect(self) -> None:
        for problem in self.pending.popleft().result():
            self.result.add(*problem)

    def finish(self) -> None:
        try:
            while self.pending:
                self._collect()
        finally:
            self.pool.shutdown()
