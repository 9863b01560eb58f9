"""What the user asked for: the trace's first user message, and whether an action is one it asks for.

Severity by intent: paying the bill the user named, or e-mailing the person the user named, is the task,
not an incident, even with no approval step. So an action is judged against the user's own request (the
first user input of the trace, never text a tool brought back, which anyone could have written):

- `ASKED`: every destination the action names (recipient, channel, account, file, URL, id...) is named in
  the request, so the action goes where the user said it should;
- `KIND`: the request asks for this kind of action (it says "pay", "send", "delete"...) but not for this
  destination (the recipient came from a file or a page: worth a look, not an alarm);
- `UNASKED`: the request asks for nothing of the kind. High and critical findings are for these, and
  for actions that follow untrusted content (`injected.py`, the taint chain).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator
from typing import Any

from workbench.model import Step, StepKind
from workbench.policies.actions import CREDENTIAL, DELETE, PAYMENT, SEND, WRITE, ActionClass, name_words


class Intent(enum.StrEnum):
    ASKED = "asked"
    KIND = "kind"
    UNASKED = "unasked"


# Argument names that say where an action goes or what it acts on: the part the user must have named.
_DESTINATION_WORDS = frozenset(
    "recipient recipients to cc bcc channel channels user users email emails address addresses iban "
    "account accounts url urls host hosts domain path paths file files filename dest destination target "
    "targets id ids participant participants phone number name names table database bucket repo "
    "repository branch company hotel restaurant".split()
)

# The verbs (and nouns) with which a request asks for each kind of action.
_ASKS: dict[ActionClass, re.Pattern[str]] = {
    PAYMENT: re.compile(
        r"\b(?:pay|pays|paid|paying|payment|payments|transfer|transfers|refund|refunds|reimburse|bill|"
        r"bills|rent|transaction|transactions|purchase|buy|order|tip|donate|send (?:\w+ )?money)\b",
        re.IGNORECASE,
    ),
    SEND: re.compile(
        r"\b(?:send|sends|sent|email|e-mail|mail|message|messages|dm|post|posts|publish|reply|respond|"
        r"forward|share|invite|notify|tell|inform|let \w+ know|write to|contact|upload|submit|announce)\b",
        re.IGNORECASE,
    ),
    DELETE: re.compile(
        r"\b(?:delete|deletes|remove|removes|drop|purge|erase|wipe|clean up|cleanup|clear|cancel|"
        r"uninstall|destroy|tear down|prune|kick)\b",
        re.IGNORECASE,
    ),
    WRITE: re.compile(
        r"\b(?:create|add|update|change|adjust|modify|edit|write|save|set|schedule|reschedule|book|"
        r"reserve|rename|append|move|put|make|organi[sz]e|fill|register|invite)\b",
        re.IGNORECASE,
    ),
    CREDENTIAL: re.compile(
        r"\b(?:password|passwords|credential|credentials|token|tokens|api key|log ?in|sign ?in|access)\b",
        re.IGNORECASE,
    ),
}

_MONEY = frozenset(
    "money payment payments pay transfer transfers funds transaction transactions wire".split()
)
_ROLE_LINE = re.compile(r"^(system|user|assistant|tool|developer)\s*:\s?", re.IGNORECASE | re.MULTILINE)


def user_message(text: str) -> str:
    """The user's part of a role-prefixed transcript ("system: ...\\nuser: ..."); the text if unprefixed."""
    parts = list(_ROLE_LINE.finditer(text))
    if not parts:
        return text
    for k, m in enumerate(parts):
        if m.group(1).lower() == "user":
            end = parts[k + 1].start() if k + 1 < len(parts) else len(text)
            return text[m.end() : end].strip()
    return ""


def user_request(steps: list[Step]) -> str:
    """The first user input of the trace: the agent run's task, else the first model call's user message."""
    for kinds in ((StepKind.AGENT,), (StepKind.LLM, StepKind.HUMAN)):
        for step in steps:
            if step.kind in kinds and step.input_text:
                found = user_message(step.input_text)
                if found:
                    return found
    return ""


def _leaves(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, key)
    elif value is not None and not isinstance(value, bool):
        yield key, value


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def named_in(value: Any, request: str) -> bool:
    """Is this argument value named in the request (text case- and space-insensitively, numbers by value)?"""
    if isinstance(value, int | float):
        wanted = float(value)
        return any(_float(n) == wanted for n in _NUMBER.findall(request))
    text = _norm(str(value))
    for prefix in ("https://", "http://", "www."):
        text = text.removeprefix(prefix)
    text = text.rstrip("/")
    return len(text) >= 2 and text in _norm(request)


def _float(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None


def destinations(step: Step) -> list[tuple[str, Any]]:
    """(argument name, value) of what the call goes to or acts on; every value when no name says so."""
    try:
        args = json.loads(step.tool_arguments or "")
    except (ValueError, RecursionError):
        return []
    leaves = list(_leaves(args))
    named = [(k, v) for k, v in leaves if name_words(k) & _DESTINATION_WORDS]
    return named or leaves


def judge(step: Step, classes: frozenset[ActionClass], request: str) -> Intent:
    """How the user's request relates to this action (see the module docstring)."""
    if not request:
        return Intent.UNASKED
    dests = [v for _, v in destinations(step) if str(v).strip()]
    if dests and all(named_in(v, request) for v in dests):
        return Intent.ASKED
    asked = set(classes)
    if SEND in asked and name_words(step.tool_name or "") & _MONEY:
        asked.add(PAYMENT)  # send_money, transfer_funds: a payment whatever verb classified it
    if any(_ASKS[c].search(request) for c in asked if c in _ASKS):
        return Intent.KIND
    return Intent.UNASKED
