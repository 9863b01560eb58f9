"""Plain-text renderings for the terminal: the trace list and the step-by-step replay.

Kept apart from the CLI so the words an investigator reads can be tested without running commands.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from workbench.model import StoredStep, TraceSummary

_KIND_MARK = {
    "agent": "AGENT",
    "llm": "LLM",
    "tool": "TOOL",
    "reasoning": "THINK",
    "memory": "MEMORY",
    "plan": "PLAN",
    "guardrail": "GUARD",
    "human": "HUMAN",
    "other": "other",
}


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def excerpt(text: str | None, width: int = 240) -> str:
    """One line: newlines folded, long text cut with its full length shown."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + f"… ({len(text)} chars)"


def pretty_json(text: str | None, width: int = 400) -> str:
    """Compact JSON when the text is JSON (arguments usually are), otherwise the text itself."""
    if text is None:
        return ""
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return excerpt(text, width)
    return excerpt(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")), width)


def traces_table(traces: list[TraceSummary]) -> str:
    if not traces:
        return "no traces yet: send OTLP to the collectors or run `workbench ingest FILE`"
    header = f"{'TRACE':<32}  {'STARTED (UTC)':<24} {'STEPS':>6} {'ERR':>4} {'TOOLS':>5} {'TOKENS':>9}  ROOT"
    lines = [header]
    for t in traces:
        tokens = t.tokens_in + t.tokens_out
        root = t.root_name + (f"  [{t.service_name}]" if t.service_name else "")
        lines.append(
            f"{t.trace_id:<32}  {iso(t.start_time_ns):<24} {t.span_count:>6} {t.error_count:>4} "
            f"{t.tool_calls:>5} {tokens:>9}  {root}"
        )
    return "\n".join(lines)


def _depths(steps: list[StoredStep]) -> dict[str, int]:
    parents = {s.step.span_id: s.step.parent_span_id for s in steps}
    depth: dict[str, int] = {}
    for span_id in parents:
        d, cur, seen = 0, parents.get(span_id, ""), set()
        while cur and cur in parents and cur not in seen:
            seen.add(cur)
            d += 1
            cur = parents[cur]
        depth[span_id] = d
    return depth


def _beyond_result(output: str | None, result: str | None) -> str | None:
    """The output a tool step adds to its result (e.g. the side effect the SDK records), or all of it."""
    if not output or not result:
        return output
    return output[len(result) :].strip() if output.startswith(result) else None


def replay(trace_id: str, steps: list[StoredStep]) -> str:
    """The incident, one step a paragraph: what kind of step, who acted, what it called with what, what
    it was thinking, what it cost, and what went wrong."""
    if not steps:
        return f"trace {trace_id}: no steps"
    t0 = min(s.step.start_time_ns for s in steps)
    depth = _depths(steps)
    out = [f"trace {trace_id}: {len(steps)} steps, started {iso(t0)}", ""]
    for i, stored in enumerate(steps, start=1):
        s = stored.step
        indent = "  " * min(depth.get(s.span_id, 0), 8)
        offset_ms = (s.start_time_ns - t0) / 1e6
        who = f" {s.actor}" if s.actor else ""
        flag = "  ERROR" if s.is_error else ""
        out.append(
            f"{indent}#{i:<4} +{offset_ms:>9.1f} ms  {_KIND_MARK.get(str(s.kind), s.kind)}{who}: {s.name}"
            f"  ({s.duration_ns / 1e6:.1f} ms){flag}"
        )
        pad = indent + "       "
        if s.model:
            out.append(f"{pad}model      {s.model}")
        if s.tool_name or s.tool_arguments:
            call_id = f"  [{s.tool_call_id}]" if s.tool_call_id else ""
            out.append(f"{pad}tool       {s.tool_name or '?'}({pretty_json(s.tool_arguments)}){call_id}")
        if s.tool_result:
            out.append(f"{pad}result     {pretty_json(s.tool_result)}")
        if s.reasoning_text:
            out.append(f"{pad}reasoning  {excerpt(s.reasoning_text)}")
        if s.input_text and not s.tool_arguments:
            out.append(f"{pad}input      {excerpt(s.input_text)}")
        shown = _beyond_result(s.output_text, s.tool_result)
        if shown:
            out.append(f"{pad}output     {excerpt(shown)}")
        tokens = [
            f"{label} {value}"
            for label, value in (
                ("in", s.tokens_in),
                ("out", s.tokens_out),
                ("reasoning", s.tokens_reasoning),
                ("cached", s.tokens_cached),
            )
            if value is not None
        ]
        if tokens or s.cost_usd is not None:
            cost = f"  cost ${s.cost_usd:.6f}" if s.cost_usd is not None else ""
            out.append(f"{pad}tokens     {', '.join(tokens) or '-'}{cost}")
        if s.is_error or s.error:
            out.append(f"{pad}error      {excerpt(s.error) or 'status ERROR'}")
    return "\n".join(out)
