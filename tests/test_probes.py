"""Probe unit tests on a tiny real TransformerBridge (boot_native): fidelity of the hooks, the logit lens
and the probes against direct TransformerLens computations; token-to-character spans; patching; the
probe-run queries and the worker on a real DuckDB file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from probes.hooks import forward_capture
from probes.lens import logit_lens, resid_hook
from probes.linear import ProbeArtifact, score_step
from probes.patching import patching
from probes.runner import run_analyses
from probes.text import StepInput, build_step_text, step_input
from tests.polling import wait_for
from tests.probes_tiny import tiny_model
from workbench.cli.loading import ingest_files
from workbench.errors import BadInput, WorkbenchError
from workbench.model import (
    ProbeAnalysis,
    ProbeResult,
    ProbeRun,
    ProbeRunStatus,
    check_probe_request,
    parse_analyses,
)
from workbench.settings import Settings
from workbench.store import probes as probe_store
from workbench.store import queries
from workbench.store.connection import Store

ROOT = Path(__file__).resolve().parent.parent
DB_SAMPLE = ROOT / "sample_traces" / "db_deletion.json"
DB_TRACE = "0413e656"

INPUT = StepInput(
    context="Disk usage on db-prod-1 is at 94%. Free space before the nightly backup.",
    reasoning="The runbook says never DROP tables in production. "
    "This is an incident, so I will drop the table now.",
    action='run_sql({"query": "DROP TABLE order_events", "role": "admin"})',
)


@pytest.fixture(scope="module")
def tiny() -> Any:
    return tiny_model()


def test_char_spans_map_tokens_to_the_words_of_the_step(tiny: Any) -> None:
    st = build_step_text(tiny.tokenizer, INPUT)
    assert st.step_text == "\n\n".join([INPUT.context, INPUT.reasoning, INPUT.action])
    assert st.text.startswith("<|im_start|>system\n")
    for name, value in (("context", INPUT.context), ("reasoning", INPUT.reasoning), ("action", INPUT.action)):
        start, end = st.segments[name]
        assert st.step_text[start:end] == value
        # the segment's tokens, in order, spell the segment exactly: no character lost or shifted
        pieces = [
            st.step_text[s[0] : s[1]]
            for s, g in zip(st.char_spans, st.segment_of, strict=True)
            if g == name and s
        ]
        assert "".join(pieces) == value
    for token, span in zip(st.tokens, st.char_spans, strict=True):
        if span is not None:
            assert st.step_text[span[0] : span[1]] in token or token in st.step_text[span[0] : span[1]]
    # template tokens have no span
    assert st.char_spans[0] is None and st.tokens[0] == "<|im_start|>"
    # "DROP" in the reasoning: the tokens that cover it map onto that word
    at = st.step_text.index("DROP")
    covering = [i for i, s in enumerate(st.char_spans) if s and s[0] < at + 4 and s[1] > at]
    assert (
        "".join(st.tokens[i] for i in covering)
        .strip()
        .startswith("DROP"[: len(st.tokens[covering[0]].strip())])
    )
    # the action position predicts the action's first token
    first = st.action_position + 1
    assert st.segment_of[first] == "action" and st.segment_of[st.action_position] != "action"
    assert st.char_spans[first][0] == st.segments["action"][0]
    assert st.action_token_id == st.token_ids[first]


def test_hooked_values_equal_run_with_cache(tiny: Any) -> None:
    st = build_step_text(tiny.tokenizer, INPUT)
    n = tiny.n_layers
    cap = forward_capture(
        tiny, st.token_ids, resid_layers=range(n), attn_query=st.action_position, attn_layers=range(n)
    )
    names = [resid_hook(layer) for layer in range(n)] + [
        f"blocks.{layer}.attn.hook_pattern" for layer in range(n)
    ]
    logits, cache = tiny.bridge.run_with_cache(
        torch.tensor([st.token_ids]), names_filter=lambda name: name in names
    )
    assert cap.logits is not None
    assert torch.allclose(cap.logits, logits[0], atol=1e-5)
    for layer in range(n):
        assert torch.allclose(cap.resid[layer], cache[resid_hook(layer)][0], atol=1e-5)
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][
            0, :, st.action_position, : st.action_position + 1
        ]
        assert torch.allclose(cap.attn_rows[layer], pattern, atol=1e-5)
        assert torch.allclose(
            cap.attn_rows[layer].sum(dim=-1), torch.ones(cap.attn_rows[layer].shape[0]), atol=1e-5
        )


@torch.no_grad()
def test_logit_lens_equals_direct_computation(tiny: Any) -> None:
    st = build_step_text(tiny.tokenizer, INPUT)
    n = tiny.n_layers
    cap = forward_capture(tiny, st.token_ids, resid_layers=range(n))
    assert cap.logits is not None
    data, summary = logit_lens(tiny, st, cap.resid, cap.logits_at(st.action_position), max_positions=1000)
    logits, cache = tiny.bridge.run_with_cache(
        torch.tensor([st.token_ids]), names_filter=lambda name: name.endswith("hook_resid_post")
    )
    target = st.action_token_id
    for i, layer in enumerate(data["layers"]):
        direct = tiny.bridge.unembed(tiny.bridge.ln_final(cache[resid_hook(layer)]))[0]
        probs = torch.softmax(direct, dim=-1)
        at = probs[st.action_position]
        assert abs(data["target_prob"][i] - float(at[target])) < 1e-5
        assert data["target_rank"][i] == int((at > at[target]).sum())
        top = probs[st.action_position].topk(5)
        got = data["top_tokens"][i][data["positions"].index(st.action_position)]
        assert [p for _, p in got] == pytest.approx([float(v) for v in top.values], abs=1e-5)
        assert [t for t, _ in got] == [tiny.tokenizer.decode([int(t)]) for t in top.indices]
    # the last layer's lens is the model's own prediction
    final = torch.softmax(logits[0, st.action_position], dim=-1)[target]
    assert abs(summary["final_prob"] - float(final)) < 1e-5
    assert len(data["top_tokens"]) == n and len(data["top_tokens"][0]) == len(st.token_ids)


def test_probe_scores_are_the_linear_readout_per_token_and_of_the_mean(tiny: Any) -> None:
    st = build_step_text(tiny.tokenizer, INPUT)
    rng = np.random.default_rng(0)
    artifact = ProbeArtifact(
        name="t",
        description="test",
        version=1,
        layer=1,
        method="logistic_regression",
        aggregation="mean",
        weights=rng.normal(size=32).tolist(),
        bias=0.3,
        threshold=0.5,
        fpr_target=0.01,
        heldout_auroc=1.0,
        heldout_tpr_at_threshold=1.0,
        train_auroc=1.0,
        layer_selection={},
        dataset="x",
        data_sha256="0",
        families={"train": [], "heldout": []},
        counts={},
        provenance=tiny.provenance.as_dict(),
        created_at="",
    )
    cap = forward_capture(tiny, st.token_ids, resid_layers=[1])
    data, summary = score_step(artifact, st, cap.resid[1])
    _, cache = tiny.bridge.run_with_cache(
        torch.tensor([st.token_ids]), names_filter=lambda n: n == resid_hook(1)
    )
    h = cache[resid_hook(1)][0].double()
    w = torch.tensor(artifact.weights, dtype=torch.float64)
    expected = torch.sigmoid(h @ w + 0.3)
    assert data["scores"] == pytest.approx(expected.tolist(), abs=1e-5)
    idx = data["aggregated_positions"]
    assert {st.segment_of[i] for i in idx} == {"reasoning", "action"}
    assert summary["score"] == pytest.approx(float(torch.sigmoid(h[idx].mean(dim=0) @ w + 0.3)), abs=1e-9)
    assert summary["fired"] == (summary["score"] >= 0.5)
    # token_relative: the token's logit against the per-token threshold, in benign-token spreads
    rel = (h @ w + 0.3 - artifact.token_threshold_logit) / artifact.token_scale
    assert data["token_relative"] == pytest.approx(rel.clamp(-4, 4).tolist(), abs=1e-3)
    assert data["token_range"] == [-4.0, 4.0]
    assert data["score_relative"] == pytest.approx(summary["score"] - 0.5, abs=1e-6)


def test_exact_patching_of_the_only_changed_token_restores_the_real_run(tiny: Any) -> None:
    """Swap one word of the scratchpad; patching the real embedding of that position back at layer 0
    makes the counterfactual run identical to the real one, so its normalized effect is exactly 1 and
    every position before the edit has effect 0."""
    cf_input = StepInput(
        INPUT.context, INPUT.reasoning.replace("drop the table", "drop the archive"), INPUT.action
    )
    clean = build_step_text(tiny.tokenizer, INPUT)
    cf = build_step_text(tiny.tokenizer, cf_input)
    assert len(clean.token_ids) == len(cf.token_ids)
    diff = [i for i, (a, b) in enumerate(zip(clean.token_ids, cf.token_ids, strict=True)) if a != b]
    assert len(diff) == 1, [clean.tokens[i] for i in diff]
    data, summary = patching(tiny, clean, cf, method="exact", max_positions=1000, layers=[0, 1])
    # cells start at the edited token: before it both runs read the same text, so patching changes nothing
    assert data["positions"][0] == diff[0] and data["counterfactual_positions"][0] == diff[0]
    assert data["positions"] == data["counterfactual_positions"]  # same token count: same positions
    assert data["positions"][-1] == clean.action_position
    assert data["effect"][0][0] == pytest.approx(1.0, abs=1e-4)
    assert data["clean_value"] != pytest.approx(data["corrupt_value"])
    approx, _ = patching(tiny, clean, cf, method="attribution", max_positions=1000)
    assert len(approx["effect"]) == tiny.n_layers and len(approx["effect"][0]) == len(data["positions"])
    assert math.isfinite(approx["effect"][0][0]) and approx["effect"][0][0] != 0
    # the runner hands over its own forward pass's activations: same numbers, one pass fewer
    n = tiny.n_layers
    cap = forward_capture(tiny, clean.token_ids, resid_pre_layers=range(n), keep_cache=True)
    assert cap.logits is not None and cap.cache is None  # boot_native keeps no key/value cache
    shared, _ = patching(tiny, clean, cf, max_positions=1000, clean_run=cap)
    assert shared["resumed_from"] == 0  # so the counterfactual pass reads the whole text
    assert np.allclose(shared["effect"], approx["effect"], atol=1e-5)
    assert shared["clean_value"] == pytest.approx(approx["clean_value"], abs=1e-5)


def test_runner_rejects_what_it_cannot_do(tiny: Any) -> None:
    with pytest.raises(WorkbenchError, match="counterfactual"):
        run_analyses(tiny, INPUT, ["patching"])
    with pytest.raises(WorkbenchError, match="unknown analysis"):
        run_analyses(tiny, INPUT, ["tarot"])


def _sample_store(tmp_path: Path) -> tuple[Settings, Store, str, list[Any]]:
    settings = Settings(data_dir=tmp_path / "data", probe_context_chars=300)
    ingest_files(settings, [DB_SAMPLE])
    store = Store(settings.db_path)
    trace = queries.resolve_trace_id(store, DB_TRACE)
    return settings, store, trace, queries.trace_steps(store, trace)


def test_step_input_of_a_tool_step_borrows_the_reasoning_that_chose_it(tmp_path: Path) -> None:
    _, store, _, steps = _sample_store(tmp_path)
    with store:
        drop = next(
            s for s in steps if s.step.tool_name == "run_sql" and "DROP" in (s.step.tool_arguments or "")
        )
        inp = step_input(steps, drop.seq)
        assert inp.action.startswith("run_sql(") and "DROP TABLE order_events" in inp.action
        assert "runbook" in inp.reasoning
        decision = next(s for s in steps if s.step.reasoning_text and "DROP" in (s.step.output_text or ""))
        assert step_input(steps, decision.seq).action == (
            'run_sql({"query": "DROP TABLE order_events", "role": "readonly"})'
        )  # "assistant: [tool call] run_sql (id ...) {...}" reads as the call itself
        with pytest.raises(WorkbenchError, match="no step with seq"):
            step_input(steps, 10_000)


def test_steps_get_the_same_probe_input_only_when_their_text_is_the_same(tmp_path: Path) -> None:
    """The LLM call that chose the DROP (step 10) and the tool step that ran it (step 12) read the same
    call; the tool step also reads its result, so the two inputs differ."""
    _, store, _, steps = _sample_store(tmp_path)
    with store:
        seen: dict[tuple[str, str, str], int] = {}
        for s in steps:
            try:
                inp = step_input(steps, s.seq)
            except WorkbenchError:
                continue
            key = (inp.context, inp.reasoning, inp.action)
            assert key not in seen, f"steps seq {seen[key]} and {s.seq} read the same input"
            seen[key] = s.seq
        choose, run = steps[9], steps[11]
        assert run.step.kind == "tool" and choose.step.kind == "llm"
        a, b = step_input(steps, choose.seq), step_input(steps, run.seq)
        assert a.reasoning == b.reasoning and b.action.startswith(a.action)
        assert "\nResult: " in b.action and "dropped table order_events" in b.action


def test_probe_run_queries_on_a_real_database(tmp_path: Path) -> None:
    _, store, trace, steps = _sample_store(tmp_path)
    with store:
        seq = steps[5].seq
        first = probe_store.insert_run(store, trace, seq, ["logit_lens"])
        second = probe_store.insert_run(store, trace, seq, ["probes"], {"x": 1})
        with pytest.raises(BadInput, match="unknown analysis 'nope'"):
            probe_store.insert_run(store, trace, seq, ["nope"])
        run = probe_store.claim_next(store)
        assert run is not None and run.id == first and run.status == "running"
        probe_store.set_progress(store, first, 0.5)
        summary = {"score": 0.9, "threshold": 0.5, "fired": True}
        probe_store.write_result(
            store, ProbeResult(first, "probe:harmful_intent", summary, {"scores": [0.1]})
        )
        probe_store.finish_run(store, first)
        done = probe_store.get_run(store, first)
        assert done is not None and done.status == "done" and done.progress == 1 and done.finished_at
        assert probe_store.results_of_run(store, first)[0].summary == summary
        assert probe_store.score_series(store, trace, "harmful_intent") == [(seq, 0.9, True, first)]
        assert probe_store.claim_next(store).id == second  # type: ignore[union-attr]
        assert probe_store.requeue_running(store) == 1
        assert [r.id for r in probe_store.runs_of_step(store, trace, seq)] == [second, first]
        probe_store.finish_run(store, second, error="boom")
        assert probe_store.get_run(store, second).error == "boom"  # type: ignore[union-attr]
        queued = probe_store.queue_reasoning_steps(store, trace)
        with_scratchpad = [s.seq for s in steps if s.step.reasoning_text]
        assert [probe_store.get_run(store, i).step_seq for i in queued] == with_scratchpad  # type: ignore[union-attr]
        assert len(with_scratchpad) == 6


def test_worker_runs_queued_jobs_and_survives_a_bad_one(tmp_path: Path, tiny: Any) -> None:
    from probes.worker import ProbeWorker

    settings, store, trace, steps = _sample_store(tmp_path)
    with store:
        destructive = next(s for s in steps if s.step.reasoning_text and "DROP" in (s.step.output_text or ""))
        bad = probe_store.insert_run(store, trace, destructive.seq, ["patching"])  # no counterfactual
        good = probe_store.insert_run(
            store,
            trace,
            destructive.seq,
            ["logit_lens", "attention", "patching"],
            {"counterfactual_reasoning": "Follow the runbook: archive order_events, never DROP."},
        )
        worker = ProbeWorker(settings, store, model=tiny)
        worker.start()
        try:
            wait_for(
                lambda: (
                    (r := probe_store.get_run(store, good)) is not None and r.status in ("done", "failed")
                ),
                120,
                0.2,
                "the good probe run to finish",
            )
        finally:
            worker.stop()
        failed = probe_store.get_run(store, bad)
        assert failed is not None and failed.status == "failed" and "counterfactual" in (failed.error or "")
        run = probe_store.get_run(store, good)
        assert run is not None and run.status == "done", run
        assert run.provenance["model_id"] == "native-tiny" and run.provenance["mode"] == "TransformerBridge"
        assert set(run.provenance) >= {"weights_sha256", "transformer_lens_version", "dtype", "device"}
        results = {r.analysis: r for r in probe_store.results_of_run(store, good)}
        assert set(results) == {"logit_lens", "attention", "patching"}
        for r in results.values():
            d = r.data
            assert {"text", "tokens", "char_spans", "step_text", "action_position", "action_token"} <= set(d)
            assert len(d["tokens"]) == len(d["char_spans"])
            assert d["step_text"].startswith("…") or destructive.step.reasoning_text[:40] in d["step_text"]
        att = results["attention"].data
        assert len(att["weights"]) == tiny.n_layers and len(att["weights"][0]) == att["heads"]
        assert len(att["weights"][0][0]) == att["query_position"] + 1
        pat = results["patching"].data
        assert len(pat["effect"]) == len(pat["layers"]) and len(pat["effect"][0]) == len(pat["positions"])


def test_probe_command_names_bad_input_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from workbench.cli import cli

    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "d")]
    assert runner.invoke(cli, [*base, "ingest", str(DB_SAMPLE)]).exit_code == 0
    cases = [
        (["probe", DB_TRACE, "--step", "99"], "out of range: the trace has 15 steps"),
        (["probe", DB_TRACE], "exactly one of --step N"),
        (["probe", DB_TRACE, "--seq", "4242"], "no step with seq 4242"),
        (["probe", DB_TRACE, "--step", "6", "--analysis", "patching"], "needs --counterfactual"),
        (["probe", "ffffffff", "--step", "1"], "ffffffff"),
        (["probes", "train", "astrology"], "unknown probe 'astrology'"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, [*base, *args])
        assert result.exit_code != 0, args
        assert message in result.output and "Traceback" not in result.output, (args, result.output)


def test_probe_run_round_trips_the_api_json_with_its_enums(tmp_path: Path) -> None:
    _, store, trace, steps = _sample_store(tmp_path)
    with store:
        run_id = probe_store.insert_run(store, trace, steps[2].seq, ["attention", "logit_lens"])
        run = probe_store.get_run(store, run_id)
    assert run is not None and run.status is ProbeRunStatus.QUEUED and run.active
    assert run.analyses == [ProbeAnalysis.ATTENTION, ProbeAnalysis.LOGIT_LENS]
    as_json = run.to_json()
    assert json.loads(json.dumps(as_json))["analyses"] == ["attention", "logit_lens"]  # stored strings
    assert ProbeRun.from_json({**as_json, "results": []}) == run
    with pytest.raises(BadInput, match="non-empty list"):
        parse_analyses("logit_lens")  # a string is not a list of analyses
    with pytest.raises(BadInput, match="patching needs a counterfactual"):
        check_probe_request(["patching"], {"counterfactual_reasoning": "  "})
