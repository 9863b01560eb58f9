"""Finding secrets and personal data in text: one detector for the findings rules and for export redaction.

Why one module: a finding that says "an API key went into a tool call" and the export that must mask that
key have to agree on what a key is, character for character. Detection leans on kept libraries:
detect-secrets' plugin patterns for credentials, `phonenumbers` (Google's libphonenumber) for phone
numbers, python-stdnum's Luhn and IBAN checks so a random 16-digit id is not taken for a card. The few
patterns written here cover what those libraries do not: e-mail addresses, PEM key bodies (the library
matches the header line only) and current LLM provider keys (detect-secrets' OpenAI pattern predates
`sk-proj-` keys).

Pure logic, no I/O: floor 2, safe to call from the normalizer's neighbours, the rules and the exporter.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

KINDS = ("secret", "card", "iban", "email", "phone", "ip")
# When two matches overlap, the kind listed first wins: a key that happens to contain a phone-like
# digit run is reported (and masked) as the key.
_PRIORITY = {kind: i for i, kind in enumerate(KINDS)}


@dataclass(frozen=True, slots=True)
class SensitiveMatch:
    """One sensitive value in a text: what it is, which rule saw it, and where it sits."""

    kind: str  # one of KINDS
    rule: str  # e.g. "detect-secrets:AWS Access Key", "email", "phone", "card-luhn"
    start: int  # character range [start, end) in the text
    end: int
    text: str


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL
)
# Provider key formats newer than detect-secrets 1.5's patterns.
_EXTRA_SECRETS = (
    ("openai-key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}")),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{32,}")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("bearer-token", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{20,}=*)")),
)
_CARD_CANDIDATE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")


@cache
def _regex_plugins() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """detect-secrets' pattern-based plugins as (secret type, compiled pattern) pairs."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    out: list[tuple[str, re.Pattern[str]]] = []
    mapping: dict[str, Any] = get_mapping_from_secret_type_to_class()
    for secret_type, cls in mapping.items():
        if not issubclass(cls, RegexBasedDetector) or secret_type.startswith("Public IP"):
            continue
        for pattern in cls().denylist:
            out.append((secret_type, pattern))
    return tuple(out)


def _ip_pattern() -> re.Pattern[str] | None:
    from detect_secrets.plugins.ip_public import IPPublicDetector

    patterns = list(IPPublicDetector().denylist)
    return patterns[0] if patterns else None


def _secrets(text: str) -> Iterator[SensitiveMatch]:
    for secret_type, pattern in _regex_plugins():
        for m in pattern.finditer(text):
            if m.end() > m.start():
                rule = f"detect-secrets:{secret_type}"
                yield SensitiveMatch("secret", rule, m.start(), m.end(), m.group(0))
    for m in _PEM.finditer(text):
        yield SensitiveMatch("secret", "private-key-block", m.start(), m.end(), m.group(0))
    for rule, pattern in _EXTRA_SECRETS:
        for m in pattern.finditer(text):
            start, end = m.span(1) if pattern.groups else m.span()
            yield SensitiveMatch("secret", rule, start, end, text[start:end])
    yield from _keyword_secrets(text)


# Every word of the keyword plugin's denylist (api_key, db_pass, password, pwd, secret, contraseña...)
# contains one of these; lines without them cannot match and skip its costly patterns.
_KEYWORD_HINT = re.compile(r"(?i)key|pass|pwd|secret|contrase")


_KEYWORD_RULE = "detect-secrets:Secret Keyword"


@cache
def _keyword_plugin() -> Any:
    from detect_secrets.plugins.keyword import KeywordDetector

    return KeywordDetector()


