"""Plain text for the terminal: the trace list, the step-by-step replay, findings, a probe run's summary.

Kept apart from the commands so the words an investigator reads can be tested without running them.

Trace text is hostile: a span name can carry `ESC ] 52 ; c ; ... BEL` (writes the clipboard), a title
sequence or a bidi override that reorders what the reader sees. Every renderer here joins its lines
through `clean`, which shows each control character as a visible escape (`\x1b`, `\u202e`), so no field
can reach the terminal raw or start a line of its own; the layout's own newlines are the only ones
printed. `--json` output is not rendered here: json.dumps (ASCII-only) escapes the same characters.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workbench.model import (
    Finding,
    ProbeResult,
    StoredStep,
    TraceSummary,
    provenance_text,
    sealed_provenance,
)

if TYPE_CHECKING:
    from workbench.store.probes import ProbeRun  # imports DuckDB: not at the CLI's start

# Controls (C0, DEL, C1), format characters (bidi overrides, zero-width ones that hide text), line and
# paragraph separators, and lone surrogates (which cannot even be encoded for the terminal).
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(text: object) -> str:
    """`text` safe for a terminal: every control, format or separator character as a visible escape,
    newlines and tabs included (callers put their own line breaks between cleaned lines). Backslashes
    stay as they are: this is for reading, `--json` is the exact form."""
    s = str(text)
    if s.isprintable():  # the common case, no per-character work
        return s
    return "".join(_escape(ch) if unicodedata.category(ch) in _UNSAFE else ch for ch in s)


def lines_out(lines: list[str]) -> str:
    """The renderers' one way out: each line cleaned, joined by the layout's newlines."""
    return "\n".join(clean(line) for line in lines)


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


def traces_table(traces: Sequence[TraceSummary], searched: bool = False, empty: str | None = None) -> str:
    """The trace list, one trace a line. Rows of the trace search (`explore_traces.TraceRow`) add their
    findings (count and worst severity); `searched` adds how many steps matched the text. `empty` is
    what to say when nothing matched a filter, instead of the message for an empty store."""
    if not traces:
        return (
            clean(empty)
            if empty
            else "no traces yet: send OTLP to the collectors or run `workbench ingest FILE`"
        )
    judged = all(hasattr(t, "findings") for t in traces)
    header = (
        f"{'TRACE':<32}  {'STARTED (UTC)':<24} {'STEPS':>6} {'ERR':>4} {'TOOLS':>5} {'TOKENS':>9} "
        f"{'COST $':>9}"
    )
    header += f"  {'FINDINGS':<13}" if judged else ""
    header += f" {'MATCHES':>7}" if searched else ""
    lines = [header + "  ROOT"]
    for t in traces:
        tokens = t.tokens_in + t.tokens_out
        root = t.root_name + (f"  [{t.service_name}]" if t.service_name else "")
        line = (
            f"{t.trace_id:<32}  {iso(t.start_time_ns):<24} {t.span_count:>6} {t.error_count:>4} "
            f"{t.tool_calls:>5} {tokens:>9} {t.cost_usd:>9.4f}"
        )
        if judged:
            count, worst = getattr(t, "findings", 0), getattr(t, "max_severity", None)
            line += f"  {f'{count} {worst}' if count else '-':<13}"
        if searched:
            line += f" {getattr(t, 'matches', 0):>7}"
        lines.append(f"{line}  {root}")
    return lines_out(lines)


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
        return clean(f"trace {trace_id}: no steps")
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
    return lines_out(out)


def findings(found: list[Finding]) -> str:
    """Findings one a line, most severe first as given, with the quoted evidence (one line, cut at 100
    characters) and the taint chain's step sequence numbers."""
    if not found:
        return "no findings"
    lines = []
    for f in found:
        lines.append(
            f"{f.severity.value.upper():<8} {f.trace_id[:8]} step {f.step_seq:<6} {f.rule_id}: {f.title}"
        )
        if f.evidence_excerpt is not None:
            quoted = " ".join(f.evidence_excerpt.split())
            if len(quoted) > 100:
                quoted = quoted[:100] + "…"
            lines.append(
                f"         evidence {f.evidence_field}[{f.evidence_start}:{f.evidence_end}]: {quoted}"
            )
        if f.taint_chain:
            lines.append("         chain " + " -> ".join(str(s) for s in f.taint_chain))
    return lines_out(lines)


