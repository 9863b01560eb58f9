"""`report.html`: what a person reads first. Self-contained: plotly.js is inlined, nothing is fetched.

Built only from what the bundle itself holds (already redacted), so the report cannot show more than
the files it describes.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from workbench.export.brief import Brief, build_brief
from workbench.model import (
    Finding,
    Severity,
    Step,
    StepKind,
    StoredStep,
    provenance_text,
    sealed_provenance,
)

MAX_PLOTTED_STEPS = 1_500  # per trace: a browser stays responsive; the full list is in steps.parquet
MAX_PLOTTED_TRACES = 12

_KIND_COLORS = {
    "agent": "#4c78a8",
    "llm": "#f58518",
    "tool": "#54a24b",
    "reasoning": "#b279a2",
    "memory": "#9d755d",
    "plan": "#72b7b2",
    "guardrail": "#e45756",
    "human": "#eeca3b",
    "other": "#bab0ac",
}


def _heads(led: dict[str, Any]) -> str:
    """The signed tree head(s) a reader compares: the checkpoint, or (a lake bundle) one per node."""
    heads = (
        [(f"Node {h['node']}", h) for h in led["nodes"]]
        if led.get("nodes")
        else [("Checkpoint", led["checkpoint"])]
    )
    return " ".join(
        f"{_e(name)}: tree size {_e(h['tree_size'])}, Merkle root <code>{_e(h['merkle_root'])}</code>, "
        f"chain head <code>{_e(h['chain_head'])}</code>."
        for name, h in heads
    )


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _timeline(trace_id: str, steps: Sequence[dict[str, Any]], total: int, include_js: bool) -> str:
    import plotly.graph_objects as go

    shown = list(steps[:MAX_PLOTTED_STEPS])
    t0 = min(s["start_time_ns"] for s in shown)
    label = {id(s): f"#{i} {s['name'][:40]}" for i, s in enumerate(shown, 1)}  # the replay's step number
    fig = go.Figure()
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in shown:
        by_kind[s["kind"]].append(s)
    for kind, group in by_kind.items():
        fig.add_trace(
            go.Bar(
                orientation="h",
                name=kind,
                base=[(s["start_time_ns"] - t0) / 1e6 for s in group],
                x=[max((s["end_time_ns"] - s["start_time_ns"]) / 1e6, 0.5) for s in group],
                y=[label[id(s)] for s in group],
                marker_color=_KIND_COLORS.get(kind, "#888"),
                hovertext=[
                    f"seq {s['seq']} · {s['kind']} · {s.get('tool_name') or s['name']}" for s in group
                ],
            )
        )
    fig.update_layout(
        title=f"Trace {trace_id}" + (f" (first {len(shown)} of {total} steps)" if total > len(shown) else ""),
        xaxis_title="ms since the first step",
        yaxis={
            "autorange": "reversed",
            "categoryorder": "array",
            "categoryarray": [label[id(s)] for s in shown],
            "dtick": 1,  # every step labelled, none skipped when the axis is dense
        },
        height=max(300, min(16 * len(shown) + 120, 4000)),
        barmode="overlay",
        margin={"l": 260},
    )
    return fig.to_html(include_plotlyjs=include_js, full_html=False)


def _stored(row: dict[str, Any]) -> StoredStep:
    """A bundle's step row as the brief's record (the row holds `seq` and every step column)."""
    names = Step.__dataclass_fields__
    values = {k: v for k, v in row.items() if k in names}
    values["kind"] = StepKind(values["kind"])
    return StoredStep(seq=int(row["seq"]), step=Step(**values))


def _finding(row: dict[str, Any]) -> Finding:
    names = Finding.__dataclass_fields__
    values = {k: v for k, v in row.items() if k in names}
    values["severity"] = Severity(values["severity"])
    values["taint_chain"] = tuple(values.get("taint_chain") or ())
    values["details"] = values.get("details") or {}
    return Finding(**values)


def step_anchor(trace_id: str, position: int) -> str:
    """The id of a step's row in the report's step table: what the brief's links point at."""
    return f"step-{trace_id}-{position}"


def _brief_html(brief: Brief) -> str:
    rows = []
    for title, sentences in brief.sections:
        items = []
        for s in sentences:
            links = " ".join(f"<a href='#{_e(step_anchor(brief.trace_id, p))}'>#{p}</a>" for p in s.positions)
            items.append(f"<li>{_e(s.text)}{' → ' + links if links else ''}</li>")
        rows.append(f"<tr><th>{_e(title)}</th><td><ul>{''.join(items)}</ul></td></tr>")
    return f"<h3>Trace <code>{_e(brief.trace_id)}</code></h3><table class='brief'>{''.join(rows)}</table>"


