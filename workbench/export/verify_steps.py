"""Steps are re-derived, not trusted: each row of steps.parquet must be what the collectors' normalizer
makes of the span on the same seq, and each finding's evidence must be the step's text at its offsets.

Why: steps are derived rows. A database whose steps table was edited (a `DROP TABLE` tool call turned
into `SELECT 1`) would otherwise export a bundle whose spans and steps disagree while every hash holds.

The normalizer lives in `collectors/` (floor 2, beside this package), so it is passed in by the caller
(`StepDeriver`: canonical span bytes and the attribute-length limit -> Step); the manifest records the
normalizer version the exporter ran with, and a verifier with another version says so instead of
comparing steps the two versions map differently.

Redaction (the span line and the step row are masked separately, with their own records and ids):
- with the owner's reveal file, the originals go back into both the span and the step row, the step is
  re-derived from the original span (which the span check proves against the ledger digest) and the
  comparison is exact;
- without it, the step is re-derived from the redacted span and both sides are compared with every mask
  written as `[REDACTED:<kind>]` (ids dropped). Text outside the masks must agree exactly; where the
  normalizer reshapes a masked value (messages JSON into text) so that detection found a different
  range, this reports a difference that `--reveal` settles. Masking cannot hide an edit: an edited step
  whose new text is masked has a mask where the span has words, or the other way round.

Truncation: values longer than the ingest limit were cut with a marker `…[truncated: N chars, kept L]`
before normalizing. The bundle does not carry the limit, so a step is derived with no limit, and again
with the smallest L its own markers name when that does not match.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from itertools import zip_longest
from typing import Any

import orjson

from workbench.export import otlp_json
from workbench.export.redact import apply_originals
from workbench.export.verify_base import Framing, VerifyResult, _Bundle, _get, _set, records
from workbench.export.verify_workers import _quick_span_id
from workbench.model import Step
from workbench.store.batch import STEP_COLUMNS

StepDeriver = Callable[[bytes, int], Step]
Records = dict[tuple[str, int], list[dict[str, Any]]]

MAX_EXCERPT = 500  # workbench.policies.rules.MAX_EXCERPT (floor 2 sideways: not imported)
_MASK = re.compile(r"\[REDACTED:([a-z_]+)#\d+\]")
_TRUNCATED = re.compile(r"…\[truncated: \d+ chars, kept (\d+)\]")
_BATCH = 500
# (seq, field, bundle value, derived value); field "" when the span itself cannot be read
Difference = tuple[int, str, Any, Any]
# (seq, line, JSON line, spans.pb record or None, step row or None, span redactions, step redactions)
Task = tuple[int, int, bytes, bytes | None, dict[str, Any] | None, list[Any], list[Any]]
JSON_DIFFERS = "=spans.jsonl"  # a Difference's field when the JSON line disagrees with its sealed bytes


def verify_steps(
    bundle: _Bundle,
    manifest: dict[str, Any],
    names: set[str],
    result: VerifyResult,
    redactions: Records,
    originals: dict[int, str],
    derive: StepDeriver | None,
    normalizer_version: str | None,
    jobs: int = 1,
    sealed: bool = False,
    unjoinable: set[str] | None = None,
) -> None:
    """Re-derive every step from its span and check every finding's evidence (module docstring); with
    `sealed` (the bundle ships spans.pb), also prove each unredacted JSON line says what its sealed
    protobuf record says, in the same pass, since it decodes every span anyway. A step filled from events in
    a trace of `unjoinable` (the exporter withheld one of its log records, see bundle_logs.py) is not
    compared: a note counts them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    steps = (
        derive is not None
        and normalizer_version is not None
        and _same_normalizer(manifest, normalizer_version, result)
    )
    if not steps and not sealed:
        return
    rows: list[dict[str, Any]] = []
    if steps and "steps.parquet" in names:
        rows = pq.read_table(pa.BufferReader(bundle.read("steps.parquet"))).to_pylist()
    steps = steps and "steps.parquet" in names
    row_of: dict[Any, int] = {}  # seq as the row says it (a forged row may say anything)
    for i, row in enumerate(rows):
        if row.get("seq") in row_of:
            result.add("steps.parquet", f"seq {row.get('seq')} has two rows (rows {row_of[row['seq']]}, {i})")
        row_of[row.get("seq")] = i
    position = _replay_positions(rows)

    tasks: list[Task] = []
    unjoined = 0
    spans_seen: dict[int, tuple[int, str | None]] = {}  # seq -> (line, span id from proofs.jsonl)
    pb = records(bundle.chunks("spans.pb")) if sealed else iter(())
    for line_no, (raw, praw, rec) in enumerate(
        zip_longest(bundle.lines("spans.jsonl"), bundle.lines("proofs.jsonl"), _quiet(pb)), 1
    ):
        if raw is None or praw is None:
            break  # the span check names lines without proofs and the other way round
        try:
            proof = orjson.loads(praw)
            seq = int(proof["seq"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # the span check names unreadable proofs
        spans_seen[seq] = (line_no, proof.get("span_id"))
        at = row_of.get(seq)
        if steps and at is None:
            result.add("steps.parquet", f"no step row for the span at seq {seq} (deleted row)", line_no)
        step_row = rows[at] if at is not None else None
        if (
            unjoinable
            and step_row is not None
            and step_row.get("event_fields")
            and (str(step_row.get("trace_id")) in unjoinable)
        ):
            unjoined += 1
            step_row = None
        span_recs = redactions.get(("spans.jsonl", line_no), [])
        step_recs = redactions.get(("steps.parquet", at), []) if at is not None else []
        if rec and _quick_span_id(raw) != proof.get("span_id"):
            rec = None  # a line out of place: the span check pairs it by id and names the order
        tasks.append((seq, line_no, raw, rec or None, step_row, span_recs, step_recs))
    for seq, i in row_of.items():
        if seq not in spans_seen:
            result.add(
                "steps.parquet", f"row {i}: step at seq {seq} has no span in spans.jsonl (inserted row)"
            )

    differences = _run(tasks, originals, derive if steps else None, jobs)
    for seq, col, said, derived in differences:
        if col == JSON_DIFFERS:
            line_no, span_id = spans_seen[seq]
            result.add(
                "spans.jsonl",
                "differs from what was ingested: it does not say what its record in spans.pb (the bytes "
                f"that hash to the ledger digest) says ({said}); line edited",
                line_no,
                span_id,
            )
            continue
        row = rows[row_of[seq]]
        where = f"trace {row.get('trace_id')} step {position.get(seq, '?')} (seq {seq})"
        if not col:
            result.add(
                "steps.parquet", f"{where}: its span cannot be re-derived: {said}", None, row.get("span_id")
            )
            continue
        result.add(
            "steps.parquet",
            f"{where}: field {col} is {_quote(said)}, but the span re-derives to {_quote(derived)} "
            "(step edited, or not derived from this span)",
            None,
            row.get("span_id"),
        )
    if sealed:
        result.checked["span_lines"] = sum(1 for t in tasks if t[3] is not None)
    if not steps:
        return
    if unjoined:
        result.notes.append(
            f"{unjoined} step(s) filled from GenAI log records were not re-derived: the exporter withheld "
            "a record of their trace (redaction was on)"
        )
    result.checked["steps"] = sum(1 for t in tasks if t[4] is not None)
    if "findings.jsonl" in names:
        _verify_evidence(bundle, rows, row_of, position, result, redactions, originals)


def _same_normalizer(manifest: dict[str, Any], normalizer_version: str, result: VerifyResult) -> bool:
    exported = (manifest.get("normalizer") or {}).get("version")
    if exported is None:
        result.add("manifest.json", "names no normalizer version: steps.parquet cannot be re-derived")
        return False
    if str(exported) != str(normalizer_version):
        result.add(
            "steps.parquet",
            f"exported with normalizer version {exported}, this verifier has {normalizer_version}: "
            "its steps cannot be re-derived here (verify with the workbench version that exported it)",
        )
        return False
    return True


def _quiet(pb: Iterator[bytes]) -> Iterator[bytes]:
    """spans.pb's records; a framing error was named by the span check, so this pass just stops."""
    try:
        yield from pb
    except Framing:
        return


def _run(
    tasks: list[Task], originals: dict[int, str], derive: StepDeriver | None, jobs: int
) -> list[Difference]:
    if jobs <= 1 or len(tasks) < 2 * _BATCH:
        return _check_batch(tasks, originals, derive)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Forked workers inherit `originals`; batches carry only their own lines.
    out: list[Difference] = []
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [
            pool.submit(_check_batch, tasks[k : k + _BATCH], originals, derive)
            for k in range(0, len(tasks), _BATCH)
        ]
        for f in futures:
            out.extend(f.result())
    return out


def _check_batch(
    tasks: list[Task], originals: dict[int, str], derive: StepDeriver | None
) -> list[Difference]:
    out: list[Difference] = []
    for seq, _line_no, raw, pb, row, span_recs, step_recs in tasks:
        out.extend(_check_one(seq, raw, pb, row, span_recs, step_recs, originals, derive))
    return out


def _check_one(
    seq: int,
    raw: bytes,
    pb: bytes | None,
    row: dict[str, Any] | None,
    span_recs: list[dict[str, Any]],
    step_recs: list[dict[str, Any]],
    originals: dict[int, str],
    derive: StepDeriver | None,
) -> list[Difference]:
    out: list[Difference] = []
    masked = bool(span_recs or step_recs)
    if pb is not None and not span_recs:
        # The sealed bytes (their digest was checked against the ledger) are what the step derives
        # from; the JSON line must say the same.
        why = _json_differs(raw, pb)
        if why:
            out.append((seq, JSON_DIFFERS, why, None))
        canonical = pb
        if row is not None and step_recs and originals:
            row = _restore(dict(row), step_recs, originals)
            masked = False
    else:
        try:
            doc = orjson.loads(raw)
            if masked and originals:
                doc = _restore(doc, span_recs, originals)
                if row is not None:
                    row = _restore(dict(row), step_recs, originals)
                masked = False
            canonical = otlp_json.canonical_from_json(doc)
        except (orjson.JSONDecodeError, otlp_json.OtlpJsonError, KeyError, IndexError, TypeError) as exc:
            return [(seq, "", f"{type(exc).__name__}: {exc}", None)] if row is not None else []
    if row is None or derive is None:
        return out
    found = _differences(seq, derive(canonical, sys.maxsize), row, masked)
    if found:
        cut = [int(k) for v in row.values() if isinstance(v, str) for k in _TRUNCATED.findall(v)]
        if cut:
            retry = _differences(seq, derive(canonical, min(cut)), row, masked)
            found = retry if not retry else found
    return out + found


def _json_differs(raw: bytes, pb: bytes) -> str:
    """Why the OTLP/JSON line does not say what the protobuf record says ("" when it does). Fast path:
    the line is byte for byte our rendering of the record; else (another rendering of the same span)
    the line is re-encoded and must give exactly the record's bytes."""
    try:
        if otlp_json.line_from_canonical(pb) == raw:
            return ""
    except (otlp_json.OtlpJsonError, ValueError) as exc:
        return f"the record is not one OTLP span: {exc}"
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    try:
        if otlp_json.canonical_from_json(doc) == pb:
            return ""
    except (otlp_json.OtlpJsonError, KeyError, IndexError, TypeError) as exc:
        return f"not OTLP/JSON of one span: {type(exc).__name__}: {exc}"
    return "its protobuf encoding differs"


def _restore(doc: Any, records: list[dict[str, Any]], originals: dict[int, str]) -> Any:
    by_path: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_path[tuple(rec["path"])].append(rec)
    for p, recs in by_path.items():
        _set(doc, list(p), apply_originals(_get(doc, list(p)), recs, originals))
    return doc


def _differences(seq: int, step: Step, row: dict[str, Any], masked: bool) -> list[Difference]:
    out: list[Difference] = []
    for col in STEP_COLUMNS:
        derived: Any = getattr(step, col)
        if col == "kind":
            derived = str(derived)
        said = row.get(col)
        if masked and isinstance(said, str) and isinstance(derived, str):
            if _unmasked(said) != _unmasked(derived):
                out.append((seq, col, said, derived))
        elif said != derived:
            out.append((seq, col, said, derived))
    return out[:1]  # the first differing field names the step; the rest follow from it


def _unmasked(text: str) -> str:
    return _MASK.sub(r"[REDACTED:\1]", text)


def _replay_positions(rows: list[dict[str, Any]]) -> dict[int, int]:
    """Step numbers as the Replay page shows them: per trace, 1-based, by start time then seq."""
    by_trace: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row in rows:
        if isinstance(row.get("seq"), int):
            by_trace[str(row.get("trace_id"))].append((int(row.get("start_time_ns") or 0), row["seq"]))
    return {seq: n for keys in by_trace.values() for n, (_, seq) in enumerate(sorted(keys), 1)}


def _verify_evidence(
    bundle: _Bundle,
    rows: list[dict[str, Any]],
    row_of: dict[int, int],
    position: dict[int, int],
    result: VerifyResult,
    redactions: Records,
    originals: dict[int, str],
) -> None:
    """Each finding's quoted evidence must be the step's text at [evidence_start, evidence_end)."""
    checked = 0
    for line_no, raw in enumerate(bundle.lines("findings.jsonl"), 1):
        try:
            finding = orjson.loads(raw)
            seq = int(finding["step_seq"])
            col = finding.get("evidence_field")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            result.add("findings.jsonl", f"not a finding record: {exc}", line_no)
            continue
        span_id = finding.get("span_id")
        if seq not in row_of:
            result.add("findings.jsonl", f"finding on seq {seq}, which has no row in steps.parquet", line_no)
            continue
        if col is None:
            continue
        row_no = row_of[seq]
        row = rows[row_no]
        where = f"finding {finding.get('id')} ({finding.get('rule_id')}) on trace {row.get('trace_id')} step "
        where += f"{position.get(seq, '?')} (seq {seq})"
        text = row.get(col) if col in STEP_COLUMNS else None
        if isinstance(text, int | float) and not isinstance(text, bool):
            text = str(text)  # numeric evidence (tokens, cost) quotes the number as the rules print it
        if not isinstance(text, str):
            result.add("findings.jsonl", f"{where}: evidence field {col!r} is not text on that step", line_no)
            continue
        step_recs = [r for r in redactions.get(("steps.parquet", row_no), []) if r.get("path") == [col]]
        ev_recs = [
            r
            for r in redactions.get(("findings.jsonl", line_no), [])
            if r.get("path") == ["evidence_excerpt"]
        ]
        excerpt = finding.get("evidence_excerpt")
        start, end = finding.get("evidence_start"), finding.get("evidence_end")
        masked = bool(step_recs or ev_recs)
        if masked and originals:
            text = apply_originals(text, step_recs, originals)
            excerpt = apply_originals(excerpt, ev_recs, originals) if isinstance(excerpt, str) else excerpt
            masked = False
        try:
            if masked:
                start, end = (
                    _masked_offset(int(start), step_recs, True),
                    _masked_offset(int(end), step_recs, False),
                )
            quoted = text[int(start) : int(end)]
        except (TypeError, ValueError):
            result.add("findings.jsonl", f"{where}: evidence offsets {start}..{end} are not numbers", line_no)
            continue
        if len(quoted) > MAX_EXCERPT and not masked:
            quoted = quoted[:MAX_EXCERPT] + "…"
        same = (
            _unmasked(quoted).startswith(_unmasked(excerpt).removesuffix("…"))
            if masked and isinstance(excerpt, str)
            else quoted == excerpt
        )
        checked += 1
        if not same:
            result.add(
                "findings.jsonl",
                f"{where}: evidence {_quote(excerpt)} is not the step's {col} at {start}..{end} "
                f"({_quote(quoted)})" + ("; --reveal compares the unmasked text" if masked else ""),
                line_no,
                span_id,
            )
    result.checked["evidence"] = checked


def _masked_offset(offset: int, records: list[dict[str, Any]], is_start: bool) -> int:
    """An offset into the original text, moved to the masked text (inside a mask: to its edge)."""
    shift = 0
    for rec in sorted(records, key=lambda r: int(r["start"])):
        if offset <= rec["start"]:
            break
        if offset >= rec["end"]:
            shift += (rec["masked_end"] - rec["masked_start"]) - (rec["end"] - rec["start"])
            continue
        return int(rec["masked_start"] if is_start else rec["masked_end"])
    return offset + shift


def _quote(value: Any) -> str:
    """Trace text is hostile: JSON-escaped (no control characters reach a terminal) and shortened."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 120 else text[:117] + "..."
