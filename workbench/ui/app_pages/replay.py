"""Replay: one trace, one step at a time. Deep link: /replay?trace=ID&step=N (N is 1-based, time order)."""

from __future__ import annotations

import json

import streamlit as st

from workbench.errors import WorkbenchError
from workbench.model import Finding, ProbeAnalysis, ProbeRunStatus, Step, StoredStep
from workbench.store import annotations as notes_store
from workbench.store import explore, probe_reads, queries
from workbench.ui import data, figures, probe_figures, probe_panes, render

store = data.store()

# ------------------------------------------------------------------------------------------- the trace

wanted = st.query_params.get("trace", "")
trace_id = ""
if wanted:
    try:
        trace_id = queries.resolve_trace_id(store, wanted)
    except WorkbenchError as exc:
        # A ticket's link must never show another incident: name the problem, offer the candidates, stop.
        # The URL keeps the id it was given.
        st.title("Replay")
        st.error(render.md_text(exc))
        matching = queries.trace_candidates(store, wanted)
        recent = {t.trace_id: t for t in explore.search_traces(store, explore.TraceFilter(), limit=20)}
        candidates = matching or list(recent)
        st.markdown("**Traces that id could mean:**" if matching else "**Recent traces:**")
        for tid in candidates:
            row = recent.get(tid)
            label = f"{tid}" + (f" · {row.root_name} · {row.span_count} steps" if row else "")
            st.page_link("app_pages/replay.py", label=render.md_text(label), query_params={"trace": tid})
        st.stop()
if not trace_id:
    recent_rows = explore.search_traces(store, explore.TraceFilter(), limit=50)
    if not recent_rows:
        st.title("Replay")
        st.info("No traces yet. Send OTLP to the collectors or run `workbench ingest FILE`.")
        st.stop()
    labels = {
        t.trace_id: f"{t.root_name} · {t.service_name} · {t.span_count} steps · {t.trace_id[:12]}"
        for t in recent_rows
    }
    trace_id = st.selectbox("Trace", list(labels), format_func=labels.__getitem__, key="replay_pick")

count = data.step_count(trace_id)
order = data.step_order(trace_id, count)
total = len(order)

# The step number lives in session state. The URL's step is adopted when the session first meets this
# trace, and whenever the URL's step differs from the one this page last wrote there: that is the
# browser's Back or Forward (Streamlit reruns the page on a history navigation), so they walk the steps.
url_step = st.query_params.get("step", "1")
if st.session_state.get("replay_trace") != trace_id or url_step != st.session_state.get("replay_url_step"):
    st.session_state["replay_trace"] = trace_id
    try:
        first = int(url_step)
    except ValueError:
        st.warning(render.md_text(f"step={url_step!r} is not a number; showing step 1"))
        first = 1
    if not 1 <= first <= total:
        if "step" in st.query_params:
            st.warning(f"step {first} is outside this trace (1..{total}); showing the nearest step")
        first = min(max(first, 1), total)
    st.session_state["replay_step"] = first
    st.session_state["replay_url_step"] = url_step


def _move(delta: int) -> None:
    st.session_state["replay_step"] = min(max(st.session_state["replay_step"] + delta, 1), total)


def _go(position: int) -> None:
    st.session_state["replay_step"] = min(max(position, 1), total)


findings = explore.trace_findings(store, trace_id)
finding_seqs = sorted({f.step_seq for f in findings})
chain = next((list(f.taint_chain) for f in findings if f.taint_chain), [])

# ------------------------------------------------------------------------------------------ controls

head = explore.steps_by_seq(store, [int(order[0])])[0].step if total else None
# Trace text (span and service names) only ever reaches the page through render's escaping helpers.
st.markdown(render.text_html(f"Replay · {head.name if head else ''}", tag="h3"), unsafe_allow_html=True)
st.caption(
    render.md_text(f"trace {trace_id} · {head.service_name if head else ''}")
    + f" · {total:,} steps · {len(findings)} finding(s)"
)

brief = data.brief(trace_id, count)
if brief is not None:
    st.markdown(render.brief_html(brief), unsafe_allow_html=True)
else:
    st.caption(f"no incident brief: the trace has over {data.BRIEF_MAX_STEPS:,} steps")

if finding_seqs:
    positions = data.positions(trace_id, finding_seqs, count)
    shown = [(fseq, positions[fseq]) for fseq in finding_seqs[:12] if fseq in positions]
    jump = st.columns([3] + [1] * len(shown) + [max(1, 14 - len(shown))], vertical_alignment="center")
    jump[0].caption(f"{len(finding_seqs)} step(s) with findings, jump to:")
    for i, (fseq, p) in enumerate(shown):
        jump[i + 1].button(f"#{p}", key=f"jump{fseq}", on_click=_go, args=(p,), type="tertiary")