def _keyword_secrets(text: str) -> Iterator[SensitiveMatch]:
    """`password = "..."`-style assignments, via detect-secrets' keyword plugin, located in the text.

    The plugin reports the value, not its position; the value is searched for within the line it came
    from so a common word elsewhere is never masked. (The plugin is called directly: its `scan_line`
    wrapper rebuilds the global settings on every call, 10x the cost of the scan itself.)
    """
    plugin = _keyword_plugin()
    offset = 0
    for line in text.splitlines(keepends=True):
        if ("=" in line or ":" in line) and _KEYWORD_HINT.search(line):
            for found in plugin.analyze_line(filename="adhoc", line=line):
                value = found.secret_value
                if not value or len(value) < 4:
                    continue
                at = line.find(value)
                while at >= 0:
                    start = offset + at
                    yield SensitiveMatch("secret", _KEYWORD_RULE, start, start + len(value), value)
                    at = line.find(value, at + len(value))
        offset += len(line)


def _cards(text: str) -> Iterator[SensitiveMatch]:
    from stdnum import luhn

    for m in _CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", m.group(0))
        if 13 <= len(digits) <= 19 and digits[0] in "3456" and luhn.is_valid(digits):
            yield SensitiveMatch("card", "card-luhn", m.start(), m.end(), m.group(0))


def _ibans(text: str) -> Iterator[SensitiveMatch]:
    from stdnum import iban

    for m in _IBAN_CANDIDATE.finditer(text):
        if iban.is_valid(m.group(0)):
            yield SensitiveMatch("iban", "iban", m.start(), m.end(), m.group(0))


def _emails(text: str) -> Iterator[SensitiveMatch]:
    for m in _EMAIL.finditer(text):
        yield SensitiveMatch("email", "email", m.start(), m.end(), m.group(0))


# libphonenumber's matcher costs milliseconds per kilobyte; texts without 7 digits close together
# cannot hold a phone number and skip it.
_PHONE_HINT = re.compile(r"\d(?:[\s().+-]{0,3}\d){6}")


def _phones(text: str, region: str) -> Iterator[SensitiveMatch]:
    if not _PHONE_HINT.search(text):
        return
    import phonenumbers

    matcher: Any = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    for m in matcher:
        yield SensitiveMatch("phone", "phone", m.start, m.end, m.raw_string)


def _ips(text: str) -> Iterator[SensitiveMatch]:
    pattern = _ip_pattern()
    if pattern is None:
        return
    for m in pattern.finditer(text):
        start, end = m.span(1) if pattern.groups else m.span()
        yield SensitiveMatch("ip", "public-ipv4", start, end, text[start:end])


def find_sensitive(
    text: str, kinds: Collection[str] | None = None, *, phone_region: str = "US"
) -> list[SensitiveMatch]:
    """Every secret or personal datum in `text`, sorted by start, never overlapping.

    `kinds` limits the search (default: all of KINDS); `phone_region` is where numbers written without a
    country code are assumed to be from.
    """
    wanted = set(KINDS if kinds is None else kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown sensitive kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    if not text:
        return []
    found: list[SensitiveMatch] = []
    if "secret" in wanted:
        found.extend(_secrets(text))
    if "card" in wanted:
        found.extend(_cards(text))
    if "iban" in wanted:
        found.extend(_ibans(text))
    if "email" in wanted:
        found.extend(_emails(text))
    if "phone" in wanted:
        found.extend(_phones(text, phone_region))
    if "ip" in wanted:
        found.extend(_ips(text))
    # Highest priority first, then longest: each character belongs to at most one match.
    found.sort(key=lambda m: (_PRIORITY[m.kind], -(m.end - m.start), m.start))
    taken: list[SensitiveMatch] = []
    for match in found:
        if all(match.end <= t.start or match.start >= t.end for t in taken):
            taken.append(match)
    taken.sort(key=lambda m: m.start)
    return taken


def mask(text: str, matches: Collection[SensitiveMatch], *, template: str = "[REDACTED:{kind}]") -> str:
    """`text` with every match replaced by the template (the matches must come from this same text)."""
    out: list[str] = []
    at = 0
    for m in sorted(matches, key=lambda m: m.start):
        if m.start < at:
            raise ValueError("overlapping matches cannot be masked")
        out.append(text[at : m.start])
        out.append(template.format(kind=m.kind, rule=m.rule))
        at = m.end
    out.append(text[at:])
    return "".join(out)
