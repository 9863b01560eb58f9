"""Tolerant readers shared by the convention mappers.

Attribute values arrive from whatever an instrumentation chose to send, and a normalizer that raises
would lose the audit record of a span. Everything here therefore coerces instead of validating: a
reader returns None when a value cannot mean what the caller asked for, never an exception.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from workbench.model import SpanRecord, Step, StepKind

# JSON nesting deeper than this is rendered as a placeholder instead of recursed into: hostile or
# accidental deep nesting must not exhaust the stack of the process that owns the database.
MAX_DEPTH = 64


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# `isinstance(x, MAPPING)` means `isinstance(x, Mapping)`, but answers for a plain dict (all that decode
# produces) in C: the ABC check alone is a Python-level call, and mappers make dozens per span.
MAPPING = (dict, Mapping)


@dataclass(slots=True)
class Draft:
    """The mutable twin of Step while mappers fill it; frozen only once every mapper has spoken."""

    kind: StepKind = StepKind.OTHER
    convention: str = "unknown"
    actor: str | None = None
    operation: str | None = None
    model: str | None = None
    provider: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    tool_arguments: str | None = None
    tool_result: str | None = None
    input_text: str | None = None
    output_text: str | None = None
    reasoning_text: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    tokens_reasoning: int | None = None
    tokens_cached: int | None = None
    cost_usd: float | None = None
    is_error: bool = False
    error: str | None = None
    session_id: str | None = None
    user_id: str | None = None

    def fill(self, **values: Any) -> None:
        """Set only fields still empty, so the more specific mapper that ran first keeps its answer."""
        for key, value in values.items():
            if value is not None and getattr(self, key) is None:
                setattr(self, key, value)

    def to_step(self, span: SpanRecord) -> Step:
        """The frozen Step: the span's identity and times, plus every field the mappers filled."""
        return Step(
            trace_id=as_str(span.trace_id) or "",
            span_id=as_str(span.span_id) or "",
            parent_span_id=as_str(span.parent_span_id) or "",
            name=as_str(span.name) or "",
            start_time_ns=as_int(span.start_time_ns) or 0,
            end_time_ns=as_int(span.end_time_ns) or 0,
            service_name=_service_name(span),
            **dict(zip(_DRAFT_FIELDS, _DRAFT_VALUES(self), strict=True)),
        )


# Every Draft field is a Step field of the same name (tests/test_normalize.py checks it), so a field
# added to both reaches the step without a line here.
_DRAFT_FIELDS = tuple(f.name for f in fields(Draft))
_DRAFT_VALUES = operator.attrgetter(*_DRAFT_FIELDS)  # one C call for every field


def _service_name(span: SpanRecord) -> str:
    resource = span.resource if isinstance(span.resource, MAPPING) else {}
    return as_str(resource.get("service.name")) or ""


def is_root(span: SpanRecord) -> bool:
    parent = as_str(span.parent_span_id) or ""
    return not parent.strip("0")


def attributes_of(span: SpanRecord) -> dict[str, Any]:
    attrs = span.attributes
    if not isinstance(attrs, MAPPING):
        return {}
    if type(attrs) is dict and all(type(k) is str for k in attrs):
        return dict(attrs)  # what decode gives: a copy in C (mappers never see the record's own dict)
    return {str(k): v for k, v in attrs.items()}


# ---------------------------------------------------------------------------------------------------
# Scalar coercion
# ---------------------------------------------------------------------------------------------------


# Items dumps() will visit before eliding the rest: shared sub-structures can make a small value
# expand into an enormous tree, and rendering must stay cheap enough to run on every span.
MAX_ITEMS = 100_000


