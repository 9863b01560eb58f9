"""Sensitive data: secrets and personal data that reached a tool's arguments or results.

Part of the built-in rules; `builtin/__init__.py` lists them all.
"""

from __future__ import annotations

from collections.abc import Iterator

from workbench.model import Finding, Severity, StepKind
from workbench.policies.actions import Evidence
from workbench.policies.intent import Intent
from workbench.policies.rules import Rule, TraceView, field_text
from workbench.sensitive import find_sensitive

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
        # Personal data a tool read, or sent where the user's request says it should go, is the task:
        # high is for flows the user did not ask for.
        "read_severity": "medium",
        "asked_severity": "low",
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
                if not secrets and severity.rank > Severity(self.opts["few_severity"]).rank:
                    severity = self._by_intent(trace, i, name, severity)
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

    def _by_intent(self, trace: TraceView, i: int, name: str, severity: Severity) -> Severity:
        """Personal data read, or flowing where the user asked, is not a high finding."""
        action = trace.action(i)
        if name != "tool_arguments" or not action.consequential:
            return min(severity, Severity(self.opts["read_severity"]), key=lambda s: s.rank)
        if trace.intent(i) == Intent.ASKED:
            return Severity(self.opts["asked_severity"])
        if trace.intent(i) == Intent.KIND:
            return min(severity, Severity(self.opts["read_severity"]), key=lambda s: s.rank)
        return severity
