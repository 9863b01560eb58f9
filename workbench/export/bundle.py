"""Writing an audit bundle: a directory (or a .zip of one) an auditor can check without us.

Layout (every file listed in manifest.json with its SHA-256 and size; manifest.sig signs manifest.json):

    manifest.json        schema/tool version, system, selection, time range, counts, ledger facts, field map
    manifest.sig         Ed25519 signature (base64) over the exact bytes of manifest.json
    public_key.pem       the signer's public key (pin it: `workbench verify --pubkey`)
    spans.jsonl          one OTLP/JSON TracesData per line, one span each, in ingest order
    logs.pb, logs.jsonl  the GenAI log records joined to the exported steps, with their proofs
                         (bundle_logs.py)
    spans.pb             record i: the canonical protobuf bytes of line i's span (the bytes the ledger
                         digest is over), length-delimited (varint length, then the bytes: protobuf's
                         writeDelimitedTo); an empty record for a redacted span (its original bytes would
                         reveal what was masked)
    proofs.jsonl         line i: seq, ids, ledger digest, chain link, RFC 6962 audit path of span i
    entries.jsonl        per exported finding, annotation, probe result: the ledger entry sealing it
                         (kind, ref, body of field digests) and its audit path in the entries tree
    steps.parquet        the normalized steps of those spans
    findings.jsonl, annotations.jsonl, probe_runs.jsonl, probe_results.jsonl
    redactions.jsonl     one record per masked value (see redact.py)
    report.html          timeline, findings, probe evidence, annotations, field map, how to verify

Ledger facts: the covered range is seq lo..hi of the exported spans. Audit paths lead to the RFC 6962
root of the tree of size hi (the covered root); a consistency proof shows that tree is a prefix of a
fresh checkpoint of the whole ledger (size N, computed at export, signed in the manifest), and the
ledger's stored checkpoints get consistency proofs to it as well. From a lake (one ledger per node) there
is no single tree: every proof line names its `node` and node-local `index`, and manifest.ledger.nodes[]
signs each node's heads instead of covered/checkpoint (bundle_nodes.py).
"""

from __future__ import annotations

import hashlib
import os
import platform
import secrets
import shutil
import socket
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

import workbench.export.otlp_json as otlp_json
import workbench.export.signing as signing
from workbench.errors import WorkbenchError
from workbench.export.bundle_files import (
    _dumps,
    _HashingWriter,
    _tool_version,
    _write_reveal,
    _write_steps,
    _zip_dir,
    file_entry,
)
from workbench.export.bundle_logs import write_logs
from workbench.export.bundle_nodes import LakeTrees, lake_ledger
from workbench.export.bundle_options import (
    CHUNK,
    SCHEMA,
    SCHEMA_VERSION,
    SEALED_TABLES,
    ExportOptions,
    ExportResult,
    LedgerBroken,
    entry_ref,
)
from workbench.export.fieldmap import FIELD_MAP
from workbench.export.redact import Redactor
from workbench.store import entries, ledger, treehead
from workbench.store import export_queries as q
from workbench.store.connection import Store
from workbench.store.lake_verify import verify_lake
from workbench.store.verify import verify_ledger


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def _write_entries(
    store: Store, path: Path, tables: dict[str, list[dict[str, Any]]], trees: LakeTrees | None
) -> dict[str, Any]:
    """entries.jsonl: for each exported finding, annotation and probe result, the ledger entry that seals
    it (kind, ref, body) and its RFC 6962 audit path in the entries tree, whose size and root are
    signed in the manifest (returned, with the file's hash under "file")."""
    digests = entries.entry_digests(store.cursor()) if trees is None else []
    levels = ledger.merkle_levels(digests) if digests else []
    w = _HashingWriter(path)
    for name, kind in SEALED_TABLES:
        refs = [entry_ref(kind, row) for row in tables[name]]
        sealed = q.sealing_entries(store, kind, refs)
        for line_no, ref in enumerate(refs, 1):
            if ref not in sealed:
                raise LedgerBroken(
                    f"{name}: {kind} {ref} is sealed by no ledger entry. Run `workbench ledger verify`; "
                    "nothing was exported"
                )
            seq, body = sealed[ref]
            w.line(
                orjson.dumps(
                    {
                        "file": name,
                        "line": line_no,
                        "seq": seq,
                        "kind": kind,
                        "ref": ref,
                        "body": body,
                        **(
                            trees.entry(seq)
                            if trees is not None
                            else {
                                "digest": digests[seq - 1].hex(),
                                "proof": [p.hex() for p in ledger.inclusion_path(levels, seq - 1)],
                            }
                        ),
                    }
                )
            )
    return {
        "_digests": digests,
        "file": w.close(),
        "tree": "RFC 6962 over entry digests; digest = SHA-256(kind 0x00 ref 0x00 body); body = {field: "
        "SHA-256(the field's value as text)} (workbench/store/entries.py)",
        "tree_size": len(digests),
        "merkle_root": (ledger.levels_root(levels) if digests else ledger.merkle_root([])).hex(),
    }


