"""Spans and proofs: each line of spans.jsonl against its ledger digest, chain link and audit path,
the covered tree against the signed checkpoint, and the order of the lines.
"""

from __future__ import annotations

import difflib
import hashlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import orjson

import workbench.export.otlp_json as otlp_json
from workbench.errors import WorkbenchError
from workbench.export.redact import apply_originals, salted_hash
from workbench.export.verify_base import Framing, VerifyResult, _Bundle, _get, _set, records
from workbench.export.verify_nodes import check_lake_roots, check_node_chains, is_lake_bundle, tree_of
from workbench.export.verify_redactions import _check_masks
from workbench.export.verify_workers import _BATCH, _check_plain, _quick_span_id, _Workers
from workbench.store import ledger


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
        index, tree_size, root, node = tree_of(manifest, entry, "spans", (size, covered_root))
        if fast is not None and fast.holds(index, entry["digest"], entry["proof"]):
            return
        proof = [bytes.fromhex(p) for p in entry["proof"]]
        if not ledger.verify_inclusion(index, tree_size, digest, proof, root):
            result.add(
                "proofs.jsonl",
                f"{node}seq {entry['seq']}: inclusion proof does not lead to the "
                + ("node's signed tree head" if node else "covered root"),
                line_no,
                span_id,
            )

    fast = _PrefixTree.build(bundle, manifest, result) if _covers_prefix(manifest) else None
    sealed = has_sealed_bytes(bundle, manifest)
    pool = _Workers(jobs, result) if jobs > 1 and not sealed else None
    batch: list[tuple[int, bytes, str, str, str]] = []
    spans_seen = result.streamed.setdefault("spans.jsonl", {})
    proofs_seen = result.streamed.setdefault("proofs.jsonl", {})
    pb_records = _framed(bundle, result.streamed.setdefault("spans.pb", {}), result) if sealed else iter(())
    n_records = 0
    for line_no, (raw, praw, rec) in enumerate(
        _zip_longest(
            bundle.lines("spans.jsonl", spans_seen), bundle.lines("proofs.jsonl", proofs_seen), pb_records
        ),
        1,
    ):
        n_records += rec is not None
        entry = None
        if praw is not None:
            try:
                entry = orjson.loads(praw)
                key = entry["span_id"]
                entry_ids.append(key)
                if "node" in entry:
                    result.line_nodes[line_no] = str(entry["node"])
                check_entry(line_no, entry)
                entries.append(
                    {
                        "seq": entry["seq"],
                        "digest": entry["digest"],
                        "chain_prev": entry["chain_prev"],
                        "chain": entry["chain"],
                        "node": entry.get("node"),
                        "index": entry.get("index"),
                        "line_no": line_no,
                    }
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                result.add("proofs.jsonl", f"not a proof record: {exc}", line_no)
                entry = None
        if sealed and entry is not None and raw is not None:
            if _sealed_record(line_no, rec, entry, ("spans.jsonl", line_no) in redactions, result):
                # The record hashes to the ledger digest; that the JSON line says the same as these
                # bytes is checked in the derivation pass (verify_steps), which decodes every span.
                quick = _quick_span_id(raw)
                if quick is not None and quick == entry["span_id"]:
                    line_ids.append(quick)
                    continue
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
    if sealed and n_records != len(line_ids):
        result.add("spans.pb", f"{n_records} records for {len(line_ids)} lines of spans.jsonl")
    if counts.get("spans") != len(line_ids):
        result.add("spans.jsonl", f"{len(line_ids)} lines, the manifest says {counts.get('spans')} spans")
    result.checked["spans"] = len(line_ids)

    # Chain across the range and the covered root, when the range allows it.
    seqs = [e["seq"] for e in entries]
    if any(b <= a for a, b in zip(seqs, seqs[1:], strict=False)):
        result.add("proofs.jsonl", "sequence numbers are not increasing (records reordered)")
    lake = is_lake_bundle(manifest)
    if covered.get("contiguous") and entries and not lake:
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
    if lake:
        check_node_chains(entries, led, result)
        check_lake_roots(led, result)
        return
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


def has_sealed_bytes(bundle: _Bundle, manifest: dict[str, Any]) -> bool:
    """Whether the bundle ships each span's canonical bytes (spans.pb, bundle schema 2): then the digest
    check hashes them instead of re-encoding every JSON line. Listed in the signed manifest, so a forger
    cannot drop it to force the other path without the signature failing."""
    return "spans.pb" in manifest.get("files", {}) and "spans.pb" in bundle.names()


def _framed(bundle: _Bundle, seen: dict[str, Any], result: VerifyResult) -> Iterator[bytes]:
    try:
        yield from records(bundle.chunks("spans.pb"), seen)
    except Framing as exc:
        result.add("spans.pb", f"not length-delimited records: {exc}")


def _sealed_record(
    line_no: int, rec: bytes | None, entry: dict[str, Any], masked: bool, result: VerifyResult
) -> bool:
    """Record `line_no` of spans.pb against the ledger digest of proofs.jsonl's same line. True when it
    holds and the line is not redacted (so the JSON line need not be re-encoded here)."""
    span_id = entry["span_id"]
    if rec is None:
        result.add("spans.pb", "no record for this line of spans.jsonl (record deleted)", line_no, span_id)
        return False
    if entry.get("redacted") or masked:
        if rec:
            result.add(
                "spans.pb",
                "a redacted span's record must be empty (its bytes would reveal what was masked)",
                line_no,
                span_id,
            )
        return False
    if hashlib.sha256(rec).hexdigest() != entry["digest"]:
        result.add(
            "spans.pb",
            "record does not hash to the ledger digest in proofs.jsonl (sealed bytes altered)",
            line_no,
            span_id,
        )
        return False
    return True


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
        # The expected path of the last index asked for, one slot per level (None: no sibling there).
        # Consecutive indices share every level above their lowest differing bit, so the next path is
        # this one with about two slots changed, not a fresh list of log n look-ups.
        self._last = -2
        self._path: list[str | None] = []

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
        path = self._path
        if index == self._last + 1:
            levels = range((index ^ self._last).bit_length())
        else:
            path[:] = [None] * len(self.upper)
            levels = range(len(self.upper))
        for h in levels:
            level = self.upper[h]
            sibling = (index >> h) ^ 1
            path[h] = level[sibling] if sibling < len(level) else None
        self._last = index
        if len(proof) == len(path) and proof == path:
            return True
        return proof == [p for p in path if p is not None]


def _zip_longest(
    a: Iterator[bytes], b: Iterator[bytes], c: Iterator[bytes]
) -> Iterator[tuple[bytes | None, bytes | None, bytes | None]]:
    from itertools import zip_longest

    return zip_longest(a, b, c)


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
