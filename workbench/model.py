"""Frozen records that flow between the collectors, the store and everything above them.

These are the project's vocabulary. They carry no behaviour beyond small conveniences, so that every
floor can depend on them without pulling in I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workbench.errors import BadInput

# OTLP attribute values decode to these plain Python shapes (lists and dicts for array and kvlist values,
# bytes for bytes values). Keeping them plain lets the store write them as JSON without a schema per key.
AttrValue = Any
Attributes = dict[str, AttrValue]


class StepKind(enum.StrEnum):
    """What an agent step was, independent of which instrumentation convention reported it."""

    AGENT = "agent"
    LLM = "llm"
    TOOL = "tool"
    REASONING = "reasoning"
    MEMORY = "memory"
    PLAN = "plan"
    GUARDRAIL = "guardrail"
    HUMAN = "human"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """An OTLP span event (exceptions and GenAI message events arrive this way)."""

    name: str
    time_ns: int
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0


@dataclass(frozen=True, slots=True)
class SpanLink:
    """An OTLP span link, e.g. from a tool span to the LLM call that requested it."""

    trace_id: str
    span_id: str
    trace_state: str = ""
    attributes: Attributes = field(default_factory=dict)
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Truncation:
    """A value longer than the configured limit: what was cut and how long it was.

    Values are truncated, never dropped silently; this record is the marker that says so.
    """

    location: str  # e.g. "attributes.gen_ai.input.messages" or "events[2].attributes.exception.stacktrace"
    original_length: int
    kept_length: int


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span exactly as OTLP carried it, decoded, plus the bytes the ledger hashes.

    `canonical` is a deterministic protobuf encoding of a ResourceSpans holding only this span, its
    scope and its resource: self-contained, so a single row can be re-exported or re-verified alone.
    Ids are lowercase hex strings; times stay integer nanoseconds since the epoch, as in OTLP.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_time_ns: int
    end_time_ns: int
    status_code: int
    status_message: str
    trace_state: str
    flags: int
    resource: Attributes
    resource_schema_url: str
    scope_name: str
    scope_version: str
    scope_attributes: Attributes
    scope_schema_url: str
    attributes: Attributes
    events: tuple[SpanEvent, ...]
    links: tuple[SpanLink, ...]
    dropped_attributes_count: int
    dropped_events_count: int
    dropped_links_count: int
    canonical: bytes
    truncations: tuple[Truncation, ...] = ()

    @property
    def service_name(self) -> str:
        value = self.resource.get("service.name")
        return str(value) if value is not None else ""

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_time_ns - self.start_time_ns)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One OTLP log record as received, with everything OTLP carries.

    GenAI events (message content in event-only capture modes) are log records linked to their span
    by trace and span id; a record without them is kept all the same. `canonical` is the deterministic
    protobuf of a ResourceLogs holding only this record: what the ledger seals, like a span's.
    """

    trace_id: str  # lowercase hex, '' when the record is not in a trace
    span_id: str
    time_ns: int
    observed_time_ns: int
    severity_number: int
    severity_text: str
    event_name: str  # LogRecord.event_name, or the older `event.name` attribute
    body: AttrValue  # the AnyValue as a plain value (None when absent)
    attributes: Attributes
    flags: int
    dropped_attributes_count: int
    resource: Attributes
    resource_schema_url: str
    scope_name: str
    scope_version: str
    scope_attributes: Attributes
    scope_schema_url: str
    canonical: bytes
    truncations: tuple[Truncation, ...] = ()

    @property
    def service_name(self) -> str:
        value = self.resource.get("service.name")
        return str(value) if value is not None else ""


# OTLP status codes (opentelemetry.proto.trace.v1.Status.StatusCode).
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2


