"""Our own SDK: small helpers for agent authors, on the real OpenTelemetry SDK and the GenAI conventions.

Framework instrumentations see model calls and tool calls; they do not see the agent's scratchpad, its
plan, what it recalled from memory, which guardrail let it through or who approved it. These helpers
record those as spans, each a context manager that yields a small handle:

    from collectors import sdk

    sdk.configure(endpoint="http://127.0.0.1:4318", service_name="ops-agent")
    with sdk.agent_run("ops-agent", task="free disk space") as run:
        with sdk.llm_call("o4-mini", provider="openai", messages="free disk space") as call:
            call.reasoning("The events table is the largest ...")
            call.usage(input_tokens=812, output_tokens=240, reasoning_tokens=198)
        with sdk.tool_call("run_sql", {"query": "DROP TABLE order_events"}, side_effect="drops a table"):
            ...
        run.finish("Freed 31 GB.")

The contract is opentelemetry-python's: recording never raises into the agent. An export failure stays
inside the span processor (logged there), and a value the helpers cannot serialize is recorded as its
`repr`. The agent's own exceptions pass through unchanged, after the span has recorded them.
Attribute names come from `collectors.conventions.sdk`, so what is emitted here is what the normalizer
reads.
"""

from __future__ import annotations

from collectors.sdk.handles import (
    APPROVER_ATTRIBUTE,
    BRANCH_CHOSEN_ATTRIBUTE,
    BRANCH_ID_ATTRIBUTE,
    BRANCH_SCORE_ATTRIBUTE,
    COST_ATTRIBUTE,
    GUARDRAIL_NAME_ATTRIBUTE,
    LINK_TYPE_ATTRIBUTE,
    PLAN_SUBTASKS_ATTRIBUTE,
    RETRY_ATTEMPT_ATTRIBUTE,
    SUBTASK_INDEX_ATTRIBUTE,
    AgentRun,
    Branch,
    Clock,
    Decision,
    LLMCall,
    MemoryRead,
    Plan,
    StepHandle,
    ToolCall,
    dumps,
    messages_json,
)
from collectors.sdk.provider import configure
from collectors.sdk.recorder import SDK_FORMAT_VERSION, Recorder

__all__ = [
    "APPROVER_ATTRIBUTE",
    "BRANCH_CHOSEN_ATTRIBUTE",
    "BRANCH_ID_ATTRIBUTE",
    "BRANCH_SCORE_ATTRIBUTE",
    "COST_ATTRIBUTE",
    "GUARDRAIL_NAME_ATTRIBUTE",
    "LINK_TYPE_ATTRIBUTE",
    "PLAN_SUBTASKS_ATTRIBUTE",
    "RETRY_ATTEMPT_ATTRIBUTE",
    "SDK_FORMAT_VERSION",
    "SUBTASK_INDEX_ATTRIBUTE",
    "AgentRun",
    "Branch",
    "Clock",
    "Decision",
    "LLMCall",
    "MemoryRead",
    "Plan",
    "Recorder",
    "StepHandle",
    "ToolCall",
    "agent",
    "agent_run",
    "branch",
    "configure",
    "dumps",
    "guardrail",
    "human_approval",
    "llm_call",
    "memory_read",
    "messages_json",
    "plan",
    "reasoning",
    "tool",
    "tool_call",
]

# Module-level helpers on the global TracerProvider (set by `configure` or by the host application).
_default = Recorder()
agent_run = _default.agent_run
llm_call = _default.llm_call
tool_call = _default.tool_call
memory_read = _default.memory_read
plan = _default.plan
reasoning = _default.reasoning
branch = _default.branch
guardrail = _default.guardrail
human_approval = _default.human_approval
tool = _default.tool
agent = _default.agent
