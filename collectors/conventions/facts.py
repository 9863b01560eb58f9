"""Facts every family reports the same way: failures, who the session and user were, explicit cost.

These run for every span, whatever its convention, so that even an unknown span that failed is
marked as failed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from collectors.conventions.common import (
    MAPPING,
    Draft,
    as_float,
    as_int,
    as_name,
    as_str,
    first_name,
    parse_json,
)
from workbench.model import STATUS_ERROR, SpanRecord

_CLASS_REPR = re.compile(r"^<class '([^']+)'>$")


def clean_error_type(value: Any) -> str | None:
    """error.type as a readable name: openai-v2 2.4b0 writes str(type), e.g. "<class 'openai.X'>"."""
    name = as_name(value)
    if name is None:
        return None
    match = _CLASS_REPR.match(name)
    return match.group(1) if match else name


def exception_events(span: SpanRecord) -> list[tuple[str | None, str | None]]:
    """(type, message) of each exception event, duplicates dropped (smolagents records them twice)."""
    seen: list[tuple[str | None, str | None]] = []
    events = span.events if isinstance(span.events, Iterable) else ()
    for event in events:
        if getattr(event, "name", None) != "exception":
            continue
        eattrs = getattr(event, "attributes", None)
        if not isinstance(eattrs, MAPPING):
            eattrs = {}
        item = (as_name(eattrs.get("exception.type")), as_str(eattrs.get("exception.message")))
        if item not in seen:
            seen.append(item)
    return seen


def apply_errors(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    """Status ERROR, error.type or an exception event each mark a failure; the text says which."""
    status_error = as_int(span.status_code) == STATUS_ERROR
    status_message = as_str(span.status_message) or ""
    status_message = status_message.strip()
    error_type = clean_error_type(attrs.get("error.type"))
    if error_type == "_OTHER":
        error_type = "error"
    excs = exception_events(span)
    if not (status_error or error_type or excs):
        return
    draft.is_error = True
    texts: list[str] = []
    if status_message:
        text = status_message
        if error_type and error_type not in text and error_type.rsplit(".", 1)[-1] not in text:
            text = f"{error_type}: {text}"
        texts.append(text)
    for exc_type, exc_message in excs:
        text = ": ".join(p for p in (exc_type, exc_message) if p)
        short = exc_message or ""
        if text and not any(short and short in t for t in texts) and text not in texts:
            texts.append(text)
    if not texts and error_type:
        texts.append(error_type)
    if texts:
        draft.error = "\n".join(texts)
    elif draft.error is None:
        draft.error = "error (status ERROR, no message)"


_USER_KEYS = ("user_id", "user.id", "userId", "user")
_SESSION_KEYS = ("session_id", "session.id", "sessionId", "thread_id", "conversation_id", "chat_id")


def apply_identity(attrs: Mapping[str, Any], draft: Draft) -> None:
    """Session and user, from the attributes each family uses; LangChain nests them in `metadata`."""
    draft.fill(
        session_id=first_name(
            attrs,
            "session.id",
            "gen_ai.conversation.id",
            "traceloop.association.properties.session_id",
            "traceloop.association.properties.thread_id",
            "traceloop.association.properties.conversation_id",
            "traceloop.association.properties.chat_id",
        ),
        user_id=first_name(
            attrs, "user.id", "enduser.id", "traceloop.association.properties.user_id", "gen_ai.user.id"
        ),
    )
    meta = parse_json(attrs.get("metadata"))
    if isinstance(meta, MAPPING):
        draft.fill(
            user_id=next((n for k in _USER_KEYS if (n := as_name(meta.get(k)))), None),
            session_id=next((n for k in _SESSION_KEYS if (n := as_name(meta.get(k)))), None),
        )


# Explicit cost attributes, in USD. Nothing here prices tokens: a cost we did not read is left None.
COST_KEYS = (
    "operation.cost",
    "llm.cost.total",
    "gen_ai.usage.cost",
    "gen_ai.cost.usd",
    "gen_ai.usage.cost_usd",
    "cost_usd",
    "workbench.cost_usd",
)


def apply_cost(attrs: Mapping[str, Any], draft: Draft) -> None:
    for key in COST_KEYS:
        cost = as_float(attrs.get(key))
        if cost is not None and cost >= 0:
            draft.fill(cost_usd=cost)
            return