def _external_checkpoint(
    path: Path, public: Any, levels_n: list[list[bytes]], entry_digests: list[bytes]
) -> dict[str, Any]:
    """The latest signed tree head in a checkpoint log outside the database, and RFC 6962 consistency
    proofs from it to the bundle's span tree (the signed checkpoint, size N) and entries tree. Refuses
    (LedgerBroken) when today's ledger does not extend it: the tail was cut or rewritten since."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkbenchError(f"checkpoint log {path}: cannot be read ({exc})") from exc
    heads = treehead.parse_log(text, public, str(path))
    head = max(heads, key=lambda h: (h.size, h.entries_size, h.time))
    note = _note_of(text, head)
    levels_m = ledger.merkle_levels(entry_digests) if entry_digests else []
    problems = treehead.extends(head, levels_n, levels_m)
    if problems:
        raise LedgerBroken(
            f"the ledger does not extend the latest signed tree head in {path}: {'; '.join(problems)}. "
            "Nothing was exported"
        )
    return {
        "source": path.name,
        "note": note,
        "spans_consistency": [p.hex() for p in ledger.consistency_proof(head.size, levels_n)]
        if 0 < head.size < len(levels_n[0] if levels_n else [])
        else [],
        "entries_consistency": [p.hex() for p in ledger.consistency_proof(head.entries_size, levels_m)]
        if 0 < head.entries_size < len(entry_digests)
        else [],
    }


def _note_of(text: str, head: treehead.TreeHead) -> str:
    """The signed note (text and signature lines) of `head` in a log of notes."""
    blocks = text.replace("\r\n", "\n").split("\n\n")
    body = head.text().rstrip("\n")
    for i, block in enumerate(blocks[:-1]):
        if block.strip("\n") == body:
            return f"{body}\n\n{blocks[i + 1].strip(chr(10))}\n"
    raise WorkbenchError("the checkpoint's note could not be found again in its log")


def export_bundle(store: Store, data_dir: Path, options: ExportOptions) -> ExportResult:
    """Write a signed bundle for the selected spans. Refuses (LedgerBroken) if the database fails its
    own ledger check: a bundle must never certify records that were altered after ingest."""
    from tqdm import tqdm

    if store.is_lake and options.checkpoint is not None:
        raise WorkbenchError(
            "--checkpoint is for an embedded store's checkpoint log; a lake's signed global root "
            "(lake_roots) goes into the bundle by itself"
        )
    trace_ids = list(options.trace_ids)
    selection = q.SpanSelection(tuple(trace_ids), options.since_ns, options.until_ns)
    seqs = q.selected_seqs(store, selection)
    if not seqs:
        raise WorkbenchError("nothing to export: no span matches the selection")
    check = (
        verify_lake(
            store,
            options.row_check,
            derive=options.derive,
            normalizer_version=options.normalizer_version or "",
            derive_seqs=seqs,
        )[0]
        if store.is_lake
        else verify_ledger(
            store,
            options.row_check,
            derive=options.derive,
            normalizer_version=options.normalizer_version or "",
            derive_seqs=seqs,
        )
    )
    if not check.ok:
        problems = check.all_problems
        raise LedgerBroken(
            f"the database fails its integrity check ({len(problems)} problem(s)): "
            f"{'; '.join(problems[:5])}. Run `workbench ledger verify`; nothing was exported"
        )
    lo, hi = seqs[0], seqs[-1]
    contiguous = hi - lo + 1 == len(seqs)

    # The whole ledger: fresh checkpoint (size N) and the covered tree (size hi); in a lake, per node.
    trees = LakeTrees(store) if store.is_lake else None
    digests, chains = q.ledger_links(store) if trees is None else ([], [])
    n = len(digests)
    levels_n = ledger.merkle_levels(digests) if digests else []
    levels_hi = levels_n if hi == n else ledger.merkle_levels(digests[:hi])
    root_n = ledger.levels_root(levels_n) if digests else b""
    root_hi = ledger.levels_root(levels_hi) if digests else b""
    stored = q.stored_checkpoints(store) if trees is None else []
    stored_consistency = [
        {
            "tree_size": size,
            "merkle_root": root.hex(),
            "proof": [p.hex() for p in ledger.consistency_proof(size, levels_n)],
        }
        for size, root in stored[-50:]
        if 0 < size <= n
    ]

    bundle_id = secrets.token_hex(16)
    salt = secrets.token_bytes(32)
    redactor = Redactor(options.redact_kinds, salt)
    out = options.out
    as_zip = out.suffix.lower() == ".zip"
    if out.exists() and (as_zip or any(out.iterdir())):
        raise WorkbenchError(f"{out} already exists and is not an empty directory; choose another --out")
    # Written beside its destination and moved into place at the end: a failed export leaves no
    # half-written bundle that someone could take for a finished one.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.part-", dir=out.parent))
    files: dict[str, dict[str, Any]] = {}
    try:
        # spans.jsonl + proofs.jsonl, a chunk at a time (bounded memory)
        spans_w = _HashingWriter(staging / "spans.jsonl")
        pb_w = _HashingWriter(staging / "spans.pb")
        proofs_w = _HashingWriter(staging / "proofs.jsonl")
        t_min, t_max = None, None
        traces: set[str] = set()
        with tqdm(total=len(seqs), unit="span", desc="export", disable=not options.progress or None) as bar:
            done = 0
            for spans in q.iter_spans(store, seqs, CHUNK):
                for seq, trace_id, span_id, t0, t1, canonical in spans:
                    line_no = spans_w.lines + 1
                    doc = otlp_json.json_from_canonical(canonical)
                    before = len(redactor.records)
                    if redactor.enabled:
                        doc = redactor.walk(
                            doc,
                            {"file": "spans.jsonl", "line": line_no, "seq": seq, "span_id": span_id},
                            otlp=True,
                        )
                    line = orjson.dumps(doc)
                    spans_w.line(line)
                    i = seq - 1
                    redacted = len(redactor.records) > before
                    pb_w.record(b"" if redacted else canonical)
                    link = (
                        trees.span(seq)
                        if trees is not None
                        else {
                            "digest": digests[i].hex(),
                            "chain_prev": (chains[i - 1] if i else ledger.GENESIS).hex(),
                            "chain": chains[i].hex(),
                            "proof": [p.hex() for p in ledger.inclusion_path(levels_hi, i)],
                        }
                    )
                    proofs_w.line(
                        orjson.dumps(
                            {
                                "line": line_no,
                                "seq": seq,
                                "trace_id": trace_id,
                                "span_id": span_id,
                                **link,
                                "redacted": redacted,
                                # a redacted line cannot be checked against the ledger digest without the
                                # reveal file; this names it when its bytes change all the same
                                **({"line_sha256": hashlib.sha256(line).hexdigest()} if redacted else {}),
                            }
                        )
                    )
                    traces.add(trace_id)
                    t_min = t0 if t_min is None else min(t_min, t0)
                    t_max = t1 if t_max is None else max(t_max, t1)
                # a chunk's count of seqs, not of rows read: every selected seq is a stored span
                step = min(CHUNK, len(seqs) - done)
                done += step
                bar.update(step)
                if options.on_progress is not None:
                    options.on_progress(done, len(seqs))
        files["spans.jsonl"] = spans_w.close()
        files["proofs.jsonl"] = proofs_w.close()
        files["spans.pb"] = pb_w.close()

        log_files, log_facts = write_logs(store, staging, sorted(traces), levels_n, digests, redactor, trees)
        files.update(log_files)

        steps, step_totals, steps_written = _write_steps(
            store, staging / "steps.parquet", selection, redactor
        )
        files["steps.parquet"] = file_entry(staging / "steps.parquet")

        findings = q.selected_findings(store, selection)
        annotations = q.selected_annotations(store, selection)
        probe_runs = q.selected_probe_runs(store, selection)
        probe_results = q.selected_probe_results(store, selection)
        tables = {
            "findings.jsonl": findings,
            "annotations.jsonl": annotations,
            "probe_runs.jsonl": probe_runs,
            "probe_results.jsonl": probe_results,
        }
        for name, records in tables.items():
            w = _HashingWriter(staging / name)
            for record in records:
                if redactor.enabled:
                    where_ = {"file": name, "line": w.lines + 1}
                    if name == "probe_results.jsonl":
                        record = {
                            **record,
                            "summary": redactor.walk(record["summary"], where_, ["summary"]),
                            "data": redactor.probe_data(record["data"], where_, ["data"]),
                        }
                    else:
                        record = redactor.walk(record, where_)
                    records[w.lines] = record
                w.line(_dumps(record))
            files[name] = w.close()

        entries_facts = _write_entries(store, staging / "entries.jsonl", tables, trees)
        files["entries.jsonl"] = entries_facts.pop("file")
        entry_digests = entries_facts.pop("_digests")

        red_w = _HashingWriter(staging / "redactions.jsonl")
        for rec in redactor.records:
            red_w.line(_dumps(rec))
        files["redactions.jsonl"] = red_w.close()

        key = signing.load_or_create_key(data_dir)
        pub = key.public_key()
        external = (
            _external_checkpoint(options.checkpoint, key.public_key(), levels_n, entry_digests)
            if options.checkpoint is not None
            else None
        )
        (staging / "public_key.pem").write_bytes(signing.public_pem(pub))
        files["public_key.pem"] = file_entry(staging / "public_key.pem")

        redaction_counts = dict(Counter(r["kind"] for r in redactor.records))
        counts = {
            "spans": len(seqs),
            "traces": len(traces),
            "steps": steps_written,
            "findings": len(findings),
            "annotations": len(annotations),
            "probe_runs": len(probe_runs),
            "probe_results": len(probe_results),
            "redactions": len(redactor.records),
            "redacted_spans": len({r["seq"] for r in redactor.records if r["file"] == "spans.jsonl"}),
        }
        services = q.selected_deployments(store, selection)
        manifest: dict[str, Any] = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "bundle_id": bundle_id,
            "created_at": datetime.now(UTC).isoformat(),
            "tool": {"name": "agent-audit-workbench", "version": _tool_version()},
            "system": {
                "hostname": socket.gethostname(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "database": store.path.name,
            },
            "deployment": {
                "services": sorted({s for s, _ in services if s}),
                "environments": sorted({e for _, e in services if e}),
            },
            "selection": {
                "trace_ids": trace_ids,
                "since": _iso(options.since_ns) if options.since_ns is not None else None,
                "until": _iso(options.until_ns) if options.until_ns is not None else None,
            },
            "time_range": {
                "start_ns": t_min,
                "end_ns": t_max,
                "start": _iso(t_min or 0),
                "end": _iso(t_max or 0),
            },
            "counts": counts,
            "normalizer": {"version": options.normalizer_version},
            "logs": log_facts,
            "ledger": lake_ledger(trees)
            if trees is not None
            else {
                "hash": "sha256",
                "tree": "RFC 6962 (leaf H(0x00||digest), node H(0x01||l||r)); digest = SHA-256(canonical "
                "span)",
                "covered": {
                    "first_seq": lo,
                    "last_seq": hi,
                    "contiguous": contiguous,
                    "tree_size": hi,
                    "merkle_root": root_hi.hex(),
                    "chain_head": chains[hi - 1].hex(),
                },
                "chain_before": (chains[lo - 2] if lo > 1 else ledger.GENESIS).hex(),
                "checkpoint": {
                    "tree_size": n,
                    "merkle_root": root_n.hex(),
                    "chain_head": chains[n - 1].hex(),
                    "created_at": datetime.now(UTC).isoformat(),
                },
                "consistency": {
                    "from_size": hi,
                    "to_size": n,
                    "proof": [p.hex() for p in ledger.consistency_proof(hi, levels_n)] if hi < n else [],
                },
                "stored_checkpoints": stored_consistency,
                "entries": entries_facts,
                "external_checkpoint": external,
            },
            "redaction": {
                "enabled": redactor.enabled,
                "kinds": list(redactor.kinds),
                "mask": "[REDACTED:<kind>#<id>]",
                "hash": "HMAC-SHA256(salt, original UTF-8); the per-bundle salt is kept by the exporter, "
                "not in the bundle",
                "counts": redaction_counts,
            },
            "signing": {
                "algorithm": "Ed25519",
                "key_id": signing.key_id(pub),
                "public_key": signing.raw_public(pub).hex(),
                "signature_file": "manifest.sig",
            },
            "field_map": FIELD_MAP,
        }
        from workbench.export.report import render_report

        report = render_report(
            manifest, steps, step_totals, findings, probe_runs, probe_results, annotations, redaction_counts
        )
        (staging / "report.html").write_text(report, encoding="utf-8")
        files["report.html"] = file_entry(staging / "report.html")
        manifest["files"] = {name: files[name] for name in sorted(files)}
        manifest_bytes = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        (staging / "manifest.json").write_bytes(manifest_bytes)
        import base64

        (staging / "manifest.sig").write_bytes(base64.b64encode(key.sign(manifest_bytes)) + b"\n")
        if as_zip:
            _zip_dir(staging, out)
        else:
            if out.exists():
                out.rmdir()  # checked empty above
            os.replace(staging, out)
            os.chmod(out, 0o755)  # mkdtemp made it 0700
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    reveal_path = None
    if redactor.records:
        reveal_path = _write_reveal(data_dir, bundle_id, salt, redactor.originals)
    return ExportResult(out, bundle_id, counts, reveal_path, signing.key_id(pub), redaction_counts)


__all__ = [
    "CHUNK",
    "SCHEMA",
    "SCHEMA_VERSION",
    "ExportOptions",
    "ExportResult",
    "LedgerBroken",
    "export_bundle",
    "file_entry",
]
