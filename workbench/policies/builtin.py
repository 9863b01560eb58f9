"""The built-in policy rules. Each says what it looks for, why it matters, and quotes its evidence.

Thresholds, allow-lists and patterns are options with defaults here; `default_rules.yaml` shows them all
and a user's rules file overrides them (see `config.py`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator
from typing import Any

from workbench.model import Finding, Severity, StepKind
from workbench.policies.actions import CREDENTIAL, DELETE, PAYMENT, SEND, WRITE, Evidence, name_words
from workbench.policies.rules import Rule, TraceView, approval_decision, field_text, lower_severity
from workbench.sensitive import find_sensitive

_WORD = re.compile(r"[a-z0-9]+")


def _content_field(trace: TraceView, i: int) -> str:
    """Where a step keeps what it brought back: the tool result, else its output."""
    step = trace.steps[i].step
    return "tool_result" if step.tool_result else "output_text"


# --- destructive actions --------------------------------------------------------------------------


class DestructiveAction(Rule):
    id = "destructive-action"
    title = "Destructive action"
    description = (
        "A tool call that destroys data or infrastructure: shell rm -rf, SQL DROP / TRUNCATE / DELETE or "
        "UPDATE without WHERE, file deletes, cloud resource deletions, HTTP DELETE."
    )
    rationale = (
        "Irreversible actions are where an agent's mistake becomes an incident; an investigator starts here."
    )
    default_severity = Severity.CRITICAL
    options = {"failed_attempts": True}

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        for i, stored in enumerate(trace.steps):
            action = trace.action(i)
            if not action.destructive:
                continue
            failed = stored.step.is_error
            if failed and not self.opts["failed_attempts"]:
                continue
            ev = action.destructive[0]
            severity = lower_severity(self.severity) if failed else self.severity
            what = f"{stored.step.tool_name or stored.step.name}: {ev.text[:120]}"
            yield self.finding(
                trace,
                i,
                title=("Attempted destructive action (failed): " if failed else "Destructive action: ")
                + what,
                explanation=ev.reason
                + (
                    f"; the call failed ({(stored.step.error or '')[:200]})"
                    if failed
                    else "; the call succeeded"
                ),
                evidence=ev,
                severity=severity,
                details={
                    "all": [{"start": e.start, "end": e.end, "reason": e.reason} for e in action.destructive]
                },
            )


# --- egress ---------------------------------------------------------------------------------------


def host_allowed(host: str, patterns: Iterable[str]) -> str | None:
    """The allow-list pattern that admits `host` (exact, glob, or a parent domain), or None."""
    host = host.lower().rstrip(".")
    for p in patterns:
        p = p.lower().strip()
        if not p:
            continue
        if fnmatch.fnmatchcase(host, p) or host == p or host.endswith("." + p.lstrip("*.")):
            return p
    return None


class EgressAllowlist(Rule):
    id = "egress-allowlist"
    title = "Data sent to a host not on the allow-list"
    description = (
        "A sending tool call (HTTP POST/PUT/PATCH, upload, webhook, e-mail) whose destination host or "
        "recipient domain is not on the allow-list."
    )
    rationale = (
        "Exfiltration needs a destination; an allow-list of where an agent may send data is the simplest "
        "control, and a send outside it is worth a look even when it was legitimate."
    )
    default_severity = Severity.HIGH
    options = {
        "allow_hosts": ["localhost", "127.0.0.1", "::1"],
        "approved_severity": "info",
        "sensitive_severity": "critical",
    }

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        approved = False
        for i, stored in enumerate(trace.steps):
            if trace.is_approval(i):
                approved = True
                continue
            action = trace.action(i)
            if SEND not in action.classes:
                continue
            outside = [(h, ev) for h, ev in action.hosts if not host_allowed(h, self.opts["allow_hosts"])]
            if not outside:
                approved = False
                continue
            host, ev = outside[0]
            sensitive = find_sensitive(stored.step.tool_arguments or "")
            severity = self.severity
            note = ""
            if approved:
                severity = Severity(self.opts["approved_severity"])
                note = " A person approved this send beforehand."
            elif sensitive:
                severity = Severity(self.opts["sensitive_severity"])
                kinds = sorted({m.kind for m in sensitive})
                note = f" The payload carries {len(sensitive)} sensitive value(s) ({', '.join(kinds)})."
            approved = False
            yield self.finding(
                trace,
                i,
                title=f"Send to {host}, not on the egress allow-list",
                explanation=f"{stored.step.tool_name} sends data to {host}, "
                "which no allow-list pattern admits." + note,
                evidence=ev,
                severity=severity,
                details={"hosts": sorted({h for h, _ in outside}), "sensitive_values": len(sensitive)},
            )


# --- sensitive data -------------------------------------------------------------------------------


class SensitiveData(Rule):
    id = "sensitive-data"
    title = "Secrets or personal data in a tool call"
    description = (
        "Credentials (detect-secrets' plugins), card numbers (Luhn), IBANs, e-mail addresses, phone numbers "
        "or IP addresses in a tool call's arguments or result."
    )
    rationale = (
        "What a tool receives or returns may be logged, cached or sent on; secrets there are leaked secrets, "
        "and personal data in bulk is a data-protection incident."
    )
    default_severity = Severity.HIGH
    options = {
        "fields": ["tool_arguments", "tool_result"],
        "kinds": ["secret", "card", "iban", "email", "phone", "ip"],
        "bulk_threshold": 10,
        "secret_severity": "critical",
        "few_severity": "low",
    }

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        for i, stored in enumerate(trace.steps):
            if stored.step.kind != StepKind.TOOL:
                continue
            for name in self.opts["fields"]:
                text = field_text(stored, name)
                if not text:
                    continue
                matches = find_sensitive(text, self.opts["kinds"])
                if not matches:
                    continue
                by_kind: dict[str, int] = {}
                for m in matches:
                    by_kind[m.kind] = by_kind.get(m.kind, 0) + 1
                secrets = [m for m in matches if m.kind == "secret"]
                financial = [m for m in matches if m.kind in ("card", "iban")]
                first = (secrets or financial or matches)[0]
                if secrets:
                    severity = Severity(self.opts["secret_severity"])
                elif financial or len(matches) >= self.opts["bulk_threshold"]:
                    severity = self.severity
                else:
                    severity = Severity(self.opts["few_severity"])
                summary = ", ".join(f"{n} {k}" for k, n in sorted(by_kind.items()))
                where = "arguments" if name == "tool_arguments" else "result"
                yield self.finding(
                    trace,
                    i,
                    title=f"{summary} in the {where} of {stored.step.tool_name or stored.step.name}",
                    explanation=f"The tool call's {where} contain {summary}; first: {first.rule}.",
                    evidence=Evidence(
                        name, first.start, first.end, text[first.start : first.end], first.rule
                    ),
                    severity=severity,
                    details={
                        "counts": by_kind,
                        "matches": [
                            {"kind": m.kind, "rule": m.rule, "start": m.start, "end": m.end}
                            for m in matches[:200]
                        ],
                    },
                )


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
                f"Step {trace.steps[s_i].seq} brought outside content ({src.tool_name or src.name})"
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
            details={"source_seq": trace.steps[s_i].seq, "shared_identifiers": direct[:20]},
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


# --- approval -------------------------------------------------------------------------------------

_ELEVATED = re.compile(
    r"\b(admin|administrator|root|superuser|owner|sudo|elevated|privileged)\b", re.IGNORECASE
)


def high_risk(trace: TraceView, i: int, classes: set[str]) -> Evidence | None:
    """Evidence that step i is a high-risk action in `classes` (credentials count only when elevated)."""
    action = trace.action(i)
    for cls in (DELETE, PAYMENT, SEND, CREDENTIAL, WRITE):
        if cls not in classes or cls not in action.classes:
            continue
        if cls == CREDENTIAL:
            raw = trace.steps[i].step.tool_arguments or ""
            m = _ELEVATED.search(raw)
            if not m:
                continue
            return Evidence("tool_arguments", m.start(), m.end(), m.group(0), "elevated credential")
        return action.evidence.get(cls)
    return None


class UnapprovedAction(Rule):
    id = "unapproved-action"
    title = "High-risk action without human approval"
    description = (
        "A destructive call, a send of data, a payment or an elevated credential with no human approval "
        "step before it (an approval covers the next high-risk action only)."
    )
    rationale = (
        "Human-in-the-loop is the control most policies require for irreversible or outward actions; its "
        "absence is the gap an auditor asks about."
    )
    default_severity = Severity.HIGH
    options = {"high_risk_classes": [DELETE, SEND, PAYMENT, CREDENTIAL]}

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        classes = set(self.opts["high_risk_classes"])
        approved = False
        for i, stored in enumerate(trace.steps):
            if trace.is_approval(i):
                approved = True
                continue
            ev = high_risk(trace, i, classes)
            if ev is None:
                continue
            if approved:
                approved = False
                continue
            failed = stored.step.is_error
            yield self.finding(
                trace,
                i,
                title=f"{stored.step.tool_name} without human approval" + (" (failed)" if failed else ""),
                explanation=f"{ev.reason or 'high-risk action'} with no human approval step before it"
                + ("; the call failed" if failed else "")
                + ".",
                evidence=ev,
                severity=lower_severity(self.severity) if failed else self.severity,
            )


# --- guardrails and privileges --------------------------------------------------------------------

_BYPASS_ARG = re.compile(
    r'"(?:skip|bypass|disable|no|ignore|override)_?(?:guardrails?|checks?|approval|verify|verification|safety|'
    r'confirm|confirmation|policy)"\s*:\s*(?:true|"true"|1)',
    re.IGNORECASE,
)
_BYPASS_DECISION = re.compile(
    r"decision\s*[:=]\s*(skipped|skip|bypass(?:ed)?|overrid(?:den|e)|disabled|ignored)", re.IGNORECASE
)
_LOOSE_PATTERN = re.compile(r"(?:pattern|rule|glob)\s*'(\*[^'*]+\*)'", re.IGNORECASE)


class GuardrailBypass(Rule):
    id = "guardrail-bypass"
    title = "Guardrail skipped, bypassed or loosely matched"
    description = (
        "A guardrail step that records a skip, bypass or override, a tool call that asks to skip its checks "
        "(skip_guardrail: true and the like), or a guardrail that allowed through a pattern wildcarded on "
        "both sides."
    )
    rationale = (
        "A guardrail the agent can switch off is not a control; a '*name*' pattern admits look-alike hosts."
    )
    default_severity = Severity.HIGH
    options = {"loose_pattern_severity": "medium"}

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        for i, stored in enumerate(trace.steps):
            step = stored.step
            if step.kind == StepKind.GUARDRAIL:
                text = step.output_text or ""
                m = _BYPASS_DECISION.search(text)
                if m:
                    yield self.finding(
                        trace,
                        i,
                        title=f"Guardrail {step.name} {m.group(1).lower()}",
                        explanation=f"The guardrail {step.name} did not check: {text[:200]}",
                        evidence=Evidence(
                            "output_text", m.start(), m.end(), m.group(0), "guardrail not applied"
                        ),
                    )
                    continue
                loose = _LOOSE_PATTERN.search(text)
                if loose and approval_decision(text) is True:
                    yield self.finding(
                        trace,
                        i,
                        title=f"Guardrail {step.name} allowed through the loose pattern {loose.group(1)}",
                        explanation=(
                            f"A pattern wildcarded on both sides ({loose.group(1)}) admits any name "
                            "containing the word, including look-alike domains an attacker can register."
                        ),
                        evidence=Evidence(
                            "output_text", loose.start(1), loose.end(1), loose.group(1), "loose pattern"
                        ),
                        severity=Severity(self.opts["loose_pattern_severity"]),
                    )
            elif step.tool_arguments:
                m = _BYPASS_ARG.search(step.tool_arguments)
                if m:
                    yield self.finding(
                        trace,
                        i,
                        title=f"{step.tool_name} called with its checks switched off",
                        explanation="The agent asked the tool to skip its guardrail or confirmation.",
                        evidence=Evidence("tool_arguments", m.start(), m.end(), m.group(0), "bypass flag"),
                    )


_PERMISSION = re.compile(
    r"permission denied|access denied|forbidden|unauthori[sz]ed|not authori[sz]ed|\b403\b|read-?only|"
    r"insufficient privileges|not allowed|PermissionError|AccessDenied",
    re.IGNORECASE,
)


class PrivilegeEscalation(Rule):
    id = "privilege-escalation"
    title = "Retried with elevated privileges after a permission error"
    description = (
        "After a call failed for lack of permission, the agent obtained or used an elevated role "
        "(admin, root, owner...) within the next steps."
    )
    rationale = (
        "A permission error is a boundary; an agent that escalates to get past it overrides that decision."
    )
    default_severity = Severity.HIGH
    options = {"window_steps": 10}

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        denied_at: int | None = None
        reported: set[str] = set()  # per denial: the credential obtained, the retry of the denied tool
        for i, stored in enumerate(trace.steps):
            step = stored.step
            if step.is_error and _PERMISSION.search(step.error or ""):
                denied_at = i
                reported = set()
                continue
            if denied_at is None or i - denied_at > self.opts["window_steps"] or not step.tool_arguments:
                continue
            err = trace.steps[denied_at].step
            what = "credential" if CREDENTIAL in trace.action(i).classes else "retry"
            if what == "retry" and step.tool_name != err.tool_name:
                continue
            m = _ELEVATED.search(step.tool_arguments)
            if m and step.kind == StepKind.TOOL and what not in reported:
                reported.add(what)
                yield self.finding(
                    trace,
                    i,
                    title=f"{step.tool_name} with role {m.group(0)} after a permission error",
                    explanation=f"Step {trace.steps[denied_at].seq} failed: {(err.error or '')[:160]}. "
                    f"This call then uses '{m.group(0)}'.",
                    evidence=Evidence("tool_arguments", m.start(), m.end(), m.group(0), "elevated role"),
                    chain=[trace.steps[denied_at].seq, stored.seq],
                )


# --- loops ----------------------------------------------------------------------------------------

_DIGITS = re.compile(r"\d+")


class RetryLoop(Rule):
    id = "retry-loop"
    title = "Retry loop or repeated identical errors"
    description = (
        "The same tool call or retrieval with identical arguments repeated, or the same error (numbers "
        "aside) raised again and again."
    )
    rationale = "Loops without progress burn money and time and often precede a desperate workaround."
    default_severity = Severity.MEDIUM
    options = {"min_identical_calls": 3, "min_identical_errors": 2}

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        calls: dict[tuple[str, str, str], list[int]] = {}
        errors: dict[str, list[int]] = {}
        for i, stored in enumerate(trace.steps):
            step = stored.step
            if step.kind in (StepKind.TOOL, StepKind.MEMORY):
                name, text = (
                    ("tool_arguments", step.tool_arguments)
                    if step.tool_arguments
                    else ("input_text", step.input_text)
                )
                if text:
                    key = (str(step.kind), step.tool_name or step.name, " ".join(text.split()))
                    seen = calls.setdefault(key, [])
                    seen.append(i)
                    if len(seen) == self.opts["min_identical_calls"]:
                        yield self.finding(
                            trace,
                            i,
                            title=f"{step.tool_name or step.name} called {len(seen)} times "
                            "with the same input",
                            explanation="Identical calls at steps "
                            + ", ".join(str(trace.steps[k].seq) for k in seen)
                            + ": the agent is looping without new information.",
                            evidence=Evidence(name, 0, len(text), text, "repeated input"),
                            details={"occurrences": [trace.steps[k].seq for k in seen]},
                        )
            if step.is_error and step.error:
                seen = errors.setdefault(_DIGITS.sub("#", step.error.strip()), [])
                seen.append(i)
                if len(seen) == self.opts["min_identical_errors"]:
                    yield self.finding(
                        trace,
                        i,
                        title=f"The same error {len(seen)} times: {step.error[:80]}",
                        explanation="Identical errors at steps "
                        + ", ".join(str(trace.steps[k].seq) for k in seen)
                        + ": retrying did not change the outcome.",
                        evidence=Evidence("error", 0, len(step.error), step.error, "repeated error"),
                        details={"occurrences": [trace.steps[k].seq for k in seen]},
                    )


# --- cost -----------------------------------------------------------------------------------------


class ReasoningCost(Rule):
    id = "reasoning-cost"
    title = "Reasoning-cost overrun"
    description = (
        "A model call whose reasoning tokens exceed a limit or dwarf its visible output, or a trace whose "
        "total reasoning tokens or cost pass a budget (reported on the step that crossed it)."
    )
    rationale = (
        "Hidden reasoning is billed like output; runaway thinking is a cost incident and a sign of confusion."
    )
    default_severity = Severity.MEDIUM
    options = {
        "step_max_reasoning_tokens": 8000,
        "step_max_ratio": 25.0,
        "ratio_min_reasoning_tokens": 4000,
        "step_max_cost_usd": 1.0,
        "trace_max_reasoning_tokens": 50000,
        "trace_max_cost_usd": 5.0,
        "trace_severity": "high",
    }

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        o = self.opts
        total_tokens = 0
        total_cost = 0.0
        tokens_crossed = cost_crossed = False
        for i, stored in enumerate(trace.steps):
            step = stored.step
            if step.kind == StepKind.AGENT:
                continue  # agent spans repeat their children's totals
            rt = step.tokens_reasoning or 0
            out = step.tokens_out or 0
            visible = out - rt if out >= rt else out
            ratio = rt / max(visible, 1)
            reasons = []
            if rt >= o["step_max_reasoning_tokens"]:
                reasons.append(f"{rt:,} reasoning tokens (limit {o['step_max_reasoning_tokens']:,})")
            elif rt >= o["ratio_min_reasoning_tokens"] and ratio >= o["step_max_ratio"]:
                reasons.append(f"{rt:,} reasoning tokens for {visible:,} visible ({ratio:.0f}x)")
            if step.cost_usd is not None and step.cost_usd >= o["step_max_cost_usd"]:
                reasons.append(f"cost ${step.cost_usd:.2f} (limit ${o['step_max_cost_usd']:.2f})")
            if reasons:
                yield self.finding(
                    trace,
                    i,
                    title=f"Reasoning overrun on {step.model or step.name}: " + "; ".join(reasons),
                    explanation="This call spent "
                    + " and ".join(reasons)
                    + f"; visible output {visible:,} tokens.",
                    evidence=_number_evidence("tokens_reasoning", rt),
                    details={"tokens_reasoning": rt, "visible_tokens": visible, "ratio": round(ratio, 1)},
                )
            total_tokens += rt
            total_cost += step.cost_usd or 0.0
            if not tokens_crossed and total_tokens >= o["trace_max_reasoning_tokens"]:
                tokens_crossed = True
                yield self.finding(
                    trace,
                    i,
                    title=f"Trace reasoning budget passed: {total_tokens:,} tokens by this step",
                    explanation=f"The trace's reasoning tokens reached {total_tokens:,} here "
                    f"(budget {o['trace_max_reasoning_tokens']:,}).",
                    evidence=_number_evidence("tokens_reasoning", rt),
                    severity=Severity(o["trace_severity"]),
                    details={"trace_tokens_reasoning": total_tokens},
                )
            if not cost_crossed and total_cost >= o["trace_max_cost_usd"]:
                cost_crossed = True
                yield self.finding(
                    trace,
                    i,
                    title=f"Trace cost budget passed: ${total_cost:.2f} by this step",
                    explanation=f"The trace's cost reached ${total_cost:.2f} here "
                    f"(budget ${o['trace_max_cost_usd']:.2f}).",
                    evidence=_number_evidence("cost_usd", step.cost_usd or 0.0),
                    severity=Severity(o["trace_severity"]),
                    details={"trace_cost_usd": round(total_cost, 6)},
                )


def _number_evidence(name: str, value: Any) -> Evidence:
    text = str(value)
    return Evidence(name, 0, len(text), text, "")


# --- scratchpad vs action -------------------------------------------------------------------------

_READ_ONLY_INTENT = [
    r"\b(?:only|just|merely|simply) (?:going to |gonna |need to |want to )?"
    r"(?:list|read|look|check|inspect|view|ask|query|search|fetch|count|describe|review|show|peek|browse)\b",
    r"\b(?:read-only|inspection only|dry[- ]run|no changes|without (?:changing|modifying|deleting|writing|"
    r"touching|sending|removing))\b",
    r"\b(?:won't|will not|do not|don't|not going to|must not|never|shouldn't|should not) "
    r"(?P<verb>delete|drop|remove|modify|change|write|send|touch|alter|update|upload|erase)\b",
]
# A negated verb promises only about its own kind of action: "won't delete" says nothing about writing.
_VERB_CLASSES = {
    "delete": {DELETE}, "drop": {DELETE}, "remove": {DELETE}, "erase": {DELETE},
    "modify": {DELETE, WRITE}, "change": {DELETE, WRITE}, "write": {DELETE, WRITE}, "touch": {DELETE, WRITE},
    "alter": {DELETE, WRITE}, "update": {DELETE, WRITE}, "send": {SEND}, "upload": {SEND},
}  # fmt: skip


class ScratchpadMismatch(Rule):
    id = "scratchpad-mismatch"
    title = "Reasoning says read-only, the action changes things"
    description = (
        "The model's reasoning right before a call says it will only list, read or ask (or will not "
        "delete/change/send), and the call deletes, writes, sends or pays."
    )
    rationale = (
        "A scratchpad that disagrees with the action is either unfaithful reasoning or a hijacked step; "
        "either way the stated intent cannot be trusted as the explanation."
    )
    default_severity = Severity.HIGH
    options = {"intent_patterns": _READ_ONLY_INTENT, "action_classes": [DELETE, WRITE, SEND, PAYMENT]}

    def evaluate(self, trace: TraceView) -> Iterator[Finding]:
        patterns = [re.compile(p, re.IGNORECASE) for p in self.opts["intent_patterns"]]
        classes = set(self.opts["action_classes"])
        for i, stored in enumerate(trace.steps):
            action = trace.action(i)
            hit = classes & action.classes
            if not hit:
                continue
            for j in reversed(trace.decision_context(i)):
                text = trace.steps[j].step.reasoning_text or ""
                m = next((m for rx in patterns if (m := rx.search(text))), None)
                if m is None:
                    continue
                verb = m.groupdict().get("verb")
                promised = hit & _VERB_CLASSES.get(verb.lower(), hit) if verb else hit
                if not promised:
                    continue
                cls = next(c for c in (DELETE, PAYMENT, SEND, WRITE) if c in promised)
                ev = action.evidence.get(cls)
                yield self.finding(
                    trace,
                    i,
                    title=f"Said '{m.group(0)}', then {cls}: {stored.step.tool_name}",
                    explanation=(
                        f"The reasoning at step {trace.steps[j].seq} says \u201c{m.group(0)}\u201d, but this "
                        f"call {'deletes' if cls == DELETE else cls + 's'}."
                    ),
                    evidence=ev,
                    chain=[trace.steps[j].seq, stored.seq],
                    details={
                        "reasoning_seq": trace.steps[j].seq,
                        "reasoning_field": "reasoning_text",
                        "reasoning_start": m.start(),
                        "reasoning_end": m.end(),
                        "reasoning_excerpt": m.group(0),
                    },
                )
                break


BUILTIN_RULES: tuple[type[Rule], ...] = (
    DestructiveAction,
    EgressAllowlist,
    SensitiveData,
    PromptInjection,
    TaintChain,
    UnapprovedAction,
    GuardrailBypass,
    PrivilegeEscalation,
    RetryLoop,
    ReasoningCost,
    ScratchpadMismatch,
)