def _step_table(trace_id: str, group: Sequence[dict[str, Any]]) -> str:
    """Every plotted step with its number (the replay's 1-based position), so the brief can link to it."""
    rows = "".join(
        f"<tr id='{_e(step_anchor(trace_id, i))}'><td>#{i}</td><td>{_e(s['kind'])}</td>"
        f"<td>{_e(s['name'])}</td><td>{'error' if s.get('is_error') else 'ok'}</td></tr>"
        for i, s in enumerate(group, 1)
    )
    return (
        f"<details><summary>Steps of trace <code>{_e(trace_id)}</code></summary><table>"
        f"<tr><th>step</th><th>kind</th><th>name</th><th>status</th></tr>{rows}</table></details>"
    )


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):  # e.g. attention's top tokens: [[token, weight], ...]
        return ", ".join(
            _cell(v) if not isinstance(v, list) else " ".join(_cell(x) for x in v) for v in value
        )
    return str(value)


_PROBE_COLUMNS = ("score", "threshold", "fired")
_TOP_TOKENS = 8


def _probe_extra(data: dict[str, Any]) -> tuple[str, str, str]:
    """A probe result's score relative to its threshold, the layers its head reads, and its tokens above
    the per-token threshold (`token_relative` > 0, in standard deviations of benign tokens), highest
    first. Tokens, not slices of `step_text`: an export masks both, and a masked text no longer lines up
    with the character spans, while a masked token reads `[REDACTED]` in place."""
    relative = data.get("score_relative")
    rel = f"{float(relative):+.3f}" if isinstance(relative, int | float) else "—"
    layers = data.get("layers") or ([data["layer"]] if data.get("layer") is not None else [])
    read = "+".join(str(v) for v in layers) or "—"
    values, tokens = data.get("token_relative"), data.get("tokens") or []
    spans = data.get("char_spans") or []
    if not isinstance(values, list):
        return rel, read, "—"
    scored = sorted(
        (
            (float(v), i)
            for i, v in enumerate(values)
            if isinstance(v, int | float) and v > 0 and i < len(tokens) and i < len(spans) and spans[i]
        ),
        reverse=True,
    )
    if not scored:
        return rel, read, "none"
    shown = ", ".join(f"{str(tokens[i]).strip()!r} {v:+.1f}" for v, i in scored[:_TOP_TOKENS])
    more = f" and {len(scored) - _TOP_TOKENS} more" if len(scored) > _TOP_TOKENS else ""
    return rel, read, f"{len(scored)} of {sum(1 for x in spans if x)}: {shown}{more}"


def probe_table(probe_runs: Sequence[dict[str, Any]], probe_results: Sequence[dict[str, Any]]) -> str:
    """Probe evidence as a small table: one row per (run, analysis), its verdict in columns.

    Why not the summary's JSON: a reader wants "score 0.912, threshold 0.5, fired"; the full results
    stay in the bundle's probe files for whoever wants them. A probe's score is also shown relative to
    its threshold, with the tokens above the per-token threshold (issue #18, item 3), and the model cell
    says what the weights are ("Q4_1 GGUF de-quantized to float32...") from the copy sealed inside the
    result when it has one (item 7). Every value is escaped text.
    """
    if not probe_runs:
        return "<p>No probe runs on the exported steps.</p>"
    results_by_run: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in probe_results:
        results_by_run[r["run_id"]].append(r)
    rows = []
    columns = (*_PROBE_COLUMNS, "relative to threshold", "layers", "tokens above the per-token threshold")
    for run in probe_runs:
        head = f"<td>{_e(run['id'])}</td><td>#{_e(run['step_seq'])}</td><td>{_e(run['status'])}</td>"
        results = results_by_run.get(run["id"], [])
        if not results:
            model = provenance_text(run.get("provenance") or {}) + " (run row)"
            rows.append(
                f"<tr>{head}<td>{_e(model)}</td><td>—</td>" + "<td>—</td>" * (len(columns) + 1) + "</tr>"
            )
        for r in results:
            data: dict[str, Any] = r["data"] if isinstance(r.get("data"), dict) else {}
            prov, sealed = sealed_provenance(run.get("provenance") or {}, data)
            model = provenance_text(prov) + (" (sealed with the result)" if sealed else " (run row)")
            summary = r.get("summary") or {}
            verdict = "".join(
                f"<td>{_e(_cell(summary[k])) if summary.get(k) is not None else '—'}</td>"
                for k in _PROBE_COLUMNS
            )
            extra = _probe_extra(data) if str(r["analysis"]).startswith("probe:") else ("—", "—", "—")
            verdict += "".join(f"<td>{_e(v)}</td>" for v in extra)
            other = "; ".join(
                f"{k.replace('_', ' ')}: {_cell(v)}" for k, v in summary.items() if k not in _PROBE_COLUMNS
            )
            cells = f"<td>{_e(model)}</td><td>{_e(r['analysis'])}</td>{verdict}<td>{_e(other) or '—'}</td>"
            rows.append(f"<tr>{head}{cells}</tr>")
    header = "".join(
        f"<th>{h}</th>" for h in ("run", "step", "status", "model", "analysis", *columns, "other results")
    )
    note = (
        "<p>Relative to threshold: the step's score minus the probe's threshold (set at a 1% "
        "false-positive rate on benign controls); at or above 0 it fired. Per-token scores are in standard "
        "deviations of benign tokens from the per-token threshold, clipped to -4..4; above 0 means the "
        "token alone is above what 1% of benign tokens reach.</p>"
    )
    return f"{note}<table class='probes'><tr>{header}</tr>{''.join(rows)}</table>"