def dumps(value: Any) -> str:
    """JSON text for display and storage; falls back to str() so odd objects still say something."""
    try:
        return json.dumps(_bounded(value, 0, [MAX_ITEMS]), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        try:
            return str(value)[:MAX_ITEMS]
        except Exception:  # noqa: BLE001 (a broken __str__ must not cost us the span)
            return f"<unprintable {type(value).__name__}>"


def _bounded(value: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if depth > MAX_DEPTH:
        return "<nested too deep>"
    if budget[0] < 0:
        return "<elided>"
    if isinstance(value, MAPPING):
        return {str(k): _bounded(v, depth + 1, budget) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(v, depth + 1, budget) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def as_str(value: Any) -> str | None:
    if value is None or value is MISSING:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return dumps(value)


def as_name(value: Any) -> str | None:
    """A short identifier (model, tool, agent): blank strings and structures are not names."""
    # Nearly every call passes a string or None (an absent key): answered before the structure checks,
    # the Mapping ABC check among them, which cost more than the rest of this function.
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list | tuple | Mapping):
        return None
    text = as_str(value)
    if text is None:
        return None
    text = text.strip()
    return text or None


_INT64 = (-(2**63), 2**63 - 1)


def as_int(value: Any) -> int | None:
    """A count as an int64, or None: steps store counts in BIGINT columns, and one value outside that
    range (a token count sent as "1e30") would fail the whole batch's insert."""
    number = _to_int(value)
    return number if number is not None and _INT64[0] <= number <= _INT64[1] else None


def _to_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str | bytes):
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        try:
            return int(text.strip())
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if math.isfinite(number) else None
    return None


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def parse_json(value: Any) -> Any:
    """Structured value of an attribute: decoded JSON text, or the list/dict OTLP already carried."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        text = value.strip()
        if not text or text[0] not in '[{"':
            return MISSING
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return MISSING
    if isinstance(value, list | tuple | Mapping):
        return value
    return MISSING


def json_text(value: Any) -> str | None:
    """Tool arguments as JSON text: valid JSON strings kept verbatim, anything else JSON-encoded.

    Keeping the carried string verbatim preserves exactly what the agent sent; wrapping a bare
    string (LangChain's one-argument tools) means a reader can always json.loads the field.
    """
    if value is None or value is MISSING:
        return None
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            json.loads(value)
        except (ValueError, RecursionError):
            return json.dumps(value, ensure_ascii=False)
        return value
    return dumps(value)


def unwrap_call_args(value: Any) -> str | None:
    """Tool arguments that a wrapper recorded as {"args": [], "kwargs": {...}}: the kwargs are the arguments.

    smolagents (OpenInference) and OpenLLMetry's @tool decorator both record a Python call this way;
    with positional arguments present nothing can be named, so the wrapper is kept as it is.
    """
    parsed = parse_json(value)
    if isinstance(parsed, MAPPING) and set(parsed) <= {"args", "kwargs"} and "kwargs" in parsed:
        if isinstance(parsed["kwargs"], MAPPING) and not parsed.get("args"):
            return json_text(parsed["kwargs"])
    return json_text(value)


def first(attrs: Mapping[str, Any], *keys: str) -> Any:
    """The first present, non-empty attribute among keys (None when none is)."""
    for key in keys:
        value = attrs.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        return value
    return None


def first_int(attrs: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        number = as_int(attrs.get(key))
        if number is not None:
            return number
    return None


def first_name(attrs: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        name = as_name(attrs.get(key))
        if name is not None:
            return name
    return None


def join_nonempty(parts: Iterable[str | None], sep: str = "\n") -> str | None:
    kept = [p for p in parts if p]
    return sep.join(kept) if kept else None


# ---------------------------------------------------------------------------------------------------
# Flattened attribute trees: gen_ai.prompt.0.role, llm.input_messages.0.message.contents.1...
# ---------------------------------------------------------------------------------------------------

LEAF = ""  # key under which a node keeps its own value when it also has children


class Tree(dict[Any, Any]):
    """A node built by unflatten; values from the span are never descended into, nor mutated."""


def unflatten(attrs: Mapping[str, Any], prefix: str) -> Tree:
    """Rebuild the tree a convention flattened into dotted keys; numeric segments become int keys."""
    root = Tree()
    # Most keys do not match: filtered in one comprehension rather than one loop turn each.
    for key, value in [(k, v) for k, v in attrs.items() if k.startswith(prefix)]:
        segments = _segments(key[len(prefix) :])
        if not segments:
            continue
        node = root
        for seg in segments[:-1]:
            child = node.get(seg)
            if type(child) is not Tree:
                child = Tree() if child is None else Tree({LEAF: child})
                node[seg] = child
            node = child
        last = segments[-1]
        if type(node.get(last)) is Tree:
            node[last][LEAF] = value
        else:
            node[last] = value
    return root


# The segments of a key's tail, by tail: the same few keys (`0.message.role`...) come in every span of
# an instrumentation, so splitting them once per process instead of once per span halves unflatten.
# Bounded, because keys come from the sender: past the bound the cache starts over.
_SEGMENTS: dict[str, tuple[int | str, ...]] = {}
_SEGMENTS_MAX = 4096


def _segments(tail: str) -> tuple[int | str, ...]:
    found = _SEGMENTS.get(tail)
    if found is None:
        found = tuple(int(s) if s.isdigit() else s for s in tail.split(".") if s != "")
        if len(_SEGMENTS) >= _SEGMENTS_MAX:
            _SEGMENTS.clear()
        _SEGMENTS[tail] = found
    return found


def indexed(node: Any) -> list[Any]:
    """The children of a tree node that were list items, in index order."""
    if node is None or not isinstance(node, MAPPING):  # None first: most lookups find nothing
        return []
    keys = [k for k in node if type(k) is int]
    keys.sort()
    return [node[k] for k in keys]


def value_at(node: Mapping[Any, Any], key: Any) -> Any:
    """`leaf(node, key)` for a node already known to be a mapping: one lookup, no argument tuple
    (mappers read a handful of keys per message of every span)."""
    value = node.get(key)
    return value.get(LEAF) if type(value) is Tree else value


def leaf(node: Any, *path: Any) -> Any:
    """The value at path under a Tree node (a node's own value when it also has children)."""
    for seg in path:
        if not isinstance(node, MAPPING) or seg not in node:
            return None
        node = node[seg]
    if isinstance(node, Tree):
        return node.get(LEAF)
    return node