@dataclass(frozen=True, slots=True)
class Step:
    """One span seen as an agent step: what kind of thing the agent did, with the audit facts pulled out.

    Derived from a SpanRecord by the normalizer; always re-derivable from the stored raw span.
    Text fields hold what the convention carried (JSON text for structured arguments); None means the
    convention did not say, which is different from an empty string.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    kind: StepKind
    name: str
    start_time_ns: int
    end_time_ns: int
    convention: str  # which mapping produced this step: "genai", "genai-legacy", "openinference", ...
    service_name: str = ""
    actor: str | None = None  # the agent (or component) that acted
    operation: str | None = None  # the convention's own operation name, e.g. "chat", "execute_tool"
    model: str | None = None
    provider: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    tool_arguments: str | None = None
    tool_result: str | None = None
    input_text: str | None = None
    output_text: str | None = None
    reasoning_text: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    tokens_reasoning: int | None = None
    tokens_cached: int | None = None
    cost_usd: float | None = None
    is_error: bool = False
    error: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    # Which of the fields above were filled from GenAI events (OTLP log records of this span) because the
    # span itself lacked them: a JSON list of field names, None when nothing came from events. The replay
    # shows it, so an investigator knows which text was not on the span.
    event_fields: str | None = None

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_time_ns - self.start_time_ns)


@dataclass(frozen=True, slots=True)
class StoredStep:
    """A step as read back from the store, with its ingest sequence and the raw span's status."""

    seq: int
    step: Step


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One line of the trace list."""

    trace_id: str
    service_name: str
    root_name: str
    start_time_ns: int
    end_time_ns: int
    span_count: int
    error_count: int
    tool_calls: int
    tokens_in: int
    tokens_out: int
    tokens_reasoning: int
    cost_usd: float
    agents: tuple[str, ...]
    # Redelivered spans acknowledged but not stored again, and spans delivered again with the same id but
    # other bytes (kept as conflicting versions, flagged `span-rewritten`): the transport's story.
    duplicates: int = 0
    versions: int = 0


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one received batch: how many spans were committed, and what was refused."""

    accepted: int
    rejected: int = 0
    errors: tuple[str, ...] = ()
    first_seq: int | None = None
    last_seq: int | None = None
    duplicates: int = 0  # of `accepted`: spans already stored (a redelivery), acknowledged, not stored again


