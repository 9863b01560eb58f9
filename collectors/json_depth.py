"""Parse JSON that may be nested deeper than the parser can recurse, losing only the deep spans.

Why: Python's json parser recurses once per nesting level and raises RecursionError on about a
thousand; a body of 100,000 `[` or one span whose attribute nests arrayValue 3,000 deep would
otherwise fail the whole request (and, uncaught, the server's answer). The fast path is a plain
`json.loads`. Only when it runs out of stack does the body get scanned once, without recursion: every
value that opens deeper than `MAX_DEPTH` is found, and the container at span depth around it (the span
itself, in a well-formed OTLP/JSON document) is replaced by a marker string. The rest parses as usual,
and the decoder refuses each marked span alone (`deep_span_message`).

The marker carries a random per-process nonce, so a sender cannot forge one; were it forged, it
would only get its own span refused.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from workbench.errors import BadInput

# Far below the parser's recursion limit (about 1,000 frames) and far above anything OTLP/JSON needs:
# the decoder refuses values nested beyond WORKBENCH_MAX_VALUE_DEPTH long before this.
MAX_DEPTH = 200
# {"resourceSpans": [ {"scopeSpans": [ {"spans": [ {span: the span opens at the seventh level.
SPAN_DEPTH = 7

_NONCE = secrets.token_hex(8)
# What the marker leaves in a parser's error message, which may show it escaped.
MARK_TEXT = f"workbench-too-deep-{_NONCE}:"
_MARK = f"\x00{MARK_TEXT}"
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def loads(text: str) -> Any:
    """`json.loads`, except that spans nested too deep come back as marker strings (see module doc).

    Raises BadInput when the document is not JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError:
        pass
    salvaged = _cut_deep(text)
    try:
        return json.loads(salvaged)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"malformed JSON (nested more than {MAX_DEPTH} levels; read with those parts left out): "
            f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:  # not expected after the cut; never a traceback for bad input
        raise BadInput(f"JSON nested more than {MAX_DEPTH} levels deep") from exc


def deep_span_message(value: Any) -> str | None:
    """If `value` is a marker left by `loads`, why its span was refused."""
    if isinstance(value, str) and value.startswith(_MARK):
        depth = value[len(_MARK) :]
        return f"nested more than {MAX_DEPTH} levels deep (at least {depth}); the span was not read"
    return None


def _cut_deep(text: str) -> str:
    """The text with every container at SPAN_DEPTH that holds something deeper than MAX_DEPTH replaced
    by a marker string. One regex pass over strings and brackets: strings are skipped whole, so a
    bracket inside a string never counts."""
    depth = 0
    span_start = -1  # where the container at SPAN_DEPTH began
    deepest = 0
    cuts: list[tuple[int, int, int]] = []
    for m in _TOKEN.finditer(text):
        c = text[m.start()]
        if c == '"':
            continue
        if c in "[{":
            depth += 1
            if depth == SPAN_DEPTH:
                span_start, deepest = m.start(), depth
            elif depth > deepest:
                deepest = depth
        else:
            if depth == SPAN_DEPTH and span_start >= 0:
                if deepest > MAX_DEPTH:
                    cuts.append((span_start, m.end(), deepest))
                span_start = -1
            depth -= 1
            if depth < 0:
                break  # unbalanced: let the parser name the error
    if span_start >= 0 and deepest > MAX_DEPTH:
        cuts.append((span_start, len(text), deepest))  # never closed: cut to the end
    out: list[str] = []
    pos = 0
    for start, end, deep in cuts:
        out += [text[pos:start], json.dumps(f"{_MARK}{deep}")]
        pos = end
    out.append(text[pos:])
    return "".join(out)
