"""Destructive actions: tool calls that destroy data or infrastructure.

Part of the built-in rules; `builtin/__init__.py` lists them all.
"""

from __future__ import annotations

from collections.abc import Iterator

from workbench.model import Finding, Severity
from workbench.policies.rules import Rule, TraceView

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
            severity = self.severity.lowered() if failed else self.severity
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
