"""Redaction records: every `[REDACTED:kind#id]` mask must sit where `redactions.jsonl` says,
and with the owner's reveal file the originals go back in place.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from workbench.export.redact import mask_text
from workbench.export.verify_base import VerifyResult, _Bundle, _get


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
