"""GenAI guardrail spans: `run_guardrail` with `gen_ai.guardrail.*`, and the earlier `apply_guardrail` draft.

Read from the OpenTelemetry GenAI semantic conventions, security part (status Development), as published
in open-telemetry/semantic-conventions-genai `docs/gen-ai/gen-ai-security.md` (commit 3155df28):
- spans `gen_ai.run_guardrail.client` / `.internal`, `gen_ai.operation.name` = `run_guardrail`, named
  "run_guardrail {gen_ai.guardrail.component.name}";
- the verdict in `gen_ai.guardrail.verdict.type` (allow / audit / deny / escalate / modify / warn), with
  `.reason` and `.code`; what the caller enforced in `gen_ai.guardrail.action.type` (allow / audit /
  block / escalate / modify), which may differ from the verdict;
- what was judged: `gen_ai.guardrail.target.type` (input / output), `.subtype` (llm, tool_call, ...),
  `.id`; the policy `gen_ai.guardrail.security.policy.id`, `.policy.rule.id`; the risk
  `gen_ai.guardrail.security.risk.category` / `.risk.score`; opt-in content
  `gen_ai.guardrail.security.content.input.value` / `.output.value`;
- findings as `gen_ai.guardrail.security.finding` events (span events here; log records arrive as logs).

The draft before it (PR #3233: `apply_guardrail`, `gen_ai.security.decision.type`, `gen_ai.security.*`,
`gen_ai.security.finding`) is still emitted by early adopters and read the same way.

The verdict goes into the step's output text ("verdict: deny (...)"), where the replay and the rules
read it, as our SDK's guardrail decisions do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from collectors.conventions.common import MAPPING, Draft, as_name, as_str, first, join_nonempty
from collectors.conventions.genai import map_genai
from workbench.model import SpanRecord, StepKind

GUARDRAIL_OPERATIONS = frozenset({"run_guardrail", "apply_guardrail"})
FINDING_EVENTS = frozenset({"gen_ai.guardrail.security.finding", "gen_ai.security.finding"})

# (current key, draft key): each fact is read from the first present.
_VERDICT = ("gen_ai.guardrail.verdict.type", "gen_ai.security.decision.type")
_REASON = ("gen_ai.guardrail.verdict.reason", "gen_ai.security.decision.reason")
_CODE = ("gen_ai.guardrail.verdict.code", "gen_ai.security.decision.code")
_ACTION = ("gen_ai.guardrail.action.type",)
_COMPONENT = ("gen_ai.guardrail.component.name", "gen_ai.guardian.name", "gen_ai.security.guardian.name")
_TARGET = ("gen_ai.guardrail.target.type", "gen_ai.security.target.type")
_SUBTYPE = ("gen_ai.guardrail.target.subtype",)
_TARGET_ID = ("gen_ai.guardrail.target.id", "gen_ai.security.target.id")
_POLICY = ("gen_ai.guardrail.security.policy.id", "gen_ai.security.policy.id")
_RULE = ("gen_ai.guardrail.security.policy.rule.id",)
_CATEGORY = ("gen_ai.guardrail.security.risk.category", "gen_ai.security.risk.category")
_SCORE = ("gen_ai.guardrail.security.risk.score", "gen_ai.security.risk.score")
_INPUT = ("gen_ai.guardrail.security.content.input.value", "gen_ai.security.content.input.value")
_OUTPUT = ("gen_ai.guardrail.security.content.output.value", "gen_ai.security.content.output.value")


def is_guardrail(attrs: Mapping[str, Any]) -> bool:
    """A guardrail run: its operation name, or a verdict attribute of either version."""
    operation = (as_name(attrs.get("gen_ai.operation.name")) or "").lower()
    return operation in GUARDRAIL_OPERATIONS or any(k in attrs for k in _VERDICT)


def map_guardrail(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    draft.convention = "genai"
    map_genai(span, attrs, draft)
    draft.kind = StepKind.GUARDRAIL
    draft.operation = as_name(attrs.get("gen_ai.operation.name")) or "run_guardrail"
    draft.actor = _text(attrs, _COMPONENT) or draft.actor
    findings = [f"finding: {text}" for e in _finding_events(span) if (text := verdict_text(e))]
    draft.fill(input_text=_text(attrs, _INPUT))
    draft.output_text = join_nonempty(
        [verdict_text(attrs), _text(attrs, _OUTPUT), draft.output_text, *findings]
    )


def verdict_text(attrs: Mapping[str, Any]) -> str | None:
    """One line an investigator reads: verdict, enforced action, target, policy and risk."""
    verdict = _text(attrs, _VERDICT)
    parts = []
    if verdict:
        reason = _text(attrs, _REASON)
        code = _text(attrs, _CODE)
        detail = "; ".join(p for p in (reason, f"code {code}" if code else None) if p)
        parts.append(f"verdict: {verdict}" + (f" ({detail})" if detail else ""))
    for label, keys in (("action", _ACTION), ("target", _TARGET), ("policy", _POLICY), ("rule", _RULE)):
        value = _text(attrs, keys)
        if value:
            if label == "target":
                value = " ".join(p for p in (value, _text(attrs, _SUBTYPE), _text(attrs, _TARGET_ID)) if p)
            parts.append(f"{label}: {value}")
    category = _text(attrs, _CATEGORY)
    if category:
        score = _text(attrs, _SCORE)
        parts.append(f"risk: {category}" + (f" (score {score})" if score else ""))
    return ", ".join(parts) or None


def _text(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    return as_str(first(attrs, *keys))


def _finding_events(span: SpanRecord) -> Iterable[Mapping[str, Any]]:
    events = span.events if isinstance(span.events, list | tuple) else ()
    for event in events:
        if getattr(event, "name", None) in FINDING_EVENTS:
            eattrs = getattr(event, "attributes", None)
            yield eattrs if isinstance(eattrs, MAPPING) else {}
