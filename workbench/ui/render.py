"""Text the replay shows: evidence highlighted, probe scores as shading, the step tree. Pure functions.

Why HTML built here rather than Streamlit widgets: a finding's evidence and a probe's per-token scores
index characters of the step's own text, so the text must be shown exactly as stored, with marks laid
over character ranges; every piece of it is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from workbench.export.brief import Brief
from workbench.model import Severity
from workbench.store.explore import TreeNode

# Every ASCII punctuation character: CommonMark lets each be backslash-escaped, and between them they start
# every Markdown construct, Streamlit directive (`:red[...]`, `:material/...:`), math span and autolink.
_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


# What GitHub-flavoured Markdown turns into a link after parsing, escapes or not (URLs, www., e-mail).
_LINKABLE = re.compile(r"(?i)(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _code_span(token: str) -> str:
    """`token` as a Markdown code span: literal text, never a link, whatever backticks it holds."""
    fence = "`" * (max((len(r) for r in re.findall(r"`+", token)), default=0) + 1)
    pad = " " if token.startswith(("`", " ")) or token.endswith(("`", " ")) else ""
    return f"{fence}{pad}{token}{pad}{fence}"


def md_text(text: object) -> str:
    """Trace text for a context that reads Markdown and takes no HTML (alerts, captions, widget labels).

    Why: trace text is hostile; `![x](http://host/b.png)` would make every viewer fetch the URL and
    `:green-badge[ok]` would draw a badge. Every punctuation character is escaped, newlines become hard
    line breaks (so no line starts a block) and leading spaces an entity (no indented code block); URLs
    and e-mail addresses go in code spans, since Markdown links them after parsing, escaped or not. The
    reader sees the exact characters. Prefer `st.text`/`st.code` or `html_text` where the widget allows.
    """
    pieces, pos = [], 0
    text = str(text)
    for m in _LINKABLE.finditer(text):
        pieces += [_MD_PUNCTUATION.sub(r"\\\1", text[pos : m.start()]), _code_span(m.group())]
        pos = m.end()
    escaped = "".join([*pieces, _MD_PUNCTUATION.sub(r"\\\1", text[pos:])])
    escaped = re.sub(r"^[ \t]", lambda m: f"&#{ord(m.group())};", escaped)
    return re.sub(r"\r\n|\r|\n", "\\\\\n", escaped)


def html_text(text: object) -> str:
    """Trace text for inside an HTML block given to `st.markdown(..., unsafe_allow_html=True)`.

    Why not plain `html.escape`: a raw newline could end the HTML block (a blank line does) and what
    follows would be read as Markdown; as `&#10;` it stays inside, and `white-space: pre-wrap` shows it.
    """
    return html.escape(str(text)).replace("\r", "&#13;").replace("\n", "&#10;")


def text_html(text: object, *, style: str = "", tag: str = "div") -> str:
    """One line of HTML holding `text` literally (see `html_text`), for `st.markdown(unsafe_allow_html)`."""
    return f'<{tag} style="white-space: pre-wrap; {style}">{html_text(text)}</{tag}>'


_BADGE = (
    '<span style="background: {bg}; color: {fg}; border-radius: 0.4rem; padding: 0.05rem 0.45rem; '
    'font-size: 0.8rem; font-weight: 600;">{text}</span>'
)
SEVERITY_COLORS = {
    "critical": ("#fee2e2", "#b91c1c"),
    "high": ("#ffedd5", "#c2410c"),
    "medium": ("#fef9c3", "#a16207"),
    "low": ("#dbeafe", "#1d4ed8"),
}


SEVERITY_ORDER = tuple(s.value for s in Severity)  # least to most: the one order, from the model


def severity_label(severity: str | None) -> str:
    """A severity as the traces table shows it (upper case; "none" for a trace with no finding)."""
    return severity.upper() if severity else "none"


def severity_cell_style(label: object) -> str:
    """CSS for a severity cell of a pandas Styler: the badge colours, so the worst rows stand out."""
    bg, fg = SEVERITY_COLORS.get(str(label).lower(), ("#f3f4f6", "#6b7280"))
    return f"background-color: {bg}; color: {fg}; font-weight: 600"


def badge(text: str, bg: str, fg: str) -> str:
    """A coloured badge in HTML: ours, so a span name can never draw one (`:green-badge[ok]` is text)."""
    return _BADGE.format(bg=bg, fg=fg, text=html_text(text))


def step_heading(position: int, total: int, kind: str, name: str, is_error: bool) -> str:
    """The replay's step heading: number, kind and span name as literal text, then the status badge."""
    status = badge("× error", "#fee2e2", "#b91c1c") if is_error else badge("✓ ok", "#dcfce7", "#15803d")
    return (
        f'<h4 style="white-space: pre-wrap;">Step {position:,} of {total:,} · <code>{html_text(kind)}</code>'
        f" · {html_text(name)}  {status}</h4>"
    )


