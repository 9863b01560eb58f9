"""Tool arguments in every shape a framework records them, read into one structure the rules share.

Frameworks disagree on what a tool step's `tool_arguments` text holds:
- a JSON object (`{"query": "DROP TABLE users"}`: the GenAI conventions, OpenAI function calling);
- a JSON string scalar (`"rm -rf ./data"`: OpenInference-LangChain's one-argument tools);
- a positional list (`["rm -rf ./data"]`);
- a call wrapper, `{"args": [...], "kwargs": {...}}` (OpenLLMetry, smolagents) or `{"kwargs": {...}}`
  (LlamaIndex);
- a Python repr where that is all the library had (`{'command': 'rm -rf ./data'}`: LlamaIndex call ids,
  CrewAI tool schemas), read with `ast.literal_eval`, never `eval`;
- plain text, which is one positional string.

`read_arguments` returns every string value with the name it was passed under (positional ones under
"") and its character range in the text as stored, so evidence found in a value indexes exactly the text
the UI shows: the stored text is never rewritten, the rules only get this parsed view of it. Values that
are themselves JSON (arguments double-encoded into a string) are read through, their ranges then
covering the whole enclosing literal. Pure and total: hostile text yields fewer values, never an error.
"""

from __future__ import annotations

import ast
import enum
import json
import re
from dataclasses import dataclass
from typing import Any

# Texts longer than this are scanned for string values but not parsed as a whole with literal_eval,
# whose cost and memory grow with the input; the scan alone is linear.
MAX_LITERAL_EVAL = 200_000
# Double-encoded arguments are read through this many times at most (each level is a whole new text).
MAX_NESTING = 3
# Keys a call wrapper uses for its positional and named parts.
_WRAPPER_KEYS = frozenset({"args", "kwargs"})


class Shape(enum.StrEnum):
    """How the arguments were written; recorded so a rule or a reader can say what it read."""

    EMPTY = "empty"
    OBJECT = "object"
    STRING = "string"
    LIST = "list"
    CALL = "call"  # {"args": [...], "kwargs": {...}} or {"kwargs": {...}}
    REPR = "repr"  # a Python literal (or call-like repr) that is not JSON
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Value:
    """A string value of the arguments: the name it was passed under ("" when positional), its decoded
    text and the range [start, end) of its literal's content in the raw text."""

    key: str
    text: str
    start: int
    exact: bool  # True when raw[start:start+len(text)] == text (no escapes), so sub-ranges map 1:1
    end: int = -1  # end of the literal's content in raw; -1 means start + len(text)

    def span(self, i: int, j: int) -> tuple[int, int]:
        """Raw offsets of text[i:j] (the whole literal when escapes make a 1:1 mapping impossible)."""
        if self.exact:
            return self.start + i, self.start + j
        return self.start, self.end if self.end >= 0 else self.start + len(self.text)


@dataclass(frozen=True, slots=True)
class Arguments:
    """The parsed view of one step's tool arguments.

    `named` and `positional` are the structure the call was made with (wrapper keys removed); `values`
    are the string leaves with raw ranges, in text order.
    """

    shape: Shape
    named: dict[str, Any]
    positional: tuple[Any, ...]
    values: tuple[Value, ...]

    @property
    def sole_string(self) -> Value | None:
        """The one positional string when the whole input is a single string (a command, a query)."""
        if self.named or len(self.positional) != 1 or not isinstance(self.positional[0], str):
            return None
        return next((v for v in self.values if v.key == ""), None)


def read_arguments(raw: str | None) -> Arguments:
    """The arguments in `raw` whatever their shape; never raises."""
    try:
        return _read(raw or "")
    except Exception:  # noqa: BLE001 (a parsing bug must not cost a rule its step; the text is still one value)
        text = raw or ""
        values = (Value("", text, 0, True),) if text else ()
        return Arguments(Shape.TEXT if text else Shape.EMPTY, {}, (text,) if text else (), values)


def _read(raw: str) -> Arguments:
    stripped = raw.strip()
    if not stripped:
        return Arguments(Shape.EMPTY, {}, (), ())
    parsed, is_json = _parse_whole(stripped)
    if parsed is _UNPARSED and not _looks_structured(stripped):
        return Arguments(Shape.TEXT, {}, (raw,), (Value("", raw, 0, True),))
    values = tuple(_scan(raw, python=not is_json, depth=0))
    shape, named, positional = _structure(parsed, is_json)
    if shape is Shape.CALL:
        # Positional values sit under "args", named ones under their own names: "args" is no name.
        values = tuple(Value("", v.text, v.start, v.exact, v.end) if v.key == "args" else v for v in values)
    return Arguments(shape, named, positional, values)


class _Unparsed:
    pass


_UNPARSED: Any = _Unparsed()


