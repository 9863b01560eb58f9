"""Loops and cost: repeated identical calls or errors, and reasoning that costs more than its budget.

Part of the built-in rules; `builtin/__init__.py` lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from workbench.model import Finding, Severity, StepKind
from workbench.policies.actions import Evidence
from workbench.policies.rules import Rule, TraceView

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
                            explanation="Identical calls at "
                            + ", ".join(trace.label(k) for k in seen)
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
                        explanation="Identical errors at "
                        + ", ".join(trace.label(k) for k in seen)
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