class Severity(enum.StrEnum):
    """How much a finding should worry an investigator; ordered from least to most.

    The one declaration of the order: ranks, SQL ordering, the CLI's choices and the UI's filter all
    derive from it, so a new level cannot be forgotten in one of them.
    """

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for INFO up to 4 for CRITICAL: compare and sort findings by this, never by the text."""
        return _SEVERITY_ORDER.index(self)

    def lowered(self, steps: int = 1) -> Severity:
        """A milder level (a destructive call that failed worries less); INFO stays INFO."""
        return _SEVERITY_ORDER[max(0, self.rank - steps)]

    def raised(self, steps: int = 1) -> Severity:
        """A graver level; CRITICAL stays CRITICAL."""
        return _SEVERITY_ORDER[min(len(_SEVERITY_ORDER) - 1, self.rank + steps)]

    @classmethod
    def names(cls) -> list[str]:
        """The stored strings, least to most severe (choices for a CLI option or a filter)."""
        return [s.value for s in cls]


_SEVERITY_ORDER: tuple[Severity, ...] = tuple(Severity)


@dataclass(frozen=True, slots=True)
class Finding:
    """What a policy rule raised on one step, with the quoted evidence that made it fire.

    `evidence_start`/`evidence_end` index characters of the step field named by `evidence_field`, so the
    UI and the report can highlight exactly those words. `taint_chain` lists step seqs from the untrusted
    source to the action (empty when the rule is not about a flow).
    """

    trace_id: str
    step_seq: int
    span_id: str
    rule_id: str
    severity: Severity
    title: str
    explanation: str
    evidence_field: str | None = None
    evidence_start: int | None = None
    evidence_end: int | None = None
    evidence_excerpt: str | None = None
    taint_chain: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # assigned by the store


@dataclass(frozen=True, slots=True)
class Annotation:
    """An investigator's note on a step (or on the whole trace when step_seq is None)."""

    trace_id: str
    step_seq: int | None
    author: str
    text: str
    created_at_ns: int
    id: int | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One analysis of one probe run: a small summary for lists and the full data for plots."""

    run_id: int
    analysis: str
    summary: dict[str, Any]
    data: dict[str, Any]


class ProbeAnalysis(enum.StrEnum):
    """What a probe run can do with a step; the strings are stored in `probe_runs.analyses` and sent by
    the API, so they never change. Each analysis' results are `probe_results` rows (`probes` writes one
    `probe:<name>` row per trained probe)."""

    LOGIT_LENS = "logit_lens"
    ATTENTION = "attention"
    PROBES = "probes"
    PATCHING = "patching"


def parse_analyses(analyses: object) -> list[ProbeAnalysis]:
    """A non-empty list of known analyses, or BadInput naming the first unknown one.

    The one check of an analysis list: the queue, the API, the UI and the runner all call it (directly or
    through `check_probe_request`), so they accept and refuse the same things with the same words.
    """
    known = ", ".join(ProbeAnalysis)
    if isinstance(analyses, str | bytes) or not isinstance(analyses, list | tuple) or not analyses:
        raise BadInput(f"analyses must be some of {known}, as a non-empty list; got {analyses!r}")
    out = []
    for a in analyses:
        try:
            out.append(ProbeAnalysis(a))
        except ValueError:
            raise BadInput(f"unknown analysis {a!r}: analyses must be some of {known}") from None
    return out


def check_probe_request(analyses: object, params: Mapping[str, Any] | None) -> list[ProbeAnalysis]:
    """`parse_analyses`, and patching only with a counterfactual scratchpad to patch against.

    The raw queue (`insert_run`) checks names only, so a worker can be shown failing a bad run; everything
    that takes a request from a person checks it all here first.
    """
    chosen = parse_analyses(analyses)
    if (
        ProbeAnalysis.PATCHING in chosen
        and not str((params or {}).get("counterfactual_reasoning") or "").strip()
    ):
        raise BadInput("patching needs a counterfactual scratchpad (params.counterfactual_reasoning)")
    return chosen


class ProbeRunStatus(enum.StrEnum):
    """Where a probe run is: queued by anyone, then running, done or failed in the worker only."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        """Still waiting for or in the worker."""
        return self in (ProbeRunStatus.QUEUED, ProbeRunStatus.RUNNING)

    @property
    def finished(self) -> bool:
        return self in (ProbeRunStatus.DONE, ProbeRunStatus.FAILED)


@dataclass(frozen=True, slots=True)
class ProbeRun:
    """One request to look inside a step, as the `probe_runs` table and the API hold it."""

    id: int
    trace_id: str
    step_seq: int
    analyses: list[ProbeAnalysis]
    status: ProbeRunStatus
    progress: float
    error: str | None
    params: dict[str, Any]
    provenance: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        """Still waiting for or in the worker: the UI keeps polling it."""
        return self.status.active

    def to_json(self) -> dict[str, Any]:
        """The API's shape of a run (times as text); `from_json` reads it back."""
        return {
            "id": self.id,
            "trace_id": self.trace_id,
            "step_seq": self.step_seq,
            "analyses": [str(a) for a in self.analyses],
            "status": str(self.status),
            "progress": self.progress,
            "error": self.error,
            "params": self.params,
            "provenance": self.provenance,
            "created_at": str(self.created_at),
            "finished_at": None if self.finished_at is None else str(self.finished_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProbeRun:
        """A run from the API's JSON (the CLI following a run in a server); extra keys are ignored."""
        finished = data.get("finished_at")
        return cls(
            id=int(data["id"]),
            trace_id=str(data["trace_id"]),
            step_seq=int(data["step_seq"]),
            analyses=[ProbeAnalysis(a) for a in data["analyses"]],
            status=ProbeRunStatus(data["status"]),
            progress=float(data["progress"]),
            error=data.get("error"),
            params=dict(data.get("params") or {}),
            provenance=dict(data.get("provenance") or {}),
            created_at=datetime.fromisoformat(str(data["created_at"])),
            finished_at=None if finished is None else datetime.fromisoformat(str(finished)),
        )


def sealed_provenance(
    run_provenance: Mapping[str, Any], data: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """The provenance to show beside a probe result, and whether it is the sealed copy.

    Why prefer the result's own copy: `probe_results.data` is sealed by the second chain, while
    `probe_runs.provenance` is a plain column anyone with the file could edit; results written before
    the runner sealed provenance have only the run's copy (False).
    """
    own = data.get("provenance")
    if isinstance(own, Mapping) and own:
        return dict(own), True
    return dict(run_provenance), False


def provenance_text(provenance: Mapping[str, Any]) -> str:
    """One line saying what model and weights computed a probe result, for every surface that shows one.

    The `weights` words carry what the hash cannot: the default weights are a Q4_1 GGUF de-quantized to
    float32, so the activations are those of quantized weights (issue #18, item 7).
    """
    if not provenance:
        return "provenance not recorded"
    parts = [str(provenance.get("model_id") or "?")]
    if provenance.get("weights_sha256"):
        parts.append(f"weights sha256 {str(provenance['weights_sha256'])[:12]}…")
    if provenance.get("weights"):
        parts.append(str(provenance["weights"]))
    elif provenance.get("source"):
        parts.append(f"source {provenance['source']}")
    lens = provenance.get("transformer_lens_version")
    mode = provenance.get("mode")
    if lens or mode:
        parts.append(f"TransformerLens {lens or '?'}" + (f" ({mode})" if mode else ""))
    if provenance.get("dtype"):
        parts.append(
            str(provenance["dtype"]) + (f" on {provenance['device']}" if provenance.get("device") else "")
        )
    return " · ".join(parts)
