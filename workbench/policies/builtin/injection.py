"""Untrusted content: injection markers in what tools bring back, and taint chains from that
content into later actions. Together because both decide what counts as a source.

Part of the built-in rules; `builtin/__init__.py` lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from workbench.model import Finding, Severity, StepKind
from workbench.policies.actions import CREDENTIAL, DELETE, PAYMENT, SEND, WRITE, Evidence, name_words
from workbench.policies.rules import Rule, TraceView, field_text

_WORD = re.compile(r"[a-z0-9]+")


def _content_field(trace: TraceView, i: int) -> str:
    """Where a step keeps what it brought back: the tool result, else its output."""
    step = trace.steps[i].step
    return "tool_result" if step.tool_result else "output_text"


# --- untrusted content ----------------------------------------------------------------------------


def is_source(trace: TraceView, i: int, tool_words: Iterable[str], retrieval: bool) -> bool:
    """Does step i bring outside content into the agent's context (web page, e-mail, retrieved document)?"""
    step = trace.steps[i].step
    if step.kind == StepKind.MEMORY:
        return retrieval and bool(step.output_text)
    if step.kind != StepKind.TOOL or not (step.tool_result or step.output_text):
        return False
    words = name_words(step.tool_name or step.name)
    return bool(words & set(tool_words))


_SOURCE_TOOL_WORDS = [
    "fetch", "browse", "browser", "scrape", "crawl", "url", "web", "http", "page", "download",
    "email", "emails", "inbox", "mail", "message", "messages", "retrieve", "retriever", "rag", "docs",
    "document", "documents", "ticket", "rss",
]  # fmt: skip

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
        "source_tools": _SOURCE_TOOL_WORDS,
        "retrieval_is_source": True,
    }

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        compiled = [re.compile(p, re.IGNORECASE) for p in self.opts["patterns"]]
        for i, stored in enumerate(trace.steps):
            if not is_source(trace, i, self.opts["source_tools"], self.opts["retrieval_is_source"]):
                continue
            name = _content_field(trace, i)
            text = field_text(stored, name)
            hits = sorted((m.start(), m.end(), m.group(0)) for rx in compiled for m in rx.finditer(text))
            if not hits:
                continue
            start, end, quote = hits[0]
            yield self.finding(
                trace,
                i,
                title="Instructions aimed at the AI in content from "
                + (stored.step.tool_name or stored.step.name),
                explanation=(
                    f"The fetched/retrieved content contains {len(hits)} marker(s) of text written to steer "
                    "an AI agent; anything the agent did after reading it may follow the attacker."
                ),
                evidence=Evidence(name, start, end, quote, "injection marker"),
                details={"markers": [{"start": s, "end": e, "text": q[:200]} for s, e, q in hits[:50]]},
            )


# --- taint chains ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"https?://[^\s\"'<>\\]+|[A-Za-z0-9][\w.+@:/-]*[A-Za-z0-9]")


def distinctive_tokens(text: str) -> set[str]:
    """Identifiers that can carry taint: URLs, hosts, e-mails, paths, ids (with a digit or _ . / @ :)."""
    out = set()
    for m in _TOKEN.finditer(text):
        tok = m.group(0).rstrip(".,:;")
        if len(tok) >= 6 and (any(c.isdigit() for c in tok) or any(c in tok for c in "_./@:")):
            out.add(tok)
    return out


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[k : k + n]) for k in range(len(words) - n + 1)}


def _own_words(trace: TraceView, i: int) -> str:
    """What the model itself wrote at step i (reasoning and output), not what it was fed."""
    step = trace.steps[i].step
    return "\n".join(t for t in (step.reasoning_text, step.output_text) if t)


def _known_text(trace: TraceView, i: int) -> str:
    step = trace.steps[i].step
    return "\n".join(
        t
        for t in (
            step.input_text,
            step.output_text,
            step.reasoning_text,
            step.tool_arguments,
            step.tool_result,
        )
        if t
    )


class TaintChain(Rule):
    id = "taint-chain"
    title = "Untrusted content led to a consequential action"
    description = (
        "Content from a web page, e-mail or retrieved document flows (by identifiers such as URLs, hosts, "
        "addresses and ids first seen in it, or by passages the model repeats from it) through the model's "
        "reasoning into a tool call that deletes, sends, pays, obtains credentials or writes, with no human "
        "approval in between. The chain lists the steps from the source to the action."
    )
    rationale = (
        "Indirect prompt injection and poisoned retrieval act through this path; the chain shows which "
        "outside text steered which action."
    )
    default_severity = Severity.HIGH
    options = {
        "source_tools": _SOURCE_TOOL_WORDS,
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
        known_tokens: set[str] = set()
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
            if own and step.kind in (StepKind.LLM, StepKind.REASONING, StepKind.PLAN, StepKind.AGENT):
                direct, passages = hits(own)
                for s in set(direct) | passages:
                    carriers.setdefault(s, []).append(i)
                    carried_by.setdefault(i, set()).add(s)
            # 2. a consequential action: tainted when its arguments or its deciding steps carry a source
            hit = classes & trace.action(i).classes
            if hit and (tok_src or sh_src):
                direct, passages = hits(step.tool_arguments or "")
                via = {s for c in trace.decision_context(i) for s in carried_by.get(c, ()) if live(s)}
                candidates = set(direct) | passages | via
                if candidates:
                    s_i = min(candidates, key=lambda s: (not marked[s], s))
                    yield self._chain_finding(
                        trace, i, s_i, hit, sorted(direct.get(s_i, [])), marked[s_i], carriers
                    )
            # 3. is this step itself a source? (after the checks: a step does not taint itself)
            if is_source(trace, i, self.opts["source_tools"], self.opts["retrieval_is_source"]):
                content = field_text(stored, _content_field(trace, i))
                for t in distinctive_tokens(content) - known_tokens:
                    tok_src.setdefault(t, i)
                for sh in shingles(content):
                    holders = sh_src.setdefault(sh, [])
                    holders[:] = [h for h in holders if i - h <= window]
                    holders.append(i)
                marked[i] = any(rx.search(content) for rx in injection)
            known_tokens |= distinctive_tokens(_known_text(trace, i))

    def _chain_finding(
        self,
        trace: TraceView,
        i: int,
        s_i: int,
        hit: set[str],
        direct: list[str],
        marked: bool,
        carriers: dict[int, list[int]],
    ) -> Finding:
        step = trace.steps[i].step
        chain_mid = [c for c in carriers.get(s_i, []) if c < i][-20:]
        chain = [trace.steps[k].seq for k in [s_i, *chain_mid, i]]
        severe = marked or bool(hit - {WRITE})
        src = trace.steps[s_i].step
        return self.finding(
            trace,
            i,
            title=f"{step.tool_name} ({', '.join(sorted(hit))}) steered by content from "
            + (src.tool_name or src.name),
            explanation=(
                f"{trace.label(s_i).capitalize()} brought outside content ({src.tool_name or src.name})"
                + (" with prompt-injection markers" if marked else "")
                + (
                    f"; its identifiers {', '.join(direct[:3])} appear in this call"
                    if direct
                    else "; the model repeated it before deciding this call"
                )
                + ", with no human approval in between."
            ),
            evidence=_action_evidence(trace, i, direct),
            severity=self.severity if severe else Severity(self.opts["write_severity"]),
            chain=chain,
            details={
                "source_seq": trace.steps[s_i].seq,
                "source_step": s_i + 1,
                "shared_identifiers": direct[:20],
            },
        )


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