def finding_heading(severity: str, rule_id: str, title: str) -> str:
    """A finding card's first line: severity badge, rule id, title (the title may quote trace text)."""
    bg, fg = SEVERITY_COLORS.get(severity, ("#f3f4f6", "#374151"))
    return (
        f'<div style="white-space: pre-wrap;">{badge(severity.upper(), bg, fg)} '
        f"<code>{html_text(rule_id)}</code> · {html_text(title)}</div>"
    )


def labelled(pairs: Sequence[tuple[str, str]]) -> str:
    """`label value · label value ...` on one line of HTML, labels bold, values literal text."""
    parts = [f"<b>{html_text(label)}</b> {html_text(value)}" for label, value in pairs]
    return '<div style="white-space: pre-wrap;">' + " · ".join(parts) + "</div>"


def fmt_time(ns: int | None) -> str:
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def fmt_duration(ns: int) -> str:
    s = ns / 1e9
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.2f} s"
    return f"{s / 60:.1f} min"


def pretty_json(text: str | None) -> tuple[str, bool]:
    """(indented JSON, True) when `text` parses as JSON, else (text, False)."""
    if text is None:
        return "", False
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False), True
    except (TypeError, ValueError):
        return text, False


def _pre(inner: str) -> str:
    return (
        '<pre style="white-space: pre-wrap; word-break: break-word; font-size: 0.85rem; '
        "background: #f8fafc; border: 1px solid #e5e7eb; border-radius: 6px; padding: 0.6rem; "
        'max-height: 32rem; overflow-y: auto;">' + inner + "</pre>"
    )


def position_strip(fraction: float, label: str, left_px: int, right_px: int, start: str, end: str) -> str:
    """A thin bar under the timeline, as wide as its plot area, with the current step marked at `fraction`.

    Why HTML and not a second Plotly figure: a step change redraws only this, and a Plotly redraw cost
    ~80 ms of the browser's main thread per step (software rendering); the timeline above is sent once.
    `start`/`end` label the trace's first and last instants so the strip reads on its own.
    """
    f = min(max(fraction, 0.0), 1.0) * 100
    side = "left: 0" if f < 80 else "right: 0"  # keep the label inside the bar near the right end
    return (
        f'<div style="margin: -0.6rem {right_px}px 0 {left_px}px; font-size: 0.75rem; color: #6b7280;">'
        '<div style="position: relative; height: 1.6rem; border-top: 2px solid #d1d5db;">'
        f'<div style="position: absolute; left: {f:.3f}%; top: -0.55rem; width: 0; height: 2.1rem; '
        'border-left: 2px dashed #111827;"></div>'
        f'<div style="position: absolute; left: {f:.3f}%; top: 0.15rem;">'
        f'<span style="position: absolute; {side}; white-space: nowrap; padding: 0 0.35rem; '
        f'background: #fef3c7; color: #111827; border-radius: 3px;">▲ {html.escape(label)}</span></div>'
        "</div>"
        '<div style="display: flex; justify-content: space-between;">'
        f"<span>{html.escape(start)}</span><span>{html.escape(end)}</span></div></div>"
    )


