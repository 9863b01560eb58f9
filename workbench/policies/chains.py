"""Causal chains as an investigator draws them: from a cause, through the reasoning, to the action.

Two kinds of cause lead to a consequential action:
- untrusted input (a tool result, a retrieved document) whose identifiers or passages the reasoning and
  the action's arguments repeat (`injection.TaintChain` finds those);
- a failure the agent worked around: the call failed, the agent obtained a credential or switched a
  guardrail off, and retried (`escalation` here).

Retrieved text that forbids the action ("Never DROP tables in production") is not what steered it, even
when the reasoning quotes it: it is guidance the agent read and ignored (`forbidding_sentence`), reported
beside the chain, never as its start.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from workbench.model import StepKind
from workbench.policies.actions import CREDENTIAL, Action
from workbench.policies.rules import TraceView

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_PROHIBITION = re.compile(
    r"\b(?:never|do not|don't|must not|mustn't|should not|shouldn't|may not|cannot|can't|forbidden|"
    r"prohibited|not allowed|not permitted|avoid|needs? (?:\w+ ){0,3}approval|"
    r"requires? (?:\w+ ){0,3}approval)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{2,}")
_STOP = frozenset(
    "the and for with from that this into your you are was were has have not any all its their them then "
    "true false null none role query".split()
)
_BYPASS = re.compile(
    r"\b(?:skip|bypass|disable|no|ignore|override)_?(?:guardrails?|checks?|approval|verify|safety)\b"
    r"|decision\s*[:=]\s*(?:skipped|skip|bypass(?:ed)?|overrid(?:den|e)|disabled|ignored)",
    re.IGNORECASE,
)


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)} - _STOP


def forbidding_sentence(source_text: str, action_text: str) -> str | None:
    """The sentence of `source_text` that forbids what `action_text` does (a prohibition that names one
    of the action's words, e.g. "Never DROP or TRUNCATE tables" for `DROP TABLE order_events`), or None.
    `action_text` is what makes the call consequential (its evidence), not all its arguments."""
    action_words = _words(action_text)
    for m in _SENTENCE.finditer(source_text):
        sentence = m.group(0).strip()
        if _PROHIBITION.search(sentence) and _words(sentence) & action_words:
            return sentence
    return None


def cited(a: str, b: str, min_words: int = 1) -> str | None:
    """The longest run of words `b` repeats from `a` (the quote that ties a reasoning step to its cause)."""
    wa, wb = [w.lower() for w in _WORD.findall(a)], [w.lower() for w in _WORD.findall(b)]
    if not wa or not wb:
        return None
    blocks = difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_matching_blocks()
    runs: list[list[str]] = [
        wa[m.a : m.a + m.size] for m in blocks if m.size >= min_words and set(wa[m.a : m.a + m.size]) - _STOP
    ]
    if not runs:
        return None
    best: list[str] = max(runs, key=len)
    return " ".join(best)


@dataclass(frozen=True)
class Link:
    """One step of a chain: its index in the trace, its part in the story, and the quote that ties it."""

    index: int
    role: str  # untrusted input / failure / reasoning / credential / bypass / action
    quote: str = ""


def escalation(trace: TraceView, i: int, window: int) -> list[Link]:
    """failure -> credential -> bypass -> action: step i retries a call that failed, after the agent
    obtained a credential or switched a guardrail off in between. Empty when step i is no such retry."""
    step = trace.steps[i].step
    for f in range(i - 1, max(-1, i - window - 1), -1):
        failed = trace.steps[f].step
        if not (failed.kind == StepKind.TOOL and failed.is_error and failed.tool_name == step.tool_name):
            continue
        links = [Link(f, "failure", (failed.error or "")[:200])]
        escalated = False
        for k in range(f + 1, i):
            s = trace.steps[k].step
            action: Action = trace.action(k)
            if s.kind in (StepKind.LLM, StepKind.REASONING, StepKind.PLAN):
                text = s.reasoning_text or s.output_text or ""
                quote = cited(failed.error or "", text) or cited(failed.tool_arguments or "", text)
                links.append(Link(k, "reasoning", quote or ""))
            elif s.kind == StepKind.TOOL and CREDENTIAL in action.classes:
                links.append(Link(k, "credential", (s.tool_arguments or "")[:200]))
                escalated = True
            elif s.kind == StepKind.GUARDRAIL and _BYPASS.search(s.output_text or ""):
                links.append(Link(k, "bypass", (s.output_text or "")[:200]))
                escalated = True
        if _BYPASS.search(step.tool_arguments or ""):
            escalated = True
        if escalated:
            return [*links, Link(i, "action", (step.tool_arguments or "")[:200])]
        return []
    return []


def links_json(trace: TraceView, links: list[Link]) -> list[dict[str, object]]:
    """The chain's steps for a finding's details: seq (the store's key), step (as the UI numbers it)."""
    return [
        {"seq": trace.steps[x.index].seq, "step": x.index + 1, "role": x.role, "quote": x.quote}
        for x in links
    ]
