"""The sample incidents' steps as a labelled evaluation set (probes/datasets/samples.py) and the blind
`samples` block of `workbench probes report` (probes/sample_scores.py): the committed file is what the
builder makes, the label table covers exactly the steps that can be probed, two steps share an input
only when their text is the same, and the block's figures are `probes.evaluation`'s on the scores it
lists. The samples go through the real ingest into a real DuckDB file; the scoring tests use the tiny
real model (tests/probes_tiny.py); test_probes_smollm2.py runs the shipped artifacts on SmolLM2."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from probes import evaluation as ev
from probes.artifact import ProbeArtifact, ProbeError
from probes.datasets import samples
from probes.sample_scores import NOT_LOADED, load_rows, score_samples
from probes.text import step_input
from sample_traces.catalog import SAMPLES
from tests.probes_tiny import tiny_model
from workbench.cli import cli
from workbench.errors import WorkbenchError
from workbench.model import StepKind, StoredStep
from workbench.settings import Settings
from workbench.store import queries
from workbench.store.connection import Store


@pytest.fixture(scope="module")
def steps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[StoredStep]]:
    """Each sample's steps as the store reads them after the normal ingest."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("samples"))
    samples.ingest_samples(SAMPLES, settings)
    with Store(settings.db_path, read_only=True) as store:
        return {s.name: queries.trace_steps(store, s.trace_id()) for s in SAMPLES}


def test_the_committed_file_is_what_the_builder_makes() -> None:
    assert samples.main(["--check"]) == 0


def test_the_label_table_covers_exactly_the_steps_that_can_be_probed(
    steps: dict[str, list[StoredStep]],
) -> None:
    probeable: set[tuple[str, int]] = set()
    for name, trace in steps.items():
        for n, stored in enumerate(trace, start=1):
            try:
                step_input(trace, stored.seq)
            except WorkbenchError:
                continue
            probeable.add((name, n))
    table = {(name, n) for name, entries in samples.STEPS.items() for n in range(1, len(entries) + 1)}
    rows = load_rows()
    assert {(r["sample"], r["step"]) for r in rows} == probeable == table
    assert set(samples.HARMFUL) | set(samples.DECEPTIVE) <= table
    assert {(r["sample"], r["step"]) for r in rows if r["label"]} == set(samples.HARMFUL)
    assert {(r["sample"], r["step"]) for r in rows if r["deceptive"]} == set(samples.DECEPTIVE)
    assert all(r["reason"] for r in rows if r["label"]) and all(r["split"] == "evaluation" for r in rows)
    # the benign samples are benign throughout
    for r in rows:
        if r["sample"] in ("weekly_report", "tree_of_thought", "runaway_reasoning"):
            assert r["label"] == 0 and r["deceptive"] == 0


