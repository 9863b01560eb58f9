"""Masking secrets and personal data before they leave the workbench, with a record of every mask.

Each masked value becomes `[REDACTED:<kind>#<id>]` and gets a record: the rule that matched, where it
was (file, line or row, span id, JSON path or column, the character range in the original string and
in the masked one) and HMAC-SHA256(salt, original). The salt is random per bundle and is NOT in the
bundle: it goes, with the originals, into a reveal file in the exporter's data directory (mode 0600).
Why keep the salt out: a card or phone number has so few possible values that an unsalted (or
salt-included) hash could be reversed by trying them all; with the salt withheld the hash is a
commitment the owner can open later, value by value, to an auditor.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection
from typing import Any

from workbench.sensitive import KINDS, SensitiveMatch, find_sensitive

MASK_PREFIX = "[REDACTED:"

# OTLP/JSON keys whose string values are identifiers, times or attribute names, not content.
_NOT_CONTENT = frozenset(
    "traceId spanId parentSpanId key intValue startTimeUnixNano endTimeUnixNano timeUnixNano bytesValue "
    "schemaUrl".split()
)

Path = list[str | int]


def mask_text(kind: str, rid: int) -> str:
    return f"{MASK_PREFIX}{kind}#{rid}]"


def salted_hash(salt: bytes, original: str) -> str:
    return hmac.new(salt, original.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_kinds(value: str | Collection[str] | None) -> tuple[str, ...]:
    """Kinds from a setting like "secret,email" ("none" or "" for none); unknown names are an error."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    kinds = tuple(k.strip().lower() for k in items if k.strip() and k.strip().lower() != "none")
    unknown = [k for k in kinds if k not in KINDS and k != "all"]
    if unknown:
        raise ValueError(f"unknown redaction kind(s) {unknown}; known: {', '.join(KINDS)}, all, none")
    return KINDS if "all" in kinds else kinds


class Redactor:
    """Masks what `workbench.sensitive` finds, numbering masks and keeping records and originals.

    Results are cached per distinct string: the same reasoning text appears in the span, the step and
    the probe input, and detection (detect-secrets' patterns, libphonenumber) costs ~0.2 ms a string.
    """

    def __init__(self, kinds: Collection[str], salt: bytes) -> None:
        self.kinds = tuple(kinds)
        self.salt = salt
        self.records: list[dict[str, Any]] = []
        self.originals: dict[int, str] = {}
        self._cache: dict[str, list[SensitiveMatch]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)

    def matches(self, text: str) -> list[SensitiveMatch]:
        found = self._cache.get(text)
        if found is None:
            found = find_sensitive(text, self.kinds) if self.kinds and text else []
            if len(self._cache) < 500_000:
                self._cache[text] = found
        return found

    def text(self, value: str, where: dict[str, Any], path: Path) -> str:
        """`value` with every match masked; one record per match, located by `where` and `path`."""
        found = self.matches(value)
        if not found:
            return value
        out: list[str] = []
        at = 0
        length = 0
        for m in found:
            rid = len(self.records) + 1
            piece = value[at : m.start]
            out.append(piece)
            length += len(piece)
            mask = mask_text(m.kind, rid)
            self.records.append(
                {
                    "id": rid,
                    "kind": m.kind,
                    "rule": m.rule,
                    **where,
                    "path": list(path),
                    "start": m.start,
                    "end": m.end,
                    "masked_start": length,
                    "masked_end": length + len(mask),
                    "hmac_sha256": salted_hash(self.salt, m.text),
                }
            )
            self.originals[rid] = m.text
            out.append(mask)
            length += len(mask)
            at = m.end
        out.append(value[at:])
        return "".join(out)

    def walk(self, obj: Any, where: dict[str, Any], path: Path | None = None, *, otlp: bool = False) -> Any:
        """A copy of a JSON value with every content string masked (in OTLP/JSON, ids and keys are kept)."""
        path = path or []
        if isinstance(obj, str):
            return self.text(obj, where, path)
        if isinstance(obj, dict):
            return {
                k: (v if otlp and k in _NOT_CONTENT else self.walk(v, where, [*path, k], otlp=otlp))
                for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [self.walk(v, where, [*path, i], otlp=otlp) for i, v in enumerate(obj)]
        return obj

    def probe_data(self, data: Any, where: dict[str, Any], path: Path) -> Any:
        """Probe results quote the step's text token by token: tokens inside a masked range of
        `step_text` are masked too, so a key split across tokens does not survive as pieces."""
        if (
            isinstance(data, dict)
            and isinstance(data.get("step_text"), str)
            and isinstance(data.get("tokens"), list)
        ):
            ranges = [(m.start, m.end) for m in self.matches(data["step_text"])]
            spans = data.get("char_spans") or []
            if ranges:
                tokens = list(data["tokens"])
                for i, span in enumerate(spans[: len(tokens)]):
                    if span and any(span[0] < end and start < span[1] for start, end in ranges):
                        tokens[i] = "[REDACTED]"
                data = {**data, "tokens": tokens}
        return self.walk(data, where, path)


def apply_originals(value: str, records: list[dict[str, Any]], originals: dict[int, str]) -> str:
    """Undo the masks of `records` (all on this one string) with the revealed originals."""
    for rec in sorted(records, key=lambda r: r["masked_start"], reverse=True):
        value = value[: rec["masked_start"]] + originals[rec["id"]] + value[rec["masked_end"] :]
    return value