def render_report(
    manifest: dict[str, Any],
    steps: Sequence[dict[str, Any]],
    step_totals: dict[str, int],
    findings: Sequence[dict[str, Any]],
    probe_runs: Sequence[dict[str, Any]],
    probe_results: Sequence[dict[str, Any]],
    annotations: Sequence[dict[str, Any]],
    redaction_counts: dict[str, int],
) -> str:
    """The whole report as one HTML string. `steps` holds what is plotted (the first steps of the first
    traces), `step_totals` the number of steps of every exported trace."""
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in steps:
        by_trace[s["trace_id"]].append(s)
    findings_by_trace: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        findings_by_trace[f["trace_id"]].append(_finding(f))
    plots, briefs = [], []
    for i, (trace_id, group) in enumerate(list(by_trace.items())[:MAX_PLOTTED_TRACES]):
        group.sort(key=lambda s: (s["start_time_ns"], s["seq"]))
        plots.append(_timeline(trace_id, group, step_totals.get(trace_id, len(group)), include_js=(i == 0)))
        plots.append(_step_table(trace_id, group))
        brief = build_brief(trace_id, [_stored(s) for s in group], findings_by_trace.get(trace_id, []))
        briefs.append(_brief_html(brief))
    led = manifest["ledger"]
    many = len(step_totals) > MAX_PLOTTED_TRACES
    plotted = f"the first {MAX_PLOTTED_TRACES} are plotted" if many else "all plotted"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Audit bundle report</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "vertical-align:top;text-align:left}code,pre{background:#f4f4f4}pre{padding:1em;overflow-x:auto}"
        ".sev-critical,.sev-high{color:#b00;font-weight:bold}"
        "table.brief th{background:#f8f8f8;white-space:nowrap}table.brief ul{margin:0;padding-left:1.2em}"
        "</style></head><body>",
        "<h1>Agent audit bundle</h1>",
        "<section id='brief'><h2>Incident brief</h2>",
        "<p>Written from the stored steps and findings; every sentence links to the steps it comes "
        "from (numbered in time order, as in the replay).</p>",
        *briefs,
        "</section>",
        f"<p>Bundle <code>{_e(manifest['bundle_id'])}</code>, created {_e(manifest['created_at'])} by "
        f"{_e(manifest['tool']['name'])} {_e(manifest['tool']['version'])}. "
        f"Time range {_e(manifest['time_range']['start'])} to {_e(manifest['time_range']['end'])}.</p>",
        "<table>"
        + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in manifest["counts"].items())
        + "</table>",
        "<h2>Timeline</h2>",
        *plots,
        f"<p>{len(step_totals)} trace(s); {plotted}.</p>",
        "<h2>Findings</h2>",
    ]
    if findings:
        parts.append(
            "<table><tr><th>severity</th><th>rule</th><th>step</th><th>finding</th><th>evidence</th></tr>"
        )
        rank = {sev.value: i for i, sev in enumerate(Severity)}
        # Most severe first: the critical finding must not come last because its step came last.
        for f in sorted(findings, key=lambda f: (-rank.get(f["severity"], 0), f["trace_id"], f["step_seq"])):
            parts.append(
                f"<tr><td class='sev-{_e(f['severity'])}'>{_e(f['severity'])}</td><td>{_e(f['rule_id'])}</td>"
                f"<td>#{_e(f['step_seq'])} <code>{_e(f['span_id'])}</code></td>"
                f"<td><b>{_e(f['title'])}</b><br>{_e(f['explanation'])}</td>"
                f"<td>{_e(f.get('evidence_field'))}: <q>{_e(f.get('evidence_excerpt'))}</q></td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>No findings were recorded for the exported steps.</p>")
    parts.append("<h2>Probe evidence</h2>")
    parts.append(probe_table(probe_runs, probe_results))
    parts.append("<h2>Annotations</h2>")
    if annotations:
        parts.append("<table><tr><th>step</th><th>author</th><th>when</th><th>note</th></tr>")
        for a in annotations:
            step = f"#{a['step_seq']}" if a.get("step_seq") is not None else "whole trace"
            parts.append(
                f"<tr><td>{_e(step)}</td><td>{_e(a['author'])}</td><td>{_e(a['created_at'])}</td><td>{_e(a['text'])}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>No annotations on the exported steps.</p>")
    parts.append(
        "<h2>Record-keeping field "
        "map</h2><table><tr><th>framework</th><th>clause</th><th>requirement</th><th>answered by</th></tr>"
    )
    for row in manifest["field_map"]:
        answered = "<br>".join(f"<code>{_e(a['file'])}</code>: {_e(a['fields'])}" for a in row["answered_by"])
        parts.append(
            f"<tr><td>{_e(row['framework'])}</td><td>{_e(row['clause'])}</td><td>{_e(row['requirement'])}</td><td>{answered}</td></tr>"
        )
    parts.append("</table>")
    red = manifest["redaction"]
    parts += [
        "<h2>Redaction</h2>",
        f"<p>Redaction {'on' if red['enabled'] else 'off'}; kinds: {_e(', '.join(red['kinds']) or 'none')}; "
        f"{sum(redaction_counts.values())} value(s) masked "
        f"({_e(', '.join(f'{k}: {v}' for k, v in sorted(redaction_counts.items())) or 'none')}).</p>",
        "<h2>How to verify</h2>",
        f"<p>Signing key id (SHA-256 of the raw Ed25519 public key): "
        f"<code>{_e(manifest['signing']['key_id'])}</code>. " + _heads(led) + "</p>",
        "<pre>workbench verify BUNDLE --pubkey KEY.pem        # exit 0 only when everything below holds\n"
        "workbench verify BUNDLE --reveal REVEAL.json    # the owner's reveal file: also checks each "
        "redaction</pre>",
        "<ol>",
        "<li><b>Signature.</b> <code>manifest.sig</code> is an Ed25519 signature over the exact bytes of "
        "<code>manifest.json</code>; pin the key you were given, not the copy in the bundle.</li>",
        "<li><b>Files.</b> Every file's SHA-256 and size are listed in the manifest; no other file may be "
        "present.</li>",
        "<li><b>Spans.</b> Line <i>i</i> of <code>spans.jsonl</code> is the OTLP/JSON of one span; "
        "re-encoded as the "
        "deterministic protobuf of a ResourceSpans holding only that span, its SHA-256 is the ledger "
        "digest in line "
        "<i>i</i> of <code>proofs.jsonl</code>.</li>",
        "<li><b>Chain.</b> <code>chain = SHA-256(chain_prev || digest)</code> per span, linked from span "
        "to span when "
        "the range is contiguous, from <code>ledger.chain_before</code> to "
        "<code>ledger.covered.chain_head</code>.</li>",
        "<li><b>Inclusion.</b> Each span's RFC 6962 audit path (leaf <code>SHA-256(0x00||digest)</code>, "
        "node "
        "<code>SHA-256(0x01||l||r)</code>) leads to the covered-range root; an RFC 6962 consistency proof "
        "shows that tree is a "
        "prefix of the signed checkpoint of the whole ledger at export time, and the ledger's own earlier "
        "checkpoints are "
        "prefixes of it too.</li>",
        "<li><b>Redactions.</b> A redacted span cannot hash to its ledger digest, because the digest is "
        "over the original "
        "bytes. Its original digest is still proven by the chain and the inclusion proof, and every mask "
        "<code>[REDACTED:kind#id]</code> is listed in <code>redactions.jsonl</code> with its location "
        "(span id, JSON path, "
        "character ranges) and HMAC-SHA256 of the original under a per-bundle salt that is not in the "
        "bundle. The "
        "exporter's owner keeps the salt and originals in a reveal file; given it, the verifier puts the "
        "originals back "
        "and checks that the span then hashes to exactly the ledger digest: the redacted line differs from "
        "what was "
        "ingested only where the record says.</li>",
        "</ol></body></html>",
    ]
    return "\n".join(parts)