def _parse_whole(text: str) -> tuple[Any, bool]:
    """(value, is_json): JSON first; a Python literal when the text is not JSON."""
    try:
        return json.loads(text), True
    except (ValueError, RecursionError):
        pass
    if len(text) > MAX_LITERAL_EVAL or not _looks_structured(text):
        return _UNPARSED, False
    try:
        return ast.literal_eval(text), False
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNPARSED, False


_CALL_REPR = re.compile(r"^[A-Za-z_][\w.]*\(")


def _looks_structured(text: str) -> bool:
    return text[:1] in "{[(" or bool(_CALL_REPR.match(text))


def _structure(parsed: Any, is_json: bool) -> tuple[Shape, dict[str, Any], tuple[Any, ...]]:
    if parsed is _UNPARSED:
        return Shape.REPR, {}, ()
    if isinstance(parsed, dict):
        keys = set(parsed)
        if keys and keys <= _WRAPPER_KEYS and "kwargs" in keys and isinstance(parsed["kwargs"], dict):
            args = parsed.get("args")
            positional = tuple(args) if isinstance(args, list | tuple) else ()
            return Shape.CALL, {str(k): v for k, v in parsed["kwargs"].items()}, positional
        return (Shape.OBJECT if is_json else Shape.REPR), {str(k): v for k, v in parsed.items()}, ()
    if isinstance(parsed, list | tuple):
        return (Shape.LIST if is_json else Shape.REPR), {}, tuple(parsed)
    if isinstance(parsed, str):
        return (Shape.STRING if is_json else Shape.REPR), {}, (parsed,)
    return (Shape.OBJECT if is_json else Shape.REPR), {}, (parsed,)


# --- the scan: string literals with their names and ranges -------------------------------------------

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]():,=]|[A-Za-z_][\w.]*', re.DOTALL)
_PY_TOKEN = re.compile(
    r"""(?:[rRbBuU]{0,2})(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")|[{}\[\]():,=]|[A-Za-z_][\w.]*""",
    re.DOTALL,
)
_OPEN = {"{": "}", "[": "]", "(": ")"}


@dataclass(slots=True)
class _Frame:
    closer: str
    key: str  # the name the container was passed under (inherited by its positional items)
    pending: str | None = None  # the key just read in an object, or a keyword in a call


def _scan(raw: str, *, python: bool, depth: int) -> list[Value]:
    """String values in text order, each with the innermost name it sits under.

    A small structural pass over the tokens rather than a full parse, so text that is almost JSON or
    almost a Python literal (truncated, a class repr) still gives its values.
    """
    token_re = _PY_TOKEN if python else _JSON_TOKEN
    tokens = list(token_re.finditer(raw))
    stack: list[_Frame] = [_Frame("", "")]
    out: list[Value] = []
    for n, m in enumerate(tokens):
        tok = m.group(0)
        frame = stack[-1]
        nxt = tokens[n + 1].group(0) if n + 1 < len(tokens) else ""
        if tok in _OPEN:
            stack.append(_Frame(_OPEN[tok], frame.pending if frame.pending is not None else frame.key))
            frame.pending = None
            continue
        if tok in ("}", "]", ")"):
            if len(stack) > 1:
                stack.pop()
            continue
        if tok == ",":
            frame.pending = None
            continue
        if tok in (":", "="):
            continue
        quoted = tok[-1:] in "'\"" and len(tok) >= 2
        if not quoted:
            if nxt == "=" and frame.closer == ")":  # keyword argument of a call repr
                frame.pending = tok
            continue
        if nxt == ":" and frame.closer == "}":
            frame.pending = _decode(tok, python)
            continue
        text = _decode(tok, python)
        if text is None:
            continue
        quote_at = m.start() + tok.index(tok[-1])
        start, end = quote_at + 1, m.end() - 1
        key = frame.pending if frame.pending is not None else frame.key
        value = Value(key or "", text, start, raw[start:end] == text, end)
        inner = _nested(value, depth)
        out.extend(inner if inner else [value])
    return out


def _decode(literal: str, python: bool) -> str | None:
    try:
        text = ast.literal_eval(literal) if python else json.loads(literal)
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        return None
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    return text if isinstance(text, str) else None


def _nested(value: Value, depth: int) -> list[Value]:
    """The values of a string that is itself JSON or a Python literal (double-encoded arguments)."""
    text = value.text.strip()
    if depth >= MAX_NESTING or not text or text[0] not in "{[":
        return []
    parsed, is_json = _parse_whole(text)
    if parsed is _UNPARSED:
        return []
    inner = _scan(value.text, python=not is_json, depth=depth + 1)
    out = []
    for v in inner:
        key = v.key or value.key
        if value.exact:
            out.append(Value(key, v.text, value.start + v.start, v.exact, value.start + v.end))
        else:
            out.append(Value(key, v.text, value.start, False, value.end))
    return out