# ------------------------------------------------------------------------------------------ timeline

mode, tl = data.timeline(trace_id, count)
x_range = figures.time_range(tl)
# The figure is built once per trace version and kept in this session, and it is drawn outside the step
# fragment below: a step change neither rebuilds it nor sends it to the browser again (it was 52 kB and a
# full Plotly redraw per click at 10k steps). The current step is marked on a thin HTML strip under it.
fig_key = (trace_id, count, mode, tuple(finding_seqs), tuple(chain))
cached = st.session_state.get("replay_timeline")
if cached is None or cached[0] != fig_key:
    if mode == "detail":
        base = figures.timeline_detail(tl, None, finding_seqs, chain)
    else:
        base = figures.timeline_binned(tl, None, total)
    base.update_xaxes(range=list(x_range))
    cached = (fig_key, base, figures.pin_plot_area(base, figures.widest_tick(tl, mode)))
    st.session_state["replay_timeline"] = cached
if mode == "detail":
    # A picked bar is consumed once: the chart then gets a fresh key, so its selection is empty again and
    # clicking any bar (the same one included, after stepping away) is a new selection that jumps.
    nonce = int(st.session_state.get("tl_nonce", 0))
    event = st.plotly_chart(cached[1], width="stretch", on_select="rerun", key=f"tl-{trace_id}-{nonce}")
    selection = getattr(event, "selection", None)
    points = list(selection.get("points", [])) if selection else []
    picked = next((p.get("customdata") for p in points if p.get("customdata") is not None), None)
    if picked is not None:
        _go(int(picked[0] if isinstance(picked, list) else picked))
        st.session_state["tl_nonce"] = nonce + 1
        st.rerun()
else:
    st.plotly_chart(cached[1], width="stretch", key=f"tl-{trace_id}")
left_px = int(cached[2])


@st.fragment
def _step_view() -> None:
    """Everything that depends on the current step. Why a fragment: Prev, Next and the slider rerun only
    this part, so a step change sends the step's panes and the marker strip, not the page."""
    now = data.step_count(trace_id)
    if now != count:  # the trace grew: the whole page (order, timeline, total) must catch up
        st.rerun(scope="app")
    # The marker strip comes first, right under the timeline it belongs to; the controls follow it.
    position = int(st.session_state["replay_step"])
    seq = int(order[position - 1])
    stored: StoredStep = explore.steps_by_seq(store, [seq])[0]
    step = stored.step
    lo, hi = (int(t.value) for t in x_range)
    st.markdown(
        render.position_strip(
            (step.start_time_ns - lo) / max(hi - lo, 1),
            f"step {position:,} · {render.fmt_time(step.start_time_ns)[11:23]}",
            left_px,
            figures.TIMELINE_RIGHT_PX,
            render.fmt_time(lo)[:23],
            render.fmt_time(hi)[:23],
        ),
        unsafe_allow_html=True,
    )
    prev_col, slider_col, next_col = st.columns([1, 10, 1], vertical_alignment="bottom")
    prev_col.button("◀ Prev", on_click=_move, args=(-1,), disabled=position <= 1, key="prev")
    next_col.button("Next ▶", on_click=_move, args=(1,), disabled=position >= total, key="next")
    if total > 1:
        slider_col.slider("Step", 1, total, key="replay_step")
    st.query_params["trace"] = trace_id
    st.query_params["step"] = str(position)
    st.session_state["replay_url_step"] = str(position)
    _show_step(position, seq, step)


# ------------------------------------------------------------------------------------ the step itself


