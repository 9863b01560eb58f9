"""The workbench UI's queries and pages, on a real DuckDB file holding the five sample incidents.

Pages run under `streamlit.testing.v1.AppTest` (the real page scripts, no browser). Findings and probe
results are written as rows shaped by the contract in migration 0002, the way the findings engine and
the probe worker write them, so the pages are tested whether or not those engines ran.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sample_traces import long_trace
from sample_traces.catalog import get
from workbench.cli.loading import ingest_files
from workbench.errors import BadInput
from workbench.settings import Settings
from workbench.store import annotations, explore, probe_reads
from workbench.store.connection import Store
from workbench.ui import context, figures, probe_figures, render

PAGES = Path(__file__).resolve().parent.parent / "workbench" / "ui" / "app_pages"
SAMPLE_NAMES = ("db_deletion", "prompt_injection", "weekly_report", "tree_of_thought", "runaway_reasoning")


def _ingest(data_dir: Path, files: list[Path]) -> Store:
    totals = ingest_files(Settings(data_dir=data_dir), files)
    assert totals.accepted > 0 and not totals.errors
    return Store(data_dir / "workbench.duckdb")


@pytest.fixture(scope="module")
def samples_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = _ingest(tmp_path_factory.mktemp("ui"), [get(n).path for n in SAMPLE_NAMES])
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def store(samples_store: Store) -> Iterator[Store]:
    context.set_store(samples_store)
    yield samples_store
    context.set_store(None)


def _seq_where(store: Store, trace_id: str, condition: str) -> int:
    row = (
        store.cursor()
        .execute(
            f"SELECT seq FROM steps WHERE trace_id = ? AND {condition} ORDER BY start_time_ns LIMIT 1",
            [trace_id],
        )
        .fetchone()
    )
    assert row is not None, condition
    return int(row[0])


def _position(store: Store, trace_id: str, seq: int) -> int:
    return list(explore.step_order(store, trace_id)).index(seq) + 1


def _add_finding(store: Store, trace_id: str, seq: int, field: str, needle: str, chain: list[int]) -> None:
    """A finding row as the findings engine writes it (contract: migration 0002)."""
    cur = store.cursor()
    text = cur.execute(f"SELECT {field} FROM steps WHERE seq = ?", [seq]).fetchone()[0]
    start = text.index(needle)
    cur.execute(
        "INSERT INTO findings (trace_id, step_seq, span_id, rule_id, severity, title, explanation, "
        "evidence_field, evidence_start, evidence_end, evidence_excerpt, taint_chain, details, created_at) "
        "SELECT trace_id, seq, span_id, 'destructive-action', 'critical', 'DROP TABLE in production', "
        "'An irreversible statement ran against production without approval.', ?, ?, ?, ?, ?, '{}', ? "
        "FROM steps WHERE seq = ?",
        [field, start, start + len(needle), needle, json.dumps(chain), datetime.now(UTC), seq],
    )


def _add_probe_run(store: Store, trace_id: str, seq: int, score: float) -> int:
    """A finished probe run with the four analyses, shaped as the contract's probe_results.data."""
    text = store.cursor().execute("SELECT reasoning_text FROM steps WHERE seq = ?", [seq]).fetchone()[0]
    words = text.split()[:6]
    spans, pos = [], 0
    for w in words:
        start = text.index(w, pos)
        spans.append([start, start + len(w)])
        pos = start + len(w)
    common = {
        "text": "<|im_start|>" + text,
        "tokens": ["<|im_start|>", *words],
        "char_spans": [None, *spans],
        "step_text": text,
        "action_position": len(words),
        "action_token": words[-1],
    }
    layers = [0, 1, 2]
    positions = list(range(len(words) + 1))
    results = {
        "logit_lens": (
            {"first_layer_top1": 1, "final_prob": 0.7},
            {
                **common,
                "layers": layers,
                "positions": positions,
                "top_tokens": [[[["tok", 0.1 * (li + 1)]] * 5 for _ in positions] for li in layers],
                "target_rank": [9, 3, 0],
                "target_prob": [0.01, 0.2, 0.7],
            },
        ),
        "attention": (
            {"top_tokens": [[w, 0.2] for w in words[:5]]},
            {
                **common,
                "layers": layers,
                "heads": 2,
                "query_position": len(words),
                "weights": [[[0.5] * 7] * 2] * 3,
            },
        ),
        "probe:deception": (
            {"score": score, "threshold": 0.5, "fired": score >= 0.5},
            {
                **common,
                "scores": [0.0, *[score] * len(words)],
                "score": score,
                "threshold": 0.5,
                "fired": score >= 0.5,
                "layer": 2,
                "aggregation": "max",
                "artifact": {"name": "deception", "version": "1", "sha256": "ab" * 32, "heldout_auroc": 0.91},
            },
        ),
        "patching": (
            {"max_effect_layer": 1, "max_effect_position": 2},
            {
                **common,
                "layers": layers,
                "positions": positions,
                "effect": [[0.1 * li] * len(positions) for li in layers],
                "metric": "logit_diff",
                "clean_value": 2.0,
                "corrupt_value": -1.0,
                "counterfactual_text": "follow the runbook",
            },
        ),
    }
    analyses = ["logit_lens", "attention", "probes", "patching"]
    run_id = probe_reads.queue_probe_run(store, trace_id, seq, analyses, {"counterfactual_reasoning": "x"})
    cur = store.cursor()
    for analysis, (summary, data) in results.items():
        cur.execute(
            "INSERT INTO probe_results VALUES (?, ?, ?, ?)",
            [run_id, analysis, json.dumps(summary), json.dumps(data)],
        )
    cur.execute(
        "UPDATE probe_runs SET status = 'done', progress = 1, finished_at = ?, provenance = ? WHERE id = ?",
        [
            datetime.now(UTC),
            json.dumps({"model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "mode": "TransformerBridge"}),
            run_id,
        ],
    )
    return run_id


def _page(name: str, **query: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _shown(source: object) -> str:
    """What a reader sees of escaped Markdown or HTML: backslash escapes and entities undone."""
    text = re.sub(r"<[^>]*>", "", re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(source)))
    return html.unescape(text)


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info] + [c.value for c in at.code]
    # The element sources (HTML checks) and what a reader sees of them (text checks).
    return "\n".join([*(str(p) for p in parts), *(_shown(p) for p in parts)])


# ----------------------------------------------------------------------------------------- queries


def test_search_filters_and_full_text(store: Store) -> None:
    everything = explore.search_traces(store, explore.TraceFilter())
    assert len(everything) == 5
    drop = explore.search_traces(store, explore.TraceFilter(text="drop table ORDER_EVENTS"))
    assert [t.trace_id for t in drop] == [get("db_deletion").trace_id()]
    assert drop[0].matches >= 2  # the arguments of both attempts, at least
    exfil = explore.search_traces(store, explore.TraceFilter(text="audit-upload.parcelfast"))
    assert [t.trace_id for t in exfil] == [get("prompt_injection").trace_id()]
    errors = {t.trace_id for t in explore.search_traces(store, explore.TraceFilter(has_errors=True))}
    assert get("runaway_reasoning").trace_id() in errors and get("tree_of_thought").trace_id() not in errors
    by_agent = explore.search_traces(store, explore.TraceFilter(agents=("planner-agent",)))
    assert [t.trace_id for t in by_agent] == [get("tree_of_thought").trace_id()]
    costly = explore.search_traces(store, explore.TraceFilter(min_cost=0.1))
    assert {t.trace_id for t in costly} == {
        get("runaway_reasoning").trace_id(),
        get("tree_of_thought").trace_id(),
    }
    assert explore.search_traces(store, explore.TraceFilter(text="no such words anywhere")) == []


def test_step_order_is_start_time_order(store: Store) -> None:
    trace = get("weekly_report").trace_id()
    order = explore.step_order(store, trace)
    steps = explore.steps_by_seq(store, list(order))
    assert len(steps) == 25
    starts = [(s.step.start_time_ns, s.seq) for s in steps]
    assert starts == sorted(starts)


def test_tree_of_thought_branches_form_a_tree(store: Store) -> None:
    trace = get("tree_of_thought").trace_id()
    order = explore.step_order(store, trace)
    tree = explore.step_tree(store, trace, int(order[0]))
    assert tree.complete and len(tree.nodes) == 23
    lines = render.tree_lines(tree.nodes, int(order[0]), {int(s): i + 1 for i, s in enumerate(order)})
    labels = [line["label"] for line in lines]
    b1 = next(i for i, label in enumerate(labels) if label.endswith("branch B.1"))
    b = next(i for i, label in enumerate(labels) if label.endswith("branch B"))
    indent = lambda label: len(label) - len(label.lstrip("│ ├└─"))  # noqa: E731
    assert b < b1 and indent(labels[b1]) > indent(labels[b])  # B.1 nests under B


def test_annotations_round_trip_and_refuse_bad_input(store: Store) -> None:
    trace = get("db_deletion").trace_id()
    seq = int(explore.step_order(store, trace)[3])
    added = annotations.add_annotation(store, trace, seq, "  ana  ", "Runbook rb-017 was ignored here.")
    assert added.author == "ana" and added.id is not None
    assert annotations.list_annotations(store, trace, seq)[-1].text == "Runbook rb-017 was ignored here."
    with pytest.raises(BadInput, match="author is empty"):
        annotations.add_annotation(store, trace, seq, " ", "x")
    with pytest.raises(BadInput, match="no step with seq"):
        annotations.add_annotation(store, trace, 999_999, "ana", "x")
    store.read_only = True  # as when the UI runs outside `workbench serve`
    try:
        with pytest.raises(BadInput, match="open read-only"):
            annotations.add_annotation(store, trace, seq, "ana", "x")
    finally:
        store.read_only = False


def test_queue_probe_run_inserts_a_queued_row(store: Store) -> None:
    trace = get("prompt_injection").trace_id()
    seq = _seq_where(store, trace, "kind = 'reasoning'")
    run_id = probe_reads.queue_probe_run(
        store, trace, seq, ["patching"], {"counterfactual_reasoning": "ignore it"}
    )
    run = next(r for r in probe_reads.step_runs(store, seq) if r.id == run_id)
    assert (run.status, run.progress, run.analyses, run.params) == (
        "queued",
        0.0,
        ["patching"],
        {"counterfactual_reasoning": "ignore it"},
    )
    with pytest.raises(BadInput, match="analyses must be some of"):
        probe_reads.queue_probe_run(store, trace, seq, ["mind_reading"])
    with pytest.raises(BadInput, match="patching needs a counterfactual"):
        probe_reads.queue_probe_run(store, trace, seq, ["patching"])


def test_highlight_escapes_and_marks_exact_characters() -> None:
    out = render.highlight("run <DROP TABLE x> now", [(5, 15, "rule")])
    assert '<mark title="rule"' in out and "DROP TABLE</mark>" in out and "&lt;" in out and "<DROP" not in out
    both = render.highlight("abcdefgh", [(1, 4, "one"), (3, 6, "two"), (7, 99, "three")])
    assert 'title="one; two"' in both and ">bcdef</mark>" in both and ">h</mark>" in both


# ------------------------------------------------------------------------------------------ pages


def test_traces_page_searches_and_links_to_replay(store: Store) -> None:
    at = _page("traces")
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 5 and set(table["id"]) == {get(n).trace_id() for n in SAMPLE_NAMES}
    # worst severity first, then newest; the task (the user's first input) is the title
    ranks = [render.SEVERITY_ORDER.index(s.lower()) if s != "none" else -1 for s in table["severity"]]
    assert ranks == sorted(ranks, reverse=True) and table["severity"].iloc[0] == "CRITICAL"
    db = table[table["id"] == get("db_deletion").trace_id()].iloc[0]
    assert (
        db["task"].startswith("PagerDuty INC-4471: disk usage on db-prod-1") and db["severity"] == "CRITICAL"
    )
    at.text_input(key="traces_q").input("parcelfast").run()
    table = at.dataframe[0].value
    assert list(table["id"]) == [get("prompt_injection").trace_id()]
    assert table["open"].iloc[0] == f"/replay?trace={get('prompt_injection').trace_id()}"
    assert at.query_params["q"] == "parcelfast"


def test_replay_deep_link_opens_that_step_and_steps(store: Store) -> None:
    trace = get("db_deletion").trace_id()
    drop = _seq_where(
        store, trace, "tool_arguments LIKE '%DROP TABLE%' AND NOT is_error AND tool_name = 'run_sql'"
    )
    n = _position(store, trace, drop)
    at = _page("replay", trace=trace[:10], step=str(n))
    assert not at.exception, at.exception
    text = _text(at)
    assert f"Step {n} of 15" in text and "execute_tool run_sql" in text
    assert "DROP TABLE order_events" in text  # the tool call's arguments, pretty-printed
    assert any("dropped table order_events" in _shown(w.value) for w in at.warning)  # the side effect
    assert "attempt 2" in text
    timeline = at.get("plotly_chart")[0].proto.spec
    assert f"▲ step {n} · " in text and "step " not in timeline  # the marker is on the strip, not redrawn
    # The strip spans the timeline's plot area: its margins are pinned, its x range is explicit.
    layout = json.loads(timeline)["layout"]
    left = layout["margin"]["l"]
    assert (
        f"-0.6rem {figures.TIMELINE_RIGHT_PX}px 0 {left}px" in text and layout["yaxis"]["automargin"] is False
    )
    assert layout["xaxis"]["range"][0] < layout["xaxis"]["range"][1]
    at.button(key="next").click().run()
    assert f"Step {n + 1} of 15" in _text(at)
    assert at.query_params["step"] == str(n + 1)
    assert f"▲ step {n + 1} · " in _text(at)  # the marker moved
    at.button(key="prev").click().run()
    at.button(key="prev").click().run()
    assert f"Step {n - 1} of 15" in _text(at)


def test_replay_bad_links_say_what_is_wrong(store: Store) -> None:
    at = _page("replay", trace="ffffffffffff")
    assert "no trace with id 'ffffffffffff'" in _text(at)
    trace = get("db_deletion").trace_id()
    at = _page("replay", trace=trace, step="99")
    assert "outside this trace (1..15)" in _text(at) and "Step 15 of 15" in _text(at)
    at = _page("replay", trace=trace, step="abc")
    assert "not a number" in _text(at) and "Step 1 of 15" in _text(at)


def test_replay_shows_findings_evidence_taint_chain_and_probes(store: Store) -> None:
    trace = get("prompt_injection").trace_id()
    post = _seq_where(store, trace, "tool_name = 'http_post'")
    fetch = _seq_where(store, trace, "tool_name = 'fetch_url'")
    thought = _seq_where(store, trace, "kind = 'reasoning'")
    _add_finding(
        store,
        trace,
        post,
        "tool_arguments",
        "audit-upload.parcelfast-support.example.net",
        [fetch, thought, post],
    )
    _add_probe_run(store, trace, thought, score=0.83)
    at = _page("replay", trace=trace, step=str(_position(store, trace, post)))
    assert not at.exception, at.exception
    text = _text(at)
    assert "CRITICAL" in text and "destructive-action" in text
    # The evidence is highlighted in place (merged with any overlapping finding's evidence).
    assert re.search(r"<mark [^>]*>[^<]*audit-upload\.parcelfast-support\.example\.net[^<]*</mark>", text)
    chain = " → ".join(f"#{_position(store, trace, s)}" for s in (fetch, thought, post))
    assert f"taint chain: {chain}" in text
    timeline = at.get("plotly_chart")[0].proto.spec
    assert "taint chain" in timeline and "finding" in timeline

    at = _page("replay", trace=trace, step=str(_position(store, trace, thought)))
    assert not at.exception, at.exception
    text = _text(at)
    assert "probe:deception" in text and "0.830" in text and "fired" in text
    assert "Inside the model" in text and "rgba(220,38,38" in text  # per-token shading above threshold
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("logit lens" in s for s in specs) and any("activation patching" in s for s in specs)
    assert any("attention from the action position" in s for s in specs)


def test_replay_annotation_and_probe_queue_forms(store: Store) -> None:
    trace = get("weekly_report").trace_id()
    at = _page("replay", trace=trace, step="5")
    seq = int(explore.step_order(store, trace)[4])
    at.text_input(key="annotation_author").input("maria")
    at.text_area(key="annotation_text").input("Guessed the file name instead of listing the folder.")
    at.button[[b.label for b in at.button].index("Add note")].click().run()
    assert not at.exception, at.exception
    assert "note saved" in [s.value for s in at.success]
    assert "Guessed the file name" in _text(at) and "maria 20" in _text(at)
    assert annotations.list_annotations(store, trace, seq)[-1].author == "maria"

    at.button[[b.label for b in at.button].index("Queue probe run")].click().run()
    assert any("queued probe run" in s.value for s in at.success)
    run = probe_reads.step_runs(store, seq)[0]
    assert run.status == "queued" and set(run.analyses) == {"logit_lens", "probes"}
    assert any("queued" in p.proto.text for p in at.get("progress"))


def test_large_trace_pages_and_bins(tmp_path: Path) -> None:
    path = tmp_path / "long.pb"
    long_trace.write(path, steps=3_000, seed=2)
    big = _ingest(tmp_path / "big", [path])
    context.set_store(big)
    try:
        trace = explore.search_traces(big, explore.TraceFilter())[0].trace_id
        mode, tl = explore.timeline(big, trace)
        assert mode == "binned" and len(tl) <= 200 * 9 and int(tl["steps"].sum()) == 3_000
        at = _page("replay", trace=trace, step="2500")
        assert not at.exception, at.exception
        text = _text(at)
        assert (
            "Step 2,500 of 3,000" in text
            and "summarized per time bin" in at.get("plotly_chart")[0].proto.spec
        )
        assert "a large trace" in text
        tree = explore.step_tree(big, trace, int(explore.step_order(big, trace)[2499]))
        assert not tree.complete and len(tree.nodes) < 60
        at.slider(key="replay_step").set_value(3000).run()
        assert "Step 3,000 of 3,000" in _text(at)
    finally:
        context.set_store(None)
        big.close()


def test_dashboard_page(store: Store) -> None:
    at = _page("dashboard")
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["traces"] == "5" and metrics["steps"] == "94"
    card = at.dataframe[0].value
    assert set(card["agent"]) == {
        "ops-agent",
        "support-agent",
        "report-agent",
        "planner-agent",
        "research-agent",
    }
    research = card.set_index("agent").loc["research-agent"]
    assert research["completion"] == 0.0  # MaxIterationsExceeded: the run failed
    assert research["reasoning cost per completed task"] == "—"  # no completed task: not "None"
    assert card.set_index("agent").loc["report-agent", "human interventions"] == 1
    assert card.set_index("agent").loc["ops-agent", "retries"] >= 1
    assert research["reasoning share"] > 0.9


def test_findings_page_filters_and_links(store: Store) -> None:
    trace = get("db_deletion").trace_id()
    drop = _seq_where(
        store, trace, "tool_arguments LIKE '%DROP TABLE%' AND NOT is_error AND tool_name = 'run_sql'"
    )
    _add_finding(store, trace, drop, "tool_arguments", "DROP TABLE order_events", [])
    at = _page("findings")
    assert not at.exception, at.exception
    text = _text(at)
    assert f'href="/replay?trace={trace}&amp;step={_position(store, trace, drop)}"' in text
    at.multiselect(key="f_sev").set_value(["critical"]).run()
    badges = re.findall(
        r">(CRITICAL|HIGH|MEDIUM|LOW|INFO)</span>", "\n".join(str(m.value) for m in at.markdown)
    )
    assert badges and set(badges) == {"CRITICAL"}


def test_probes_page_draws_a_probe_over_a_trace(store: Store) -> None:
    trace = get("tree_of_thought").trace_id()
    for i, seq in enumerate(explore.step_order(store, trace)[1:4]):
        if store.cursor().execute("SELECT reasoning_text FROM steps WHERE seq = ?", [int(seq)]).fetchone()[0]:
            _add_probe_run(store, trace, int(seq), score=0.2 + 0.3 * i)
    at = _page("probes_page", trace=trace)
    assert not at.exception, at.exception
    assert "deception" in set(at.dataframe[0].value["probe"])
    roc = at.get("plotly_chart")[0].proto.spec  # the shipped artifacts' held-out ROC curves
    assert "held-out ROC" in roc and "harmful_intent (AUROC" in roc and "deception (AUROC" in roc
    spec = at.get("plotly_chart")[-1].proto.spec
    assert "probe:deception over the steps" in spec


def test_figures_handle_empty_inputs() -> None:
    import pandas as pd

    assert figures.timeline_detail(pd.DataFrame(), None).layout.title.text == "no steps"
    assert len(probe_figures.logit_lens_heatmap({}).data) == 1


def test_replay_renders_real_probe_results(store: Store) -> None:
    """Results computed by the probes runner on a tiny real model (not hand-made shapes) render."""
    pytest.importorskip("transformer_lens")
    from probes.runner import run_analyses
    from probes.text import StepInput
    from tests.probes_tiny import tiny_model

    trace = get("db_deletion").trace_id()
    seq = _seq_where(store, trace, "kind = 'llm' AND reasoning_text IS NOT NULL")
    reasoning = store.cursor().execute("SELECT reasoning_text FROM steps WHERE seq = ?", [seq]).fetchone()[0]
    inp = StepInput(context="Free disk space on db-prod-1.", reasoning=reasoning[:400], action="run_sql(...)")
    params = {"counterfactual_reasoning": "Follow runbook rb-017: archive order_events instead."}
    results = run_analyses(tiny_model(), inp, ["logit_lens", "attention", "patching"], params)
    run_id = probe_reads.queue_probe_run(store, trace, seq, ["logit_lens", "attention", "patching"], params)
    cur = store.cursor()
    for r in results:
        cur.execute(
            "INSERT INTO probe_results VALUES (?, ?, ?, ?)",
            [run_id, r.analysis, json.dumps(r.summary), json.dumps(r.data)],
        )
    cur.execute("UPDATE probe_runs SET status = 'done', progress = 1 WHERE id = ?", [run_id])
    at = _page("replay", trace=trace, step=str(_position(store, trace, seq)))
    assert not at.exception, at.exception
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    for title in ("logit lens", "attention from the action position", "activation patching"):
        assert any(title in s for s in specs), title


def test_position_strip_clamps_escapes_and_keeps_the_label_inside() -> None:
    near_start = render.position_strip(0.25, "step <1>", 120, 20, "a", "b")
    assert "left: 25.000%" in near_start and "step &lt;1&gt;" in near_start and "left: 0;" in near_start
    assert "margin: -0.6rem 20px 0 120px" in near_start
    past_end = render.position_strip(1.7, "step 9", 120, 20, "a", "b")
    assert "left: 100.000%" in past_end and "right: 0;" in past_end  # label turns back near the end
    assert "left: 0.000%" in render.position_strip(-3.0, "step 1", 0, 0, "a", "b")
