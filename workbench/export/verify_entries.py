"""Derived rows against their ledger entries: each exported finding, annotation and probe result must
be the row its ledger entry sealed, and each entry must be in the entries tree the manifest signs.

Why: findings, annotations and probe results are derived rows, outside the span ledger. The database
seals each in the second chain (workbench/store/entries.py); the bundle ships, per exported row, the
entry (kind, ref, body of field digests) and its RFC 6962 audit path to the entries root in the signed
manifest. The verifier recomputes each field's digest from the exported row with the store's own pure
function (`entries.row_differences`), so a finding edited in findings.jsonl is named with its field,
one deleted is named by the entry that sealed it, and one inserted has no entry. A redacted field that
does not match its digest (without the owner's reveal file, or a probe result's masked tokens, which the
originals cannot undo) is left out of the comparison and counted in a note; every other field of the
row is compared.
"""

from __future__ import annotations

from typing import Any

import orjson

from workbench.export.bundle_options import SEALED_TABLES, entry_ref
from workbench.export.verify_base import VerifyResult, _Bundle
from workbench.export.verify_nodes import tree_of
from workbench.export.verify_steps import Records, _restore
from workbench.store import entries, ledger


def verify_entries(
    bundle: _Bundle,
    manifest: dict[str, Any],
    names: set[str],
    result: VerifyResult,
    redactions: Records,
    originals: dict[int, str],
) -> None:
    """Every entry's digest and audit path, then every exported derived row against its entry."""
    facts = manifest.get("ledger", {}).get("entries")
    if facts is None or "entries.jsonl" not in manifest.get("files", {}):
        result.notes.append("derived rows not checked against ledger entries (a bundle older than schema 2)")
        return
    if "entries.jsonl" not in names:
        return  # named as a deleted file
    size = int(facts.get("tree_size", 0))
    root = bytes.fromhex(facts.get("merkle_root", ""))
    sealed: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for line_no, raw in enumerate(bundle.lines("entries.jsonl"), 1):
        try:
            rec = orjson.loads(raw)
            kind, ref, body, seq = str(rec["kind"]), str(rec["ref"]), str(rec["body"]), int(rec["seq"])
            proof = [bytes.fromhex(p) for p in rec["proof"]]
            index, tree_size, tree_root, node = tree_of(manifest, rec, "entries", (size, root))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            result.add("entries.jsonl", f"not an entry record: {exc}", line_no)
            continue
        digest = entries.entry_digest(kind, ref, body)
        what = f"{node}ledger entry {seq} ({kind} {ref})"
        if digest.hex() != rec.get("digest"):
            result.add("entries.jsonl", f"{what}: its kind, ref and body do not hash to its digest", line_no)
        if not ledger.verify_inclusion(index, tree_size, digest, proof, tree_root):
            result.add(
                "entries.jsonl",
                f"{what}: inclusion proof does not lead to the signed entries root (entry or proof altered)",
                line_no,
            )
        sealed[(str(rec.get("file")), ref)] = (line_no, rec)
    checked = 0
    masked_fields = 0
    for name, kind in SEALED_TABLES:
        if name not in names:
            continue
        for line_no, raw in enumerate(bundle.lines(name), 1):
            try:
                row = orjson.loads(raw)
                ref = entry_ref(kind, row)
            except (orjson.JSONDecodeError, AttributeError) as exc:
                result.add(name, f"not a record: {exc}", line_no)
                continue
            label = f"{kind} {ref}"
            hit = sealed.pop((name, ref), None)
            if hit is None:
                result.add(
                    name, f"{label} is sealed by no ledger entry in entries.jsonl (inserted row)", line_no
                )
                continue
            _, rec = hit
            recs = redactions.get((name, line_no), [])
            masked = {str(r["path"][0]) for r in recs if r.get("path")}
            if recs and originals:
                row = _restore(row, recs, originals)
            try:
                differ = entries.row_differences(kind, row, rec["body"])
                # Masks without the reveal file, and a probe result's token list (tokens inside a masked
                # range are replaced whole, which the originals cannot undo), cannot match their digest.
                skipped = [f for f in differ if f in masked]
                masked_fields += len(skipped)
                differ = [f for f in differ if f not in masked]
            except (ValueError, TypeError, KeyError) as exc:
                result.add(
                    name, f"{label}: cannot be compared with ledger entry {rec['seq']}: {exc}", line_no
                )
                continue
            checked += 1
            if differ:
                result.add(
                    name,
                    f"{label}: field(s) {', '.join(differ)} differ from what ledger entry {rec['seq']} "
                    "sealed (row edited)",
                    line_no,
                )
    for (name, ref), (line_no, rec) in sorted(sealed.items()):
        result.add(
            name,
            f"{rec.get('kind')} {ref}, sealed by ledger entry {rec.get('seq')} (entries.jsonl line "
            f"{line_no}), is not in the file (deleted row)",
        )
    if masked_fields:
        result.notes.append(
            f"{masked_fields} redacted field(s) of derived rows not compared with their entries "
            "(--reveal compares them)"
        )
    result.checked["entries"] = checked


def verify_external_checkpoint(manifest: dict[str, Any], result: VerifyResult, key: Any) -> None:
    """The signed tree head the bundle was proven against (from a checkpoint log outside the database):
    its signature by the signer's key, and RFC 6962 consistency proofs that the bundle's span tree and
    entries tree extend it. A bundle whose trees do not extend it was cut or rewritten after that head."""
    external = manifest.get("ledger", {}).get("external_checkpoint")
    if not external:
        result.notes.append("no external checkpoint in the bundle (export with --checkpoint or a log)")
        return
    if key is None:
        return  # the signature check already named the missing key
    from workbench.errors import WorkbenchError
    from workbench.store import treehead

    try:
        (head,) = treehead.parse_log(str(external["note"]), key, "external checkpoint")
    except (WorkbenchError, ValueError) as exc:
        result.add("manifest.json", f"external checkpoint: {exc}")
        return
    led = manifest.get("ledger", {})
    stamp = head.time.strftime("%Y-%m-%dT%H:%M:%SZ")
    for what, size, root, tree, proof in (
        ("span tree", head.size, head.root, led.get("checkpoint", {}), external.get("spans_consistency")),
        (
            "entries tree",
            head.entries_size,
            head.entries_root,
            led.get("entries", {}),
            external.get("entries_consistency"),
        ),
    ):
        n = int(tree.get("tree_size", 0))
        if not ledger.verify_consistency(
            size, n, root, bytes.fromhex(tree.get("merkle_root", "")), [bytes.fromhex(p) for p in proof or []]
        ):
            result.add(
                "manifest.json",
                f"the bundle's {what} (size {n}) does not extend the external checkpoint signed at {stamp} "
                f"(size {size}): " + ("tail truncated" if size > n else "entries changed or proof altered"),
            )
    result.checked["external_checkpoint"] = 1
