"""Injected text, recognised by what it does rather than by a handful of phrases.

Text a tool brought back is data. Text written to steer the model gives itself away by what it does:

- it spoofs a role or a delimiter (`<INFORMATION>`, `###(system_message)`, `[SYSTEM]`, `<|im_start|>`,
  a line starting "system:") so that data looks like a message from the system or the user;
- it overrides the model's instructions ("ignore your previous instructions", misspellings included:
  "iunstructions"), or claims the user's task can wait ("before you can solve the task...");
- it addresses the model itself (notes to AI assistants, the trace's own model by name);
- it sets a goal as a task marker followed by an imperative ("TODO: Send a transaction to ...").

Each signal is strong (one is enough) or weak (it takes two). `detect` returns the signals with their
character ranges, so a finding quotes the words that gave the text away. Words are matched by similarity
(difflib, standard library) where attackers misspell to slip past exact phrases.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Role and delimiter spoofing: markup that makes tool output look like a system or user message.
_SPOOF = re.compile(
    r"<\s*/?\s*(?:INFORMATION|SYSTEM|SYSTEM[_ ]MESSAGE|INSTRUCTIONS?|IMPORTANT|ADMIN|ASSISTANT|USER|"
    r"DEVELOPER|PROMPT)\s*>"
    r"|#{2,}\s*\(?\s*(?:system|assistant|admin|developer|user)[\s_-]*(?:message|prompt|instructions?)?\s*\)?"
    r"|\[\s*/?\s*(?:SYSTEM|INST|ADMIN|SYSTEM MESSAGE)\s*\]"
    r"|<\|(?:im_start|im_end|system|user|assistant|endoftext)\|>"
    r"|^\s*(?:system|assistant|developer)\s*:\s"
    r"|BEGIN (?:SYSTEM|ADMIN) (?:PROMPT|INSTRUCTIONS?)"
    r"|<!--[^>]{0,40}?\b(?:system|assistant|ai|agent|llm|model)\s*:",
    re.MULTILINE | re.IGNORECASE,
)
# A role name in capitals before a colon, anywhere: "[kb-88] SYSTEM: the assistant is authorised to ..."
_ROLE_CAPS = re.compile(r"\b(?:SYSTEM|ASSISTANT|DEVELOPER|ADMIN(?:ISTRATOR)?)\s*(?:MESSAGE|PROMPT|NOTE)?\s*:")
# Words of an override, matched by similarity: "ignore all previous iunstructions".
_OVERRIDE_VERBS = ("ignore", "disregard", "forget", "override", "overwrite", "bypass")
_OVERRIDE_OBJECTS = ("instructions", "instruction", "rules", "prompt", "directions", "guidelines", "orders")
_TASK_SWAP = re.compile(
    r"before you (?:can )?(?:solve|do|complete|continue|finish|start)\b[^.\n]{0,40}?\b(?:task|request)"
    r"|\b(?:your|the) (?:new|real|actual|updated|only) (?:task|goal|instructions?|objective) (?:is|are)\b"
    r"|\binstead of (?:the|your) (?:task|request|instructions?)\b"
    r"|\bstrictly adhere to the following\b",
    re.IGNORECASE,
)
# Text addressed to the model itself.
_ADDRESS = re.compile(
    r"\b(?:message|note|notice|instructions?|attention|reminder)\s+(?:from [^.\n]{0,40}?\s+)?(?:to|for)\s+"
    r"(?:you,?\s+)?(?:the\s+|all\s+|any\s+)?(?:ai|llm|language model|automated|autonomous|assistant|agent)"
    r"|\b(?:dear|hey|hello|hi)\s+(?:ai|assistant|agent|chatbot|llm|model)\b"
    r"|\bif you are an? (?:ai|llm|language model|assistant|agent|bot)\b"
    r"|\bas an? (?:ai|language model|llm)(?: assistant| agent)?,? you\b",
    re.IGNORECASE,
)
# A task marker, then an imperative that acts on the world.
_IMPERATIVE = (
    r"(?:send|transfer|pay|wire|email|e-mail|mail|forward|delete|remove|erase|post|upload|share|invite|"
    r"visit|open|click|go to|navigate|download|make|book|reserve|say|tell|reply|create|change|update|add|"
    r"concatenate|give|grant|reset|run|execute|call|publish|write|copy|move|include|insert|append|"
    r"schedule|cancel)"
)
# The marker in capitals ("TODO:"), anywhere (AgentDojo puts it in a transaction subject); the verb in
# any case.
_TASK_MARKER = re.compile(
    rf"\b(?:TODO|TO-DO|TASK|ACTION REQUIRED|IMPORTANT!+|URGENT!*|NOTE TO SELF)\s*[:!-]?\s*"
    rf"(?i:(?:please\s+)?{_IMPERATIVE})\b"
)
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True, slots=True)
class Signal:
    """One thing the text does that data does not: `kind`, where it is, and whether it alone suffices."""

    kind: str  # spoofing / override / task-swap / addressed / task-marker / model-named / pattern
    start: int
    end: int
    text: str
    strong: bool


def _similar(word: str, choices: Sequence[str]) -> bool:
    word = word.lower()
    return word in choices or bool(difflib.get_close_matches(word, choices, n=1, cutoff=0.84))


def _overrides(text: str) -> Iterable[Signal]:
    """An override verb followed within five words by an instructions-like noun (misspellings too)."""
    words = list(_WORD.finditer(text))
    for k, w in enumerate(words):
        if not _similar(w.group(0), _OVERRIDE_VERBS):
            continue
        for nxt in words[k + 1 : k + 6]:
            if _similar(nxt.group(0), _OVERRIDE_OBJECTS):
                yield Signal("override", w.start(), nxt.end(), text[w.start() : nxt.end()], True)
                break


def detect(
    text: str, *, patterns: Sequence[re.Pattern[str]] = (), model_names: Iterable[str] = ()
) -> list[Signal]:
    """The signals of injected text in `text`, in order of position; empty for plain data."""
    out: list[Signal] = []
    for kind, rx in (
        ("spoofing", _SPOOF),
        ("spoofing", _ROLE_CAPS),
        ("task-swap", _TASK_SWAP),
        ("addressed", _ADDRESS),
    ):
        out += [Signal(kind, m.start(), m.end(), m.group(0), True) for m in rx.finditer(text)]
    out += list(_overrides(text))
    for m in _TASK_MARKER.finditer(text):
        out.append(Signal("task-marker", m.start(), m.end(), m.group(0), True))
    for rx in patterns:
        out += [Signal("pattern", m.start(), m.end(), m.group(0), True) for m in rx.finditer(text)]
    for name in {n for n in model_names if len(n) >= 4}:
        # The model named in data it reads ("to you, GPT-4") is weak alone: articles name models too.
        for m in re.finditer(rf"\b{re.escape(name)}\b", text, re.IGNORECASE):
            out.append(Signal("model-named", m.start(), m.end(), m.group(0), False))
    out.sort(key=lambda s: (s.start, not s.strong))
    return out


def is_injected(signals: Sequence[Signal]) -> bool:
    """One strong signal, or two weak ones."""
    return any(s.strong for s in signals) or len(signals) >= 2