def probe_run(run: ProbeRun, results: list[ProbeResult], kind: str, name: str) -> str:
    """A readable summary of one probe run (a ProbeRun) on the step of that kind and name: what model read
    it, where the action token became likely, what it attended to, which probes fired, what patching
    moved."""
    lines = [
        f"probe run {run.id}: trace {run.trace_id[:16]}… step seq {run.step_seq} ({kind}, {name})  "
        f"{run.status}",
    ]
    p, sealed = sealed_provenance(run.provenance, results[0].data if results else {})
    if p:
        where = "sealed with the results" if sealed else "from the run row, not sealed"
        lines.append(f"model {provenance_text(p)} ({where})")
    by = {r.analysis: r for r in results}
    first = next(iter(by.values()), None)
    if first is not None:
        d = first.data
        lines.append(
            f"read {len(d['tokens'])} tokens; action token {d['action_token']!r} "
            f"predicted at position {d['action_position']}"
        )
    if "logit_lens" in by:
        r = by["logit_lens"]
        d = r.data
        ranks = d["target_rank"]
        picks = sorted({0, len(ranks) // 4, len(ranks) // 2, 3 * len(ranks) // 4, len(ranks) - 1})
        lines.append("")
        lines.append(
            f"logit lens: target {d['target_token']!r}; "
            f"first layer where it is top-1: {r.summary['first_layer_top1']}"
        )
        at = d["positions"].index(d["action_position"])
        for i in picks:
            top = ", ".join(f"{t!r} {p_:.2f}" for t, p_ in d["top_tokens"][i][at][:3])
            lines.append(
                f"  layer {d['layers'][i]:>2}: rank {ranks[i]:>5}  p={d['target_prob'][i]:.4f}   top: {top}"
            )
    if "attention" in by:
        r = by["attention"]
        top = ", ".join(f"{t!r} {w:.3f}" for t, w in r.summary["top_tokens"])
        lines += ["", f"attention of the action position (last layers, mean over heads): {top}"]
    for name, r in by.items():
        if not name.startswith("probe:"):
            continue
        d = r.data
        verdict = "FIRED" if d["fired"] else "quiet"
        layers = "+".join(str(v) for v in d.get("layers") or [d["layer"]])
        relative = (
            f", {d['score_relative']:+.3f} relative to it" if d.get("score_relative") is not None else ""
        )
        lines += [
            "",
            f"{name}: score {d['score']:.3f} (threshold {d['threshold']:.3f}{relative}; layers {layers}) "
            f"{verdict}",
        ]
        lines.append("  " + _top_words(d))
    if "patching" in by:
        r = by["patching"]
        d = r.data
        lines += [
            "",
            f"patching ({d['method']}): metric {d['metric']}",
            f"  real {d['clean_value']:.3f}  counterfactual {d['corrupt_value']:.3f}; "
            "largest effect at layer "
            f"{r.summary['max_effect_layer']}, position {r.summary['max_effect_position']} "
            f"({d['tokens'][r.summary['max_effect_position']]!r})",
        ]
    if run.error:
        lines += ["", f"error: {run.error}"]
    return lines_out(lines)


def _top_words(data: dict[str, Any], k: int = 6) -> str:
    """The step's words with the highest per-token probe scores: relative to the per-token threshold
    (`token_relative`, standard deviations of benign tokens; > 0 is above it) when the result has them,
    else the raw, uncalibrated per-token probabilities of results from before calibration."""
    spans = data["char_spans"]
    text = data["step_text"]
    relative = data.get("token_relative")
    values = relative if relative is not None else data["scores"]
    scored = [(sc, i) for i, sc in enumerate(values) if spans[i] is not None]
    scored.sort(reverse=True)
    if relative is not None:
        words = [f"{text[spans[i][0] : spans[i][1]]!r} {sc:+.2f}" for sc, i in scored[:k]]
        above = sum(1 for sc, _ in scored if sc > 0)
        return (
            f"highest tokens, in sd from the per-token threshold ({above} of {len(scored)} above it): "
            + ", ".join(words)
        )
    words = [f"{text[spans[i][0] : spans[i][1]]!r} {sc:.2f}" for sc, i in scored[:k]]
    return "highest tokens (raw probability, uncalibrated): " + ", ".join(words)
