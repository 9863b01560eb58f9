"""Egress: data sent to hosts outside the allow-list, worse when it carries sensitive values.

Part of the built-in rules; `builtin/__init__.py` lists them all.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator

from workbench.model import Finding, Severity
from workbench.policies.actions import SEND
from workbench.policies.intent import Intent
from workbench.policies.rules import Rule, TraceView
from workbench.sensitive import find_sensitive

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
        "asked_severity": "low",  # the user's own request names the destination
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
            elif trace.intent(i) == Intent.ASKED:
                severity = Severity(self.opts["asked_severity"])
                note = " The user's request names this destination."
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