def highlight(text: str, ranges: Sequence[tuple[int, int, str]]) -> str:
    """`text` as an HTML <pre>, with each (start, end, label) range in a <mark> whose title is the label.

    Ranges are clipped to the text; overlapping ones are merged into one mark naming every label, so no
    character is lost or shown twice.
    """
    merged: list[list[Any]] = []
    for start, end, label in sorted((max(0, s), min(len(text), e), lb) for s, e, lb in ranges if e > s):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            if label not in merged[-1][2]:
                merged[-1][2].append(label)
        elif start < end:
            merged.append([start, end, [label]])
    out, pos = [], 0
    for start, end, labels in merged:
        out.append(html.escape(text[pos:start]))
        out.append(
            f'<mark title="{html.escape("; ".join(labels))}" style="background: #fecaca; padding: 0 1px; '
            f'border-bottom: 2px solid #dc2626;">{html.escape(text[start:end])}</mark>'
        )
        pos = end
    out.append(html.escape(text[pos:]))
    return _pre("".join(out))


def shade_scores(
    text: str,
    char_spans: Sequence[Sequence[int] | None],
    scores: Sequence[float],
    threshold: float | None,
    scale: float | None = None,
) -> str:
    """`text` with each token's characters shaded by its probe score: red at or above `threshold`, grey-blue
    below it, darker the further from it (out to `scale`, default the largest distance).

    Why grey-blue below: a probe well under its threshold must not look alarming, so only tokens over
    the threshold are red. Tokens without a character span (chat template) are skipped.
    """
    ref = threshold if threshold is not None else 0.0
    hi = scale or max((abs(s - ref) for s in scores), default=1.0) or 1.0
    pieces: list[tuple[int, int, float]] = []
    for span, score in zip(char_spans, scores, strict=False):
        if span is None or len(span) != 2:
            continue
        s, e = int(span[0]), int(span[1])
        if 0 <= s < e <= len(text):
            pieces.append((s, e, float(score)))
    pieces.sort()
    out, pos = [], 0
    for s, e, score in pieces:
        if s < pos:
            continue
        out.append(html.escape(text[pos:s]))
        alpha = min(1.0, abs(score - ref) / hi)
        hot = threshold is not None and score >= threshold
        rgb = "220,38,38" if hot else "100,116,139"
        out.append(
            f'<span title="{score:.3f}" style="background: rgba({rgb},{alpha * 0.55:.2f});">'
            f"{html.escape(text[s:e])}</span>"
        )
        pos = e
    out.append(html.escape(text[pos:]))
    return _pre("".join(out))


def shade_legend(unit: str, low: float, high: float) -> str:
    """The key to `shade_scores`: what red and grey-blue mean, and the unit and range of the scores."""
    swatch = '<span style="background: rgba({},0.5); padding: 0 0.4em; margin: 0 0.3em;">{}</span>'
    return (
        '<div style="font-size: 0.85em; color: #4b5563;">'
        + swatch.format("220,38,38", "above threshold")
        + swatch.format("100,116,139", "below threshold")
        + html.escape(
            f"darker = further from the threshold; hover a token for its score ({unit}, {low:g} to {high:g})"
        )
        + "</div>"
    )


def plain(text: str) -> str:
    return _pre(html.escape(text))