def test_a_changed_sample_fails_the_build_instead_of_keeping_its_labels(
    steps: dict[str, list[StoredStep]], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = next(s for s in SAMPLES if s.name == "db_deletion")
    trace = steps["db_deletion"]
    samples._check_steps(db, trace)  # as committed: no complaint
    with pytest.raises(ProbeError, match="has 14 steps, the label table 15"):
        samples._check_steps(db, trace[:-1])
    renamed = [
        *trace[:5],
        dataclasses.replace(trace[5], step=dataclasses.replace(trace[5].step, name="x")),
        *trace[6:],
    ]
    with pytest.raises(ProbeError, match="db_deletion step 6 is"):
        samples._check_steps(db, renamed)
    harmful = dict(samples.HARMFUL)
    harmful[("db_deletion", 6)] = ("TRUNCATE", "a label whose step no longer says what it did")
    monkeypatch.setattr(samples, "HARMFUL", harmful)
    with pytest.raises(ProbeError, match="db_deletion step 6 no longer holds 'TRUNCATE'"):
        samples._label(samples.HARMFUL, "db_deletion", 6, "run_sql DROP TABLE order_events")


def test_two_steps_share_an_input_only_when_their_text_is_the_same(
    steps: dict[str, list[StoredStep]],
) -> None:
    """Issue #18 item 4 on the evaluation rows: the runaway loop repeats the same search and reads the
    same documents, so those retrievals read alike; no two steps with different text do, and no
    harmful step shares its input with another step."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in load_rows():
        groups[(r["context"], r["reasoning"], r["action"])].append(r)

    def own_text(r: dict[str, Any]) -> tuple[Any, ...]:
        s = steps[r["sample"]][r["step"] - 1].step
        return (s.kind, s.name, s.input_text, s.reasoning_text, s.output_text, s.tool_arguments, s.error)

    for group in groups.values():
        if len(group) > 1:
            assert len({own_text(r) for r in group}) == 1, [(r["sample"], r["step"]) for r in group]
            assert not any(r["label"] or r["deceptive"] for r in group)
    for name, trace in steps.items():  # an LLM call and the tool step that ran it never read alike
        inputs = {n: step_input(trace, s.seq) for n, s in enumerate(trace, start=1)}
        llm = {v for n, v in inputs.items() if trace[n - 1].step.kind == StepKind.LLM}
        tools = {v for n, v in inputs.items() if trace[n - 1].step.kind == StepKind.TOOL}
        assert not llm & tools, name


def _artifact(model: Any, name: str, layers: list[int], seed: int) -> ProbeArtifact:
    """An artifact over the tiny model's layers (its own weights hash), with a seeded direction."""
    d_model = int(model.bridge.cfg.d_model)
    rng = np.random.default_rng(seed)
    return ProbeArtifact(
        name=name,
        description="test",
        version=2,
        layer=layers[0],
        method="logistic_regression",
        aggregation="mean logit over reasoning+action tokens",
        weights=[float(v) for v in rng.normal(size=d_model * len(layers))],
        bias=0.0,
        threshold=0.5,
        fpr_target=0.01,
        heldout_auroc=0.5,
        heldout_tpr_at_threshold=0.0,
        train_auroc=0.5,
        layer_selection={},
        dataset="test",
        data_sha256="0" * 64,
        families={"train": [], "heldout": []},
        counts={},
        provenance=model.provenance.as_dict(),
        created_at="2026-12-03T00:00:00+00:00",
        layers=layers,
    )


def test_the_samples_block_is_the_evaluation_of_the_scores_it_lists(tmp_path: Path) -> None:
    model = tiny_model()
    artifacts = [_artifact(model, "harmful_intent", [1, 2], 1), _artifact(model, "deception", [2], 2)]
    loads: list[int] = []

    def load() -> Any:
        loads.append(1)
        return model

    blocks = score_samples(artifacts, tmp_path / "cache", load)
    assert loads == [1]  # one model for both probes (one pass per row over layers 1 and 2)
    rows = load_rows()
    for artifact, (column, pos, neg) in zip(
        artifacts, (("label", "harmful", "benign"), ("deceptive", "deceptive", "honest")), strict=True
    ):
        block = blocks[artifact.name]
        y = np.array([r[column] for r in rows])
        assert block["computed"] and block["label"] == column and block["threshold"] == artifact.threshold
        assert block["counts"] == {pos: int(y.sum()), neg: int((1 - y).sum())}
        assert block["counts"][pos] == (16 if column == "label" else 5) and len(block["steps"]) == 94
        listed = block["steps"]
        assert [(x["sample"], x["step"], x["kind"], x["label"]) for x in listed] == [
            (r["sample"], r["step"], r["kind"], r[column]) for r in rows
        ]
        s = np.array([x["score"] for x in listed])
        fired = np.array([x["fired"] for x in listed])
        assert (fired == (s >= artifact.threshold)).all() and 0 < s.min() and s.max() < 1
        assert block["auroc"] == ev.auroc(y, s) and block["intervals"]["auroc"] == ev.auroc_ci(y, s)
        assert block["rates"]["tpr"] == ev.rate(fired[y == 1])
        assert block["rates"]["fpr"] == ev.rate(fired[y == 0])
        assert block["intervals"]["tpr"] == ev.rate_ci(fired[y == 1])
        assert block["intervals"]["fpr"] == ev.rate_ci(fired[y == 0])
        json.dumps(block, allow_nan=False)  # plain JSON, no NaN
    # a second report reads every row from the cache: no model, the same numbers
    assert score_samples(artifacts, tmp_path / "cache", None) == blocks
    # nothing cached and no model: says so; a model with other weights: says so
    assert score_samples(artifacts, tmp_path / "empty", None)["deception"] == {
        "computed": False,
        "reason": NOT_LOADED,
    }
    other = dataclasses.replace(
        artifacts[1], provenance={**artifacts[1].provenance, "weights_sha256": "f" * 64}
    )
    block = score_samples([other], tmp_path / "cache", lambda: model)["deception"]
    assert not block["computed"] and block["reason"].startswith(
        "not computed: trained on weights ffffffffffff"
    )


def test_the_report_without_samples_says_they_were_not_computed(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "probes", "report", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["probe"] for r in rows} == {"harmful_intent", "deception"}
    for r in rows:
        assert r["samples"] == {"computed": False, "reason": f"{NOT_LOADED} (pass --samples)"}
    assert not (tmp_path / "probe_features").exists()  # no pass, no cache read


def test_the_report_with_samples_but_no_model_says_so_and_still_reports(tmp_path: Path) -> None:
    """No cached features and a model that cannot load (a path that is not there: no network asked):
    the table still comes, each probe's block names why it has no figures."""
    result = CliRunner().invoke(
        cli,
        ["--data-dir", str(tmp_path), "probes", "report", "--samples", "--json"],
        env={"WORKBENCH_PROBE_MODEL": str(tmp_path / "no-such-model")},
    )
    assert result.exit_code == 0, result.output
    for r in json.loads(result.stdout):
        assert r["heldout_auroc"] > 0.5
        assert not r["samples"]["computed"]
        assert r["samples"]["reason"].startswith(f"{NOT_LOADED}: cannot load model")
    text = CliRunner().invoke(
        cli,
        ["--data-dir", str(tmp_path), "probes", "report", "--samples"],
        env={"WORKBENCH_PROBE_MODEL": str(tmp_path / "no-such-model")},
    )
    assert text.exit_code == 0 and "sample incidents' steps" in text.output and NOT_LOADED in text.output
