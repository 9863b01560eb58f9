"""Untrusted content: injection markers in what tools bring back, and taint chains from that
content into later actions. Together because both decide what counts as a source.

Part of the built-in rules; `builtin/__init__.py` lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from workbench.model import Finding, Severity, StepKind
from workbench.policies.actions import CREDENTIAL, DELETE, PAYMENT, SEND, WRITE, Evidence
from workbench.policies.chains import Link, escalation, forbidding_sentence, links_json
from workbench.policies.injected import detect, is_injected
from workbench.policies.intent import Intent
from workbench.policies.rules import Rule, TraceView, field_text

_WORD = re.compile(r"[a-z0-9]+")


def _content_field(trace: TraceView, i: int) -> str:
    """Where a step keeps what it brought back: the tool result, else its output."""
    step = trace.steps[i].step
    return "tool_result" if step.tool_result else "output_text"


# --- untrusted content ----------------------------------------------------------------------------


def is_source(trace: TraceView, i: int, retrieval: bool = True) -> bool:
    """Does step i bring untrusted content into the agent's context? Every tool result does unless the
    rules file declares its tool trusted (`TraceView.untrusted`); retrieved documents unless opted out."""
    if trace.steps[i].step.kind == StepKind.MEMORY and not retrieval:
        return False
    return trace.untrusted(i)


def model_names(trace: TraceView) -> set[str]:
    """The models the trace calls: data that names them ("to you, GPT-4") is addressed to the model."""
    return {s.step.model for s in trace.steps if s.step.model and s.step.kind == StepKind.LLM}


_INJECTION_PATTERNS = [
    r"ignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier|your) "
    r"(?:instructions|messages|prompts?|rules)",
    r"disregard (?:all |any )?(?:the )?(?:previous|prior|above|your) "
    r"(?:instructions|rules|guidelines|prompt)",
    r"(?:important |urgent )?(?:notice|message|instructions?|note|attention) (?:for|to) (?:all )?(?:ai|llm|"
    r"language model|automated|autonomous)[\w -]{0,30}?(?:assistants?|agents?|models?|systems?|bots?)",
    r"\byou are now (?:a|an|in|the)\b",
    r"do not (?:mention|tell|reveal|disclose|inform|let)[^.]{0,60}?\b(?:user|customer|human|anyone|them)\b",
    r"(?:new|updated|real|actual) (?:system )?instructions?:",
    r"<\|im_start\|>|<\|system\|>|\[/?INST\]|</?system>|BEGIN SYSTEM PROMPT",
    r"\b(?:assistants?|agents?|ai|llms?)\b[^.]{0,60}?\bmust\b[^.]{0,80}?\b(?:upload|send|post|forward|email|"
    r"transfer|delete|run|execute|call|reveal)\b",
    r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0",
    r"[\u200b\u200c\u200d\u2060\ufeff]{3,}",
]


class PromptInjection(Rule):
    id = "prompt-injection"
    title = "Prompt-injection markers in fetched or retrieved content"
    description = (
        "Text in a web page, e-mail or retrieved document that addresses the AI itself: instructions for "
        "assistants, 'ignore previous instructions', requests to hide something from the user, role "
        "tokens, hidden text."
    )
    rationale = (
        "Content an agent reads is data, not instructions; text written to steer the model is the start of "
        "most agent compromises, whether or not the agent obeyed it."
    )
    default_severity = Severity.HIGH
    options = {
        "patterns": _INJECTION_PATTERNS,
        "retrieval_is_source": True,
    }

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        compiled = [re.compile(p, re.IGNORECASE) for p in self.opts["patterns"]]
        models = model_names(trace)
        for i, stored in enumerate(trace.steps):
            if not is_source(trace, i, self.opts["retrieval_is_source"]):
                continue
            name = _content_field(trace, i)
            text = field_text(stored, name)
            signals = detect(text, patterns=compiled, model_names=models)
            if not is_injected(signals):
                continue
            first = next(s for s in signals if s.strong or len(signals) >= 2)
            start, end, quote = first.start, first.end, first.text
            hits = [(s.start, s.end, s.text) for s in signals]
            yield self.finding(
                trace,
                i,
                title="Instructions aimed at the AI in content from "
                + (stored.step.tool_name or stored.step.name),
                explanation=(
                    f"The content {trace.label(i)} brought back contains {len(hits)} sign(s) of text written "
                    f"to steer an AI agent ({', '.join(sorted({s.kind for s in signals}))}); anything the "
                    "agent did after reading it may follow the attacker."
                ),
                evidence=Evidence(name, start, end, quote, f"injected text ({first.kind})"),
                details={
                    "markers": [
                        {"start": s.start, "end": s.end, "text": s.text[:200], "kind": s.kind}
                        for s in signals[:50]
                    ]
                },
            )


# --- taint chains ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"https?://[^\s\"'<>\\]+|[A-Za-z0-9][\w.+@:/-]*[A-Za-z0-9]")
# A candidate (one per line) holding a digit or one of _ . / @ : (\d: Unicode decimal digits).
_MARKED = re.compile(r"^[^\n]*[\d_./@:][^\n]*$", re.MULTILINE)


def distinctive_tokens(text: str) -> set[str]:
    r"""Identifiers that can carry taint: URLs, hosts, e-mails, paths, ids (with a digit or _ . / @ :).

    The scanner runs this over every step's text, so the work is done in C: the distinct matches of
    six characters or more go through one regex as lines, and only the non-ASCII ones (rare) get a
    per-token `str.isdigit` test, which admits digits (superscripts, say) that `\d` does not. Only a
    URL can end in . , : or ; and its "scheme://" keeps it long and marked after the strip.
    """
    long = [t for t in set(_TOKEN.findall(text)) if len(t) >= 6]
    joined = "\n".join(long)
    out = {t.rstrip(".,:;") for t in _MARKED.findall(joined)}
    if not joined.isascii():
        out.update(t.rstrip(".,:;") for t in long if not t.isascii() and any(c.isdigit() for c in t))
    return out


def _add_known(known: set[str], seen_lines: set[str], texts: Iterable[str]) -> None:
    """known |= distinctive_tokens of each text, one line at a time, skipping lines seen before.

    Exact: no token crosses a line break (both alternatives of _TOKEN exclude whitespace), so a text's
    tokens are the union of its lines' tokens, and a line seen before added its tokens already. Why: an
    LLM step's input repeats the whole conversation so far, so without this a trace's scan costs the
    square of its length in regex work (two thirds of the scanner's time on chat traces).
    """
    for text in texts:
        for line in text.split("\n"):
            if line not in seen_lines:
                seen_lines.add(line)
                known |= distinctive_tokens(line)


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[k : k + n]) for k in range(len(words) - n + 1)}


def _own_words(trace: TraceView, i: int) -> str:
    """What the model itself wrote at step i (reasoning and output), not what it was fed."""
    step = trace.steps[i].step
    return "\n".join(t for t in (step.reasoning_text, step.output_text) if t)


def _known_texts(trace: TraceView, i: int) -> Iterator[str]:
    """Everything step i read or wrote: identifiers in it are known from then on, not taint."""
    step = trace.steps[i].step
    for t in (step.input_text, step.output_text, step.reasoning_text, step.tool_arguments, step.tool_result):
        if t:
            yield t


_MODEL_KINDS = (StepKind.LLM, StepKind.REASONING, StepKind.PLAN, StepKind.AGENT)


class TaintChain(Rule):
    id = "taint-chain"
    title = "Untrusted content or a worked-around failure led to a consequential action"
    description = (
        "Content a tool brought back (any tool the rules file does not declare trusted, and retrieved "
        "documents) flows, by identifiers first seen in it or passages the model repeats from it, through "
        "the model's reasoning into a call that deletes, sends, pays, obtains credentials or writes, with "
        "no human approval in between; or a call failed and the agent retried it after obtaining a "
        "credential or switching a guardrail off. The chain lists the steps from the cause to the action; "
        "retrieved text that forbade the action is listed as ignored guidance, never as the cause."
    )
    rationale = (
        "Indirect prompt injection and poisoned retrieval act through this path, and so does an agent that "
        "escalates past a refusal; the chain shows which cause steered which action."
    )
    default_severity = Severity.HIGH
    options = {
        "retrieval_is_source": True,
        "action_classes": [DELETE, SEND, PAYMENT, CREDENTIAL, WRITE],
        "min_shared_passages": 2,
        "write_severity": "medium",
        "injection_patterns": _INJECTION_PATTERNS,
        "window_steps": 500,
    }

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        # One pass with inverted indexes (identifier -> source, passage -> sources), so a step costs the
        # size of its own text, not the number of sources before it: traces run to 100,000 steps.
        classes = set(self.opts["action_classes"])
        min_shared = int(self.opts["min_shared_passages"])
        window = int(self.opts["window_steps"])
        injection = [re.compile(p, re.IGNORECASE) for p in self.opts["injection_patterns"]]
        models = model_names(trace)
        known_tokens: set[str] = set(distinctive_tokens(trace.request))
        seen_lines: set[str] = set()  # lines whose identifiers are in known_tokens already
        # Texts read or written so far whose identifiers are not yet in known_tokens: they are only
        # needed at a source step, so a trace with no source (or none yet) never tokenizes them.
        unread: list[str] = []
        tok_src: dict[str, int] = {}  # identifier -> the source step that introduced it
        sh_src: dict[tuple[str, ...], list[int]] = {}  # 5-word passage -> source steps holding it
        marked: dict[int, bool] = {}
        carriers: dict[int, list[int]] = {}  # source -> model steps that repeat it, in order
        carried_by: dict[int, set[int]] = {}  # model step -> the sources it repeats
        last_approval = -1
        for i, stored in enumerate(trace.steps):
            step = stored.step
            if trace.is_approval(i):
                last_approval = i  # a person approved: what came before is sanitized

            def live(s: int, i: int = i, last: int = last_approval) -> bool:
                return s > last and i - s <= window

            def hits(text: str, live: Any = live) -> tuple[dict[int, list[str]], set[int]]:
                direct: dict[int, list[str]] = {}
                for t in distinctive_tokens(text):
                    s = tok_src.get(t)
                    if s is not None and live(s):
                        direct.setdefault(s, []).append(t)
                counts: dict[int, int] = {}
                for sh in shingles(text):
                    for s in sh_src.get(sh, ()):
                        counts[s] = counts.get(s, 0) + 1
                return direct, {s for s, n in counts.items() if n >= min_shared and live(s)}

            # 1. does this step repeat an earlier source?
            own = _own_words(trace, i)
            # (no source yet: nothing to repeat, so hits() would find nothing)
            if own and (tok_src or sh_src) and step.kind in _MODEL_KINDS:
                direct, passages = hits(own)
                for s in set(direct) | passages:
                    carriers.setdefault(s, []).append(i)
                    carried_by.setdefault(i, set()).add(s)
            # 2. a consequential action: caused by a failure it works around, or by untrusted content its
            # arguments or its deciding steps carry
            hit = classes & trace.action(i).classes
            if hit and step.kind == StepKind.TOOL:
                finding = self._escalation_finding(trace, i, hit, window, last_approval)
                if finding is None and (tok_src or sh_src):
                    direct, passages = hits(step.tool_arguments or "")
                    via = {s for c in trace.decision_context(i) for s in carried_by.get(c, ()) if live(s)}
                    finding = self._taint_finding(
                        trace, i, set(direct) | passages | via, hit, direct, marked, carriers
                    )
                if finding is not None:
                    yield finding
            # 3. is this step itself a source? (after the checks: a step does not taint itself)
            if is_source(trace, i, self.opts["retrieval_is_source"]):
                content = field_text(stored, _content_field(trace, i))
                _add_known(known_tokens, seen_lines, unread)
                unread.clear()
                for t in distinctive_tokens(content) - known_tokens:
                    tok_src.setdefault(t, i)
                for sh in shingles(content):
                    holders = sh_src.setdefault(sh, [])
                    holders[:] = [h for h in holders if i - h <= window]
                    holders.append(i)
                marked[i] = is_injected(detect(content, patterns=injection, model_names=models))
            unread.extend(_known_texts(trace, i))

    def _escalation_finding(
        self, trace: TraceView, i: int, hit: set[str], window: int, last_approval: int
    ) -> Finding | None:
        links = escalation(trace, i, window)
        if not links or links[0].index <= last_approval:
            return None
        step = trace.steps[i].step
        fail = links[0].index
        how = [x.role for x in links[1:-1] if x.role in ("credential", "bypass")]
        return self.finding(
            trace,
            i,
            title=f"{step.tool_name} ({', '.join(sorted(hit))}) retried past the failure at "
            + trace.label(fail),
            explanation=(
                f"{trace.label(fail).capitalize()} failed ({(trace.steps[fail].step.error or '')[:120]}); "
                f"the agent then went around it ({', '.join(dict.fromkeys(how)) or 'bypass flag'}) and "
                f"retried at {trace.label(i)}, with no human approval in between."
                + self._guidance_note(trace, i, fail)
            ),
            evidence=_action_evidence(trace, i, []),
            chain=[trace.steps[x.index].seq for x in links],
            details={
                "cause": "failure",
                "source_seq": trace.steps[fail].seq,
                "source_step": fail + 1,
                "shared_identifiers": [],
                "links": links_json(trace, links),
                "ignored_guidance": self._guidance(trace, i, fail),
            },
        )

    def _guidance(self, trace: TraceView, i: int, before: int) -> list[dict[str, object]]:
        """Untrusted or retrieved text before `before` that forbade what step i does: read and ignored."""
        action_text = _what_it_does(trace, i)
        out: list[dict[str, object]] = []
        for k in range(before):
            if is_source(trace, k, self.opts["retrieval_is_source"]):
                sentence = forbidding_sentence(
                    field_text(trace.steps[k], _content_field(trace, k)), action_text
                )
                if sentence:
                    out.append({"seq": trace.steps[k].seq, "step": k + 1, "quote": sentence[:300]})
        return out

    def _guidance_note(self, trace: TraceView, i: int, before: int) -> str:
        ignored = self._guidance(trace, i, before)
        if not ignored:
            return ""
        return f' Guidance at step #{ignored[0]["step"]} forbade it: "{ignored[0]["quote"]}"'

    def _taint_finding(
        self,
        trace: TraceView,
        i: int,
        candidates: set[int],
        hit: set[str],
        direct: dict[int, list[str]],
        marked: dict[int, bool],
        carriers: dict[int, list[int]],
    ) -> Finding | None:
        action_text = _what_it_does(trace, i)
        forbidding = {
            s for s in candidates
            if not marked[s]
            and forbidding_sentence(field_text(trace.steps[s], _content_field(trace, s)), action_text)
        }  # fmt: skip
        causes = candidates - forbidding
        if not causes:
            return None
        s_i = min(causes, key=lambda s: (not marked[s], s))
        intent = trace.intent(i)
        if not marked[s_i] and intent != Intent.UNASKED:
            # The user asked for this kind of action and the data only filled in the details (the bill's
            # IBAN, the files a listing showed): that is the task, not a chain to investigate.
            return None
        severity = self.severity if marked[s_i] or hit - {WRITE} else Severity(self.opts["write_severity"])
        ids = sorted(direct.get(s_i, []))
        step = trace.steps[i].step
        src = trace.steps[s_i].step
        mid = [c for c in carriers.get(s_i, []) if s_i < c < i][-20:]
        links = [Link(s_i, "untrusted input"), *(Link(c, "reasoning") for c in mid), Link(i, "action")]
        ignored = [
            {"seq": trace.steps[k].seq, "step": k + 1, "quote": (forbidding_sentence(
                field_text(trace.steps[k], _content_field(trace, k)), action_text) or "")[:300]}
            for k in sorted(forbidding)
        ]  # fmt: skip
        return self.finding(
            trace,
            i,
            title=f"{step.tool_name} ({', '.join(sorted(hit))}) steered by content from "
            + (src.tool_name or src.name),
            explanation=(
                f"{trace.label(s_i).capitalize()} brought untrusted content ({src.tool_name or src.name})"
                + (" with prompt-injection markers" if marked[s_i] else "")
                + (
                    f"; its identifiers {', '.join(ids[:3])} appear in this call"
                    if ids
                    else "; the model repeated it before deciding this call"
                )
                + ", with no human approval in between"
                + ("; the user's request does not ask for this" if intent == Intent.UNASKED else "")
                + "."
            ),
            evidence=_action_evidence(trace, i, ids),
            severity=severity,
            chain=[trace.steps[x.index].seq for x in links],
            details={
                "cause": "untrusted input",
                "source_seq": src_seq(trace, s_i),
                "source_step": s_i + 1,
                "shared_identifiers": ids[:20],
                "injection": marked[s_i],
                "intent": str(intent),
                "links": links_json(trace, links),
                "ignored_guidance": ignored,
            },
        )


def _what_it_does(trace: TraceView, i: int) -> str:
    """The words that make step i consequential (its action evidence, e.g. "DROP TABLE order_events")."""
    action = trace.action(i)
    return " ".join([e.text for e in action.evidence.values()] + [e.text for e in action.destructive])


def src_seq(trace: TraceView, i: int) -> int:
    return trace.steps[i].seq


def _action_evidence(trace: TraceView, i: int, identifiers: list[str]) -> Evidence | None:
    stored = trace.steps[i]
    action = trace.action(i)
    raw = stored.step.tool_arguments or ""
    # URLs and addresses name where data goes: the most telling identifier to quote.
    ranked = sorted(identifiers, key=lambda t: (not t.startswith("http"), "@" not in t, -len(t)))
    for tok in ranked:
        at = raw.find(tok)
        if at >= 0:
            return Evidence("tool_arguments", at, at + len(tok), tok, "identifier from the untrusted source")
    for cls in (DELETE, SEND, PAYMENT, CREDENTIAL, WRITE):
        if cls in action.evidence:
            return action.evidence[cls]
    return None
