"""The names our own SDK (`collectors/sdk/`) emits, and how its spans become steps.

The SDK follows the GenAI conventions wherever they have a word for something, and adds
`gen_ai.operation.name` values for the agent steps GenAI has no operation for (scratchpad reasoning,
plans, memory reads, guardrail decisions, human approvals). The SDK imports the constants below so
the emitting and the reading side cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import repeat
from typing import Any

from collectors.conventions.common import Draft, as_name, as_str, first, join_nonempty
from collectors.conventions.genai import GENAI_OPERATION_KINDS, map_genai
from workbench.model import SpanRecord, StepKind

# Instrumentation scope name the SDK's tracer uses.
SDK_SCOPE_NAME = "agent-audit-workbench"

# When present with a valid StepKind value, this attribute decides the step kind over everything else.
STEP_KIND_ATTRIBUTE = "workbench.step.kind"

# Scratchpad text of a step, as a plain string (the GenAI conventions carry it as `reasoning` message
# parts; the SDK also writes this flat attribute so a reasoning step needs no message JSON).
REASONING_CONTENT_ATTRIBUTE = "gen_ai.reasoning.content"

# Free text in and out of a non-LLM step (a plan, a memory lookup), when messages would be contrived.
INPUT_TEXT_ATTRIBUTE = "workbench.input.text"
OUTPUT_TEXT_ATTRIBUTE = "workbench.output.text"

# Outcome of a guardrail or a human approval ("allow" / "block", "approved" / "rejected") and why.
DECISION_ATTRIBUTE = "workbench.decision"
DECISION_REASON_ATTRIBUTE = "workbench.decision.reason"

# What a tool changed in the world (a table dropped, a file written, a request sent), in words: a result
# rarely says so, and what the agent did is an auditor's first question. Appended to the step's output.
SIDE_EFFECT_ATTRIBUTE = "workbench.tool.side_effect"

OPERATION_REASONING = "reasoning"
OPERATION_PLAN = "plan"
OPERATION_MEMORY = "memory"
OPERATION_RETRIEVAL = "retrieval"  # also a GenAI operation; mapped to memory either way
OPERATION_GUARDRAIL = "guardrail"
OPERATION_HUMAN_APPROVAL = "human_approval"
OPERATION_HUMAN = "human"

# gen_ai.operation.name values the SDK adds to the GenAI vocabulary, and the step kind of each.
SDK_OPERATION_KINDS: dict[str, StepKind] = {
    OPERATION_REASONING: StepKind.REASONING,
    OPERATION_PLAN: StepKind.PLAN,
    OPERATION_MEMORY: StepKind.MEMORY,
    OPERATION_RETRIEVAL: StepKind.MEMORY,
    OPERATION_GUARDRAIL: StepKind.GUARDRAIL,
    OPERATION_HUMAN_APPROVAL: StepKind.HUMAN,
    OPERATION_HUMAN: StepKind.HUMAN,
}

_STEP_KINDS = {k.value: k for k in StepKind}


def explicit_kind(attrs: Mapping[str, Any]) -> StepKind | None:
    value = as_name(attrs.get(STEP_KIND_ATTRIBUTE))
    return _STEP_KINDS.get(value.lower()) if value else None


def is_sdk(span: SpanRecord, attrs: Mapping[str, Any]) -> bool:
    """Ours when marked so: the explicit kind, our scope, a workbench.* attribute or an SDK-only operation."""
    if explicit_kind(attrs) is not None or as_str(span.scope_name) == SDK_SCOPE_NAME:
        return True
    operation = (as_name(attrs.get("gen_ai.operation.name")) or "").lower()
    if operation in SDK_OPERATION_KINDS and operation not in GENAI_OPERATION_KINDS:
        return True
    return any(map(str.startswith, attrs, repeat("workbench.")))  # in C: runs for every span


def map_sdk(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    draft.convention = "sdk"
    operation = (as_name(attrs.get("gen_ai.operation.name")) or "").lower()
    if operation in SDK_OPERATION_KINDS:
        draft.kind = SDK_OPERATION_KINDS[operation]
    map_genai(span, attrs, draft)
    kind = explicit_kind(attrs)
    if kind is not None:
        draft.kind = kind
    decision = as_name(attrs.get(DECISION_ATTRIBUTE))
    reason = as_str(attrs.get(DECISION_REASON_ATTRIBUTE))
    decision_text = f"decision: {decision}" + (f" ({reason})" if reason else "") if decision else None
    draft.fill(
        input_text=as_str(first(attrs, INPUT_TEXT_ATTRIBUTE)),
        output_text=join_nonempty([as_str(first(attrs, OUTPUT_TEXT_ATTRIBUTE)), decision_text]),
    )
    side_effect = as_str(first(attrs, SIDE_EFFECT_ATTRIBUTE))
    if side_effect:
        draft.output_text = join_nonempty([draft.output_text, f"side effect: {side_effect}"])
    if draft.kind is StepKind.REASONING and draft.reasoning_text is None:
        # A reasoning step's own output is its scratchpad.
        draft.reasoning_text = draft.output_text
