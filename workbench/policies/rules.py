"""The rule model: what a policy rule is, what it sees of a trace, and how it reports a finding.

A rule sees one whole trace at a time (taint chains and retry loops span steps), as a `TraceView`: the
steps in time order with what each tool call does (`actions.classify`) computed once. A rule yields
`Finding`s whose evidence is a character range of a field of the step the finding is on, so the UI can
highlight exactly the words that made it fire.

User rules are subclasses of `Rule` in a Python file named by the `rules_path` setting; they get the same
YAML configuration (enabled, severity, and the options they declare in `options`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

from workbench.model import Finding, Severity, StepKind, StoredStep
from workbench.policies.actions import Action, Evidence, classify
from workbench.policies.injected import detect, is_injected
from workbench.policies.intent import Intent, judge, user_request

# Excerpts are the quoted evidence; a whole 1 MB tool result is not an excerpt.
MAX_EXCERPT = 500

# Words a person uses to approve; checked before the refusals below win.
_APPROVE = ("approved", "approve", "granted", "allow", "allowed", "yes", "ok", "confirmed", "accepted")
_REFUSE = ("denied", "deny", "rejected", "reject", "declined", "refused", "blocked", "no")


@dataclass
class TraceView:
    """One trace as the rules see it: steps in time order, with per-step facts computed once."""

    trace_id: str
    steps: list[StoredStep]
    # Tools whose results a rules file declares trusted (names or globs); every other result is untrusted.
    trusted_tools: tuple[str, ...] = ()
    _actions: dict[int, Action] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # The order the UI numbers steps in (start time, ties by ingest order): "step #4" in a finding's
        # text must be the step #4 an investigator sees in the replay, never the internal sequence number.
        self.steps.sort(key=lambda s: (s.step.start_time_ns, s.seq))

    def label(self, i: int) -> str:
        """How the UI names step i: "step #4" (1-based position in the trace's time order)."""
        return f"step #{i + 1}"

    def action(self, i: int) -> Action:
        """What step i does to the world (empty classes for steps that are not tool calls)."""
        if i not in self._actions:
            self._actions[i] = classify(self.steps[i].step)
        return self._actions[i]

    def untrusted(self, i: int) -> bool:
        """Does step i bring content nobody vouched for into the agent's context?

        Every tool result does unless the rules file lists the tool in `trusted_tools`: injections sit in
        hotel reviews, calendar entries, transaction subjects and channel messages, not only in tools
        named "fetch" or "email". Retrieved documents (memory steps) count too (rules may opt out).
        """
        step = self.steps[i].step
        if step.kind == StepKind.MEMORY:
            return bool(step.output_text)
        if step.kind != StepKind.TOOL or not (step.tool_result or step.output_text):
            return False
        name = (step.tool_name or step.name).lower()
        return not any(fnmatch.fnmatchcase(name, p.lower()) for p in self.trusted_tools)

    @cached_property
    def injected_steps(self) -> list[int]:
        """The untrusted steps whose content reads as injected text (`injected.py`), in order."""
        models = {s.step.model for s in self.steps if s.step.model and s.step.kind == StepKind.LLM}
        out = []
        for i, stored in enumerate(self.steps):
            if self.untrusted(i):
                step = stored.step
                text = step.tool_result or step.output_text or ""
                if is_injected(detect(text, model_names=models)):
                    out.append(i)
        return out

    def follows_injection(self, i: int) -> bool:
        """Did injected text enter the context before step i, with no human approval since?"""
        last_yes = max((k for k in range(i) if self.is_approval(k)), default=-1)
        return any(last_yes < k < i for k in self.injected_steps)

    @cached_property
    def request(self) -> str:
        """The user's own request: the first user input of the trace (see `intent.py`)."""
        return user_request([s.step for s in self.steps])

    def intent(self, i: int) -> Intent:
        """Whether the user's request asks for the action at step i (ASKED, KIND or UNASKED)."""
        intent = judge(self.steps[i].step, self.action(i).classes, self.request)
        # "Send it to them" after a page told the model whom to send to is not the user's request.
        if intent == Intent.KIND and self.follows_injection(i):
            return Intent.UNASKED
        return intent

    @cached_property
    def index_of(self) -> dict[int, int]:
        return {s.seq: i for i, s in enumerate(self.steps)}

    def decision_context(self, i: int) -> list[int]:
        """The model steps (LLM calls, reasoning) since the previous tool call: what decided step i."""
        out = []
        j = i - 1
        while j >= 0:
            kind = self.steps[j].step.kind
            if kind == StepKind.TOOL:
                break
            if kind in (StepKind.LLM, StepKind.REASONING, StepKind.PLAN):
                out.append(j)
            j -= 1
        return out[::-1]

    def is_approval(self, i: int) -> bool:
        """A human step that said yes (a person in the loop approved what follows)."""
        step = self.steps[i].step
        if step.kind != StepKind.HUMAN:
            return False
        return approval_decision(" ".join(t for t in (step.output_text, step.tool_result) if t)) is True


def approval_decision(text: str) -> bool | None:
    """True for an approval, False for a refusal, None when the text says neither."""
    words = re.findall(r"[a-z]+", text.lower())
    m = re.search(r"decision\s*[:=]\s*([a-z]+)", text.lower())
    if m:
        words = [m.group(1)]
    for w in words:
        if w in _REFUSE:
            return False
        if w in _APPROVE:
            return True
    return None


def field_text(stored: StoredStep, name: str) -> str:
    value = getattr(stored.step, name, None)
    return "" if value is None else str(value)


class Rule:
    """Base of every policy rule. Subclasses set the class attributes and implement `evaluate`.

    Contract: `evaluate` is pure (no I/O), may be called from any thread, and yields findings only for
    steps of the trace it was given. An exception in one rule is reported and the other rules still run.
    `options` declares every configurable key with its default; the YAML may set only those keys, with
    a value of the default's type.
    """

    id: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    rationale: ClassVar[str]
    default_severity: ClassVar[Severity]
    options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, severity: Severity | None = None, **options: Any) -> None:
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(
                f"rule {self.id}: unknown option(s) {sorted(unknown)}; known: {sorted(self.options)}"
            )
        self.severity = severity or self.default_severity
        self.opts: dict[str, Any] = {**self.options, **options}

    def evaluate(self, trace: TraceView) -> Iterable[Finding]:
        raise NotImplementedError

    def finding(
        self,
        trace: TraceView,
        i: int,
        *,
        title: str,
        explanation: str,
        evidence: Evidence | None,
        severity: Severity | None = None,
        chain: Iterable[int] = (),
        details: dict[str, Any] | None = None,
    ) -> Finding:
        """A finding on step i, quoting `evidence` (a range of one of that step's fields)."""
        stored = trace.steps[i]
        excerpt = None
        if evidence is not None:
            excerpt = evidence.text
            if len(excerpt) > MAX_EXCERPT:
                excerpt = excerpt[:MAX_EXCERPT] + "…"
        extra = dict(details or {})
        if evidence is not None and evidence.reason:
            extra.setdefault("reason", evidence.reason)
        return Finding(
            trace_id=trace.trace_id,
            step_seq=stored.seq,
            span_id=stored.step.span_id,
            rule_id=self.id,
            severity=severity or self.severity,
            title=title,
            explanation=explanation,
            evidence_field=evidence.field if evidence else None,
            evidence_start=evidence.start if evidence else None,
            evidence_end=evidence.end if evidence else None,
            evidence_excerpt=excerpt,
            taint_chain=tuple(chain),
            details=extra,
        )


def lower_severity(severity: Severity, steps: int = 1) -> Severity:
    """`Severity.lowered`, kept under this name for user rules written against it."""
    return severity.lowered(steps)


def raise_severity(severity: Severity, steps: int = 1) -> Severity:
    """`Severity.raised`, kept under this name for user rules written against it."""
    return severity.raised(steps)