def tree_lines(
    nodes: Sequence[TreeNode], current_seq: int, positions: dict[int, int]
) -> list[dict[str, Any]]:
    """The step tree as indented lines (depth-first, children in start order), current step flagged.

    A node whose parent is not among `nodes` (the partial tree of a large trace) starts a root; a node
    with more children than shown says how many are elsewhere. Branches of a multi-path search appear as
    sibling subtrees, so the shape of the search is the shape of the tree.
    """
    by_span = {n.span_id: n for n in nodes}
    children: dict[str, list[TreeNode]] = {}
    roots: list[TreeNode] = []
    for n in nodes:
        if n.parent_span_id and n.parent_span_id in by_span:
            children.setdefault(n.parent_span_id, []).append(n)
        else:
            roots.append(n)
    lines: list[dict[str, Any]] = []

    def walk(node: TreeNode, prefix: str, last: bool, depth: int) -> None:
        glyph = "" if depth == 0 else ("└─ " if last else "├─ ")
        kids = sorted(children.get(node.span_id, []), key=lambda k: (k.start_time_ns, k.seq))
        hidden = node.children - len(kids)
        lines.append(
            {
                "seq": node.seq,
                "position": positions.get(node.seq),
                "label": f"{prefix}{glyph}{node.kind}: {node.name}",
                "hidden_children": max(0, hidden),
                "current": node.seq == current_seq,
                "error": node.is_error,
            }
        )
        child_prefix = prefix + ("" if depth == 0 else ("   " if last else "│  "))
        for i, kid in enumerate(kids):
            walk(kid, child_prefix, i == len(kids) - 1, depth + 1)

    for root in sorted(roots, key=lambda r: (r.start_time_ns, r.seq)):
        walk(root, "", True, 0)
    return lines


def one_line(text: str) -> str:
    """`text` on one line: line breaks and other control characters shown as visible escapes (`\\n`).

    Why: a tree line is one node; a span name with `\\n\\n` in it must not start a new line of the tree.
    """
    return "".join(repr(c)[1:-1] if (ord(c) < 32 or ord(c) == 127) else c for c in text)


def tree_html(lines: Sequence[dict[str, Any]], trace_id: str) -> str:
    """The tree lines as a monospace block; each line links to its step, the current one is bold."""
    rows = []
    for line in lines:
        label = html.escape(one_line(line["label"]))
        pos = line["position"]
        if pos is not None:
            link = html.escape(f"?{urlencode({'trace': trace_id, 'step': pos})}")
            label = f'<a href="{link}" target="_self" style="color:inherit;text-decoration:none">{label}</a>'
            label = f'<span style="color:#6b7280">#{pos:<5}</span> ' + label
        if line["error"]:
            label += ' <span style="color:#dc2626">× error</span>'
        if line["hidden_children"]:
            label += f' <span style="color:#6b7280">(+{line["hidden_children"]} more)</span>'
        if line["current"]:
            label = f'<b style="background:#fef3c7">{label} ◀</b>'
        rows.append(label)
    return (
        '<div style="font-family: ui-monospace, monospace; font-size: 0.8rem; white-space: pre; '
        'overflow-x: auto; max-height: 48rem; overflow-y: auto; line-height: 1.45;">'
        + "\n".join(rows)
        + "</div>"
    )


def brief_html(brief: Brief) -> str:
    """The incident brief as HTML: one row per section, each sentence followed by links to its steps.

    Every sentence is trace text or quotes it, so all of it is escaped; the links are ours (`?trace=&step=`)
    and stay on this page (`target="_self"`)."""
    rows = []
    for title, sentences in brief.sections:
        items = []
        for s in sentences:
            links = " ".join(
                f'<a href="{html.escape("?" + urlencode({"trace": brief.trace_id, "step": p}))}" '
                f'target="_self">#{p}</a>'
                for p in s.positions
            )
            items.append(f"<li>{html_text(s.text)}{' <span>→ ' + links + '</span>' if links else ''}</li>")
        rows.append(
            f'<tr><th style="text-align:left;vertical-align:top;padding:0.2rem 1rem 0.2rem 0;'
            f'white-space:nowrap">{html.escape(title)}</th><td style="padding:0.2rem 0">'
            f'<ul style="margin:0;padding-left:1.1rem">{"".join(items)}</ul></td></tr>'
        )
    return (
        '<section id="brief" style="border:1px solid #e5e7eb;border-radius:0.5rem;padding:0.6rem 1rem;'
        'margin-bottom:0.8rem"><div style="font-weight:600;margin-bottom:0.3rem">Incident brief</div>'
        f'<table style="border-collapse:collapse;font-size:0.9rem">{"".join(rows)}</table></section>'
    )