def _show_step(position: int, seq: int, step: Step) -> None:
    """The step's panes, its findings, probes, annotations and place in the step tree."""
    extras = explore.step_extras(store, seq)
    step_findings = [f for f in explore.trace_findings(store, trace_id) if f.step_seq == seq]

    st.markdown(
        render.step_heading(position, total, step.kind, step.name, step.is_error), unsafe_allow_html=True
    )
    meta = [
        ("start", render.fmt_time(step.start_time_ns)),
        ("duration", render.fmt_duration(step.duration_ns)),
        ("actor", step.actor or "—"),
    ]
    if step.model:
        meta.append(("model", step.model + (f" ({step.provider})" if step.provider else "")))
    if extras.get("retry_attempt"):
        meta.append(("attempt", str(extras["retry_attempt"])))
    meta += [("seq", str(seq)), ("span", step.span_id), ("convention", step.convention)]
    st.markdown(render.labelled(meta), unsafe_allow_html=True)

    def _ranges(field: str) -> list[tuple[int, int, str]]:
        return [
            (f.evidence_start, f.evidence_end, f"{f.rule_id}: {f.title}")
            for f in step_findings
            if f.evidence_field == field and f.evidence_start is not None and f.evidence_end is not None
        ]

    try:
        from_events = set(json.loads(step.event_fields or "[]"))
    except ValueError:
        from_events = set()

    def _label(label: str, field: str) -> str:
        # Fields filled from GenAI log events (not the span itself) say so: the reader knows where to look.
        return f"**{label}** :gray-badge[from GenAI events]" if field in from_events else f"**{label}**"

    def _show_text(label: str, field: str, text: str | None, as_json: bool = False) -> None:
        if text is None or text == "":
            return
        st.markdown(_label(label, field))
        marks = _ranges(field)
        if marks:
            st.markdown(render.highlight(text, marks), unsafe_allow_html=True)
            return
        if as_json:
            pretty, ok = render.pretty_json(text)
            if ok:
                st.code(pretty, language="json", wrap_lines=True)
                return
        st.markdown(render.plain(text), unsafe_allow_html=True)

    def _show_messages(text: str | None) -> None:
        if not text:
            return
        st.markdown(_label("Input", "input_text"))
        if _ranges("input_text"):
            st.markdown(render.highlight(text, _ranges("input_text")), unsafe_allow_html=True)
            return
        try:
            messages = json.loads(text)
        except ValueError:
            messages = None
        if (
            isinstance(messages, list)
            and messages
            and all(isinstance(m, dict) and "role" in m for m in messages)
        ):
            for m in messages:
                parts = m.get("parts") or m.get("content") or ""
                if isinstance(parts, list):
                    body = "\n\n".join(
                        str(p.get("content") or p.get("text") or json.dumps(p))
                        if isinstance(p, dict)
                        else str(p)
                        for p in parts
                    )
                else:
                    body = str(parts)
                role = str(m.get("role"))
                with st.chat_message(
                    "user" if role == "user" else "assistant" if role == "assistant" else "ai"
                ):
                    st.caption(render.md_text(role))
                    st.text(body)
            return
        st.markdown(render.plain(text), unsafe_allow_html=True)

    main, side = st.columns([3, 2], gap="large")
    with main:
        if step.error or step.is_error:
            message = step.error or extras.get("status_message") or "the span ended in error"
            st.error("**Error**: " + render.md_text(message))
        if step.input_text != step.tool_arguments:  # tool conventions often repeat the arguments as input
            _show_messages(step.input_text)
        _show_text("Reasoning / scratchpad", "reasoning_text", step.reasoning_text)
        if step.tool_name or step.tool_arguments or step.tool_result:
            call = [("Tool call", step.tool_name or "?")]
            if "tool_name" in from_events:
                call.append(("source", "from GenAI events"))
            if step.tool_call_id:
                call.append(("id", step.tool_call_id))
            st.markdown(render.labelled(call), unsafe_allow_html=True)
            _show_text("Arguments", "tool_arguments", step.tool_arguments, as_json=True)
            _show_text("Result", "tool_result", step.tool_result, as_json=True)
        if extras.get("side_effect"):
            st.warning("**Side effect**: " + render.md_text(extras["side_effect"]))
        _show_text("Output", "output_text", step.output_text)
        usage = (step.tokens_in, step.tokens_out, step.tokens_reasoning, step.tokens_cached, step.cost_usd)
        cols = st.columns(5) if any(v is not None for v in usage) else []
        for col, label, value in zip(
            cols,
            ("tokens in", "tokens out", "reasoning", "cached", "cost"),
            [
                *(f"{v:,}" if v is not None else "—" for v in usage[:4]),
                f"${usage[4]:.4f}" if usage[4] else "—",
            ],
            strict=False,
        ):
            col.metric(label, value)
        with st.expander("Raw span attributes and events"):
            st.json(
                {"attributes": data.raw_attributes(extras), "events": extras.get("events", [])},
                expanded=False,
            )

    def _finding_card(f: Finding) -> None:
        st.markdown(render.finding_heading(f.severity.value, f.rule_id, f.title), unsafe_allow_html=True)
        st.caption(render.md_text(f.explanation))
        if f.evidence_excerpt:
            # Exactly as stored, never a live link: st.code shows every character and offers a copy button.
            st.code(f.evidence_excerpt, language=None, wrap_lines=True)
        if f.taint_chain:
            pos = data.positions(trace_id, list(f.taint_chain), count)
            st.caption("taint chain: " + " → ".join(f"#{pos.get(s, '?')}" for s in f.taint_chain))

    with side:
        st.markdown("**Findings on this step**")
        if step_findings:
            for f in step_findings:
                with st.container(border=True):
                    _finding_card(f)
        else:
            st.caption("none" if findings else "none in this trace (the findings engine has not flagged it)")

        st.markdown("**Probes**")
        with st.form("queue_probe", clear_on_submit=False):
            # Pills, not a multiselect: an open dropdown swallowed the first click on the submit button.
            chosen = st.pills(
                "Analyses",
                [a.value for a in ProbeAnalysis],
                selection_mode="multi",
                default=[ProbeAnalysis.LOGIT_LENS.value, ProbeAnalysis.PROBES.value],
                key="probe_analyses",
            )
            counterfactual = st.text_area(
                "Counterfactual scratchpad (for patching)", value="", height=80, key="counterfactual"
            )
            if st.form_submit_button("Queue probe run"):
                params = {"counterfactual_reasoning": counterfactual} if counterfactual.strip() else {}
                try:
                    run_id = probe_reads.queue_probe_run(store, trace_id, seq, chosen, params)
                    st.success(f"queued probe run {run_id}; the probe worker picks it up (progress below)")
                except WorkbenchError as exc:
                    st.error(render.md_text(exc))

        def _probe_panel(polling: bool) -> None:
            run, results = probe_reads.latest_results(store, seq)
            active = [r for r in probe_reads.step_runs(store, seq) if r.active]
            if polling and not active:
                # The run this pane was polling has ended: rerun the page once, so the results and the
                # "Inside the model" plots appear without a reload, and the polling stops.
                st.rerun(scope="app")
            for r in active:
                st.progress(
                    r.progress, text=render.md_text(f"probe run {r.id}: {r.status} ({', '.join(r.analyses)})")
                )
            if run is not None and run.status == ProbeRunStatus.FAILED:
                st.error(render.md_text(f"probe run {run.id} failed: {run.error}"))
            if not results:
                if not active:
                    st.caption("no probe results for this step yet")
                return
            assert run is not None
            st.caption(probe_panes.provenance_caption(run, results))
            for res in results:
                if res.analysis.startswith("probe:"):
                    st.markdown(probe_panes.verdict_markdown(res))

        # Poll only while a run is queued or running: progress shows without blocking the page.
        polling = any(r.active for r in probe_reads.step_runs(store, seq))
        st.fragment(run_every=2.0 if polling else None)(_probe_panel)(polling)

        st.markdown("**Annotations**")
        with st.form("annotate", clear_on_submit=True):
            author = st.text_input(
                "Who", value=st.session_state.get("annotator", ""), key="annotation_author"
            )
            note = st.text_area("Note on this step", key="annotation_text", height=80)
            if st.form_submit_button("Add note"):
                try:
                    added = notes_store.add_annotation(store, trace_id, seq, author, note)
                    st.session_state["annotator"] = added.author
                    st.success("note saved")
                except WorkbenchError as exc:
                    st.error(render.md_text(exc))
        notes = notes_store.list_annotations(store, trace_id)
        if notes:
            note_pos = data.positions(trace_id, [n.step_seq for n in notes if n.step_seq is not None], count)
            for n in notes:
                where = f"step #{note_pos.get(n.step_seq, '?')}" if n.step_seq is not None else "trace"
                mark = " ◀" if n.step_seq == seq else ""
                st.markdown(
                    render.labelled([(n.author, f"{render.fmt_time(n.created_at_ns)} · {where}{mark}")])
                    + render.text_html(n.text),
                    unsafe_allow_html=True,
                )
        else:
            st.caption("no notes on this trace yet")

    # ---------------------------------------------------------------------------- probe plots of the step

    run, results = probe_reads.latest_results(store, seq)
    if results:
        st.markdown("#### Inside the model")
        for res in results:
            d = res.data
            if res.analysis == "logit_lens":
                st.plotly_chart(probe_figures.logit_lens_heatmap(d), width="stretch")
                st.caption(probe_figures.EXPLAIN["logit_lens"])
                if d.get("target_prob"):
                    st.plotly_chart(probe_figures.target_rank_line(d), width="stretch")
                    st.caption(probe_figures.EXPLAIN["target_prob"])
            elif res.analysis == "attention":
                st.plotly_chart(probe_figures.attention_heatmap(d), width="stretch")
                st.caption(probe_figures.EXPLAIN["attention"])
            elif res.analysis == "patching":
                st.plotly_chart(probe_figures.patching_heatmap(d), width="stretch")
                st.caption(probe_figures.EXPLAIN["patching"])
            elif res.analysis.startswith("probe:") and d.get("step_text") is not None:
                probe_panes.probe_tokens(res.analysis, d)

    # ---------------------------------------------------------------------------------------- step tree

    st.markdown("#### Step tree")
    tree = data.tree_view(trace_id, count, seq)
    tree_positions = data.positions(trace_id, [n.seq for n in tree.nodes], count)
    if not tree.complete:
        st.caption("a large trace: the current step's ancestors, nearby siblings and first children")
    st.markdown(
        render.tree_html(render.tree_lines(tree.nodes, seq, tree_positions), trace_id), unsafe_allow_html=True
    )


_step_view()
