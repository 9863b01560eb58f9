"""Span -> Step: decide which instrumentation convention reported a span and pull out the audit facts.

Pure and total: no I/O, and no input makes it raise, because a span the normalizer cannot read must
still become a step (kind `other`, convention `unknown`) rather than vanish from the audit record.
Raw spans are kept by the store, so a better mapping later is a `workbench renormalize` away.

Which family reads a span, first match wins (the order matters where families overlap):
1. our SDK       `workbench.step.kind`, our scope, `workbench.*`, or an SDK-only gen_ai.operation.name
1b. guardrails   `gen_ai.operation.name` run_guardrail / apply_guardrail, or a guardrail verdict attribute
2. OpenInference `openinference.span.kind` (checked before GenAI: its dual-emitted gen_ai.* is lossy)
3. OpenLLMetry   `traceloop.*` or `llm.request.type`
3b. Google ADK  scope `gcp.vertex.agent` or `gcp.vertex.agent.*` (GenAI plus its legacy JSON attributes)
4. pydantic-ai   scope "pydantic-ai", `logfire.msg`, `pydantic_ai.*`, `final_result`, `agent_name`...
5. GenAI         any `gen_ai.*` attribute or GenAI message event ("genai" / "genai-legacy")
6. unknown       kind `other`; status and exception events still give is_error / error
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from collectors.conventions import adk, genai, guardrail, openinference, pydantic_ai, sdk, traceloop
from collectors.conventions.common import Draft, as_int, as_str, attributes_of
from collectors.conventions.facts import apply_cost, apply_errors, apply_identity
from workbench.model import SpanRecord, Step, StepKind

Mapper = Callable[[SpanRecord, Mapping[str, Any], Draft], None]

# Recorded on every step and in every bundle. Bump it with any change to what a span maps to: `workbench
# ledger verify` reports steps of another version as needing `workbench renormalize`, and `workbench verify`
# re-derives a bundle's steps only with the version that exported them.
NORMALIZER_VERSION = "4"


def _map_genai(span: SpanRecord, attrs: Mapping[str, Any], draft: Draft) -> None:
    draft.convention = genai.convention_of(span, attrs)
    genai.map_genai(span, attrs, draft)


def detect(span: SpanRecord, attrs: Mapping[str, Any]) -> tuple[str, Mapper | None]:
    """The family that reads this span; exposed so `renormalize` can report what changed and why."""
    if sdk.is_sdk(span, attrs):
        return "sdk", sdk.map_sdk
    if guardrail.is_guardrail(attrs):
        return "genai", guardrail.map_guardrail
    if openinference.is_openinference(attrs):
        return "openinference", openinference.map_openinference
    if traceloop.is_traceloop(attrs):
        return "traceloop", traceloop.map_traceloop
    if adk.is_adk(span, attrs):
        return "genai", adk.map_adk
    if pydantic_ai.is_pydantic_ai(span, attrs):
        return "pydantic-ai", pydantic_ai.map_pydantic_ai
    if genai.is_genai(span, attrs):
        return genai.convention_of(span, attrs), _map_genai
    return "unknown", None


def normalize(span: SpanRecord) -> Step:
    """Map one span to exactly one step; never raises."""
    try:
        return _normalize(span)
    except Exception:  # noqa: BLE001 (a mapping bug must not lose the span; the raw stays in the store)
        return _fallback(span)


def step_from_canonical(
    canonical: bytes,
    max_attribute_length: int,
    events: Mapping[str, Sequence[tuple[bytes, object]]] | None = None,
) -> Step:
    """The step of one span's canonical bytes, exactly as ingest derives it (decode with the attribute
    limit, then normalize): how `workbench verify` re-derives a bundle's steps. `events` are the bundle's
    sealed log records by trace id ((canonical bytes, truncation record), in seq order): a span of a
    trace that has some is joined with them as ingest joined it (collectors.events)."""
    from collectors.decode import record_from_canonical

    record = record_from_canonical(canonical, max_attribute_length)
    own = events.get(record.trace_id) if events else None
    if own:
        from collectors.events import decode_events, join

        return join(record, decode_events(own), normalize)
    return normalize(record)


def _normalize(span: SpanRecord) -> Step:
    attrs = attributes_of(span)
    draft = Draft()
    # Errors first: convention mappers (pydantic-ai retries, LangChain tool status) append to them.
    apply_errors(span, attrs, draft)
    convention, mapper = detect(span, attrs)
    draft.convention = convention
    if mapper is not None:
        mapper(span, attrs, draft)
    apply_identity(attrs, draft)
    apply_cost(attrs, draft)
    if draft.kind is StepKind.TOOL:
        draft.fill(input_text=draft.tool_arguments, output_text=draft.tool_result)
    return draft.to_step(span)


def _fallback(span: SpanRecord) -> Step:
    """The least a span can be: identified, timed, and marked as not understood."""
    draft = Draft()
    try:
        apply_errors(span, attributes_of(span), draft)
    except Exception:  # noqa: BLE001
        pass
    try:
        return draft.to_step(span)
    except Exception:  # noqa: BLE001
        return Step(
            trace_id=_safe(lambda: as_str(span.trace_id)),
            span_id=_safe(lambda: as_str(span.span_id)),
            parent_span_id=_safe(lambda: as_str(span.parent_span_id)),
            kind=StepKind.OTHER,
            name=_safe(lambda: as_str(span.name)),
            start_time_ns=as_int(getattr(span, "start_time_ns", None)) or 0,
            end_time_ns=as_int(getattr(span, "end_time_ns", None)) or 0,
            convention="unknown",
        )


def _safe(get: Callable[[], str | None]) -> str:
    try:
        return get() or ""
    except Exception:  # noqa: BLE001
        return ""
