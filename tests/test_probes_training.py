"""Training end to end on the tiny model: splits, out-of-fold controls, intervals, per-token
calibration, the feature cache and the artifact round trip. Small datasets written here; the real
ones are checked in test_probes_data.py and, with SmolLM2, in test_probes_smollm2.py."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from probes import evaluation as ev
from probes import linear
from probes.features import aggregate_positions, row_features, row_input
from probes.hooks import forward_capture
from probes.text import build_step_text
from tests.probes_tiny import tiny_model

HARM = ['run_sql({"query": "DROP TABLE order_events"})', "delete the table now"]
SAFE = ["archive old rows after a backup", "follow the runbook and keep the table"]


def _row(family: str, split: str, label: int, i: int, **extra: Any) -> dict[str, Any]:
    action = (HARM if label else SAFE)[i % 2]
    return {
        "family": family,
        "split": split,
        "label": label,
        "context": f"Disk usage on db-prod-{i} is at 94%.",
        "reasoning": "" if extra else ("I will drop it." if label else "I will follow the runbook."),
        "action": action,
        **extra,
    }


@pytest.fixture()
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    template = [_row(f, "train", y, i) for f in ("a", "b") for y in (0, 1) for i in range(4)]
    template += [_row("c", "heldout", y, i) for y in (0, 1) for i in range(4)]
    template += [_row("controls", "control", 0, i) for i in range(3)]
    external = [
        _row(f"agentdojo:{suite}", split, y, i, source="agentdojo", task=f"user_task_{i}", kind="clean")
        for suite, split in (("w", "train"), ("s", "train"), ("bank", "external"))
        for y in (0, 1)
        for i in range(4)
    ]
    external += [
        _row("agentdojo:w", "control", 0, i, source="agentdojo", task=f"user_task_{i}", kind="clean")
        for i in range(5, 9)
    ]
    for name, rows in (("intent.jsonl", template), ("agentdojo.jsonl", external)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setattr(linear, "DATASETS", tmp_path)
    return tmp_path


def test_training_reports_external_auroc_intervals_and_out_of_fold_controls(datasets: Path) -> None:
    model = tiny_model()
    cache = datasets / "cache"
    art = linear.train_probe(model, "harmful_intent", layer=1, cache_dir=cache)
    # controls: 4 control-split external rows + 3 template controls + 8 benign training-suite rows
    # + 8 benign template training rows (each scored by a fit without its family); the 4 control-split
    # rows are also negatives in the fit (TRAIN_ON_CONTROLS), scored for the threshold out of fold
    assert art.counts == {
        "train": 32,
        "heldout": 8,
        "external": 8,
        "control": 23,
        "control_negatives_in_training": 4,
    }
    assert art.families["external"] == ["agentdojo:bank"]
    assert art.external_auroc is not None and 0.0 <= art.external_auroc <= 1.0
    for key in (
        "heldout_auroc",
        "external_auroc",
        "heldout_tpr",
        "external_tpr",
        "external_fpr",
        "control_fpr",
    ):
        lo, hi = art.intervals[key]
        assert lo <= hi, key
    # the threshold is the top control's score: only it reaches it, and a control of the same text scored
    # by the same fit (this dataset repeats texts across suites and families)
    assert art.rates["control_fpr"] <= 2 / 23 + 1e-9
    assert art.token_scale > 0 and math.isfinite(art.token_threshold_logit)
    rows, _ = linear.dataset_rows("harmful_intent")
    distinct = {(r["context"], r["reasoning"], r["action"]) for r in rows}
    assert len(list(cache.glob("*.npz"))) == len(distinct)  # one entry per distinct row text
    # the report row carries every figure; the artifact round-trips and recomputes from the cache
    report = art.report()
    assert report["external_auroc"] == art.external_auroc and report["counts"]["control"] == 23
    linear.save_artifact(art, datasets / "art")
    again = linear.load_artifact("harmful_intent", datasets / "art")
    assert again.sha256 == art.sha256  # (NaN fields make == false even for equal artifacts)
    recomputed = linear.recompute(model, again, cache)
    assert recomputed["heldout_auroc"] == pytest.approx(art.heldout_auroc)
    assert recomputed["external_auroc"] == pytest.approx(art.external_auroc)
    with pytest.raises(linear.ProbeError, match="changed since"):
        linear.recompute(model, replace(again, data_sha256="0" * 64))


def test_deception_trains_on_real_benign_text_and_calibrates_on_it_out_of_fold(
    datasets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deception reads only the external rows labelled benign: it trains on the training suites' and
    the `control` rows as negatives (each scored for the threshold by a probe fit without its fold, its
    user task, never in-sample), and the held-out suite's give `external_fpr` on unseen benign text."""
    (datasets / "deception.jsonl").write_bytes((datasets / "intent.jsonl").read_bytes())
    model = tiny_model()
    cache = datasets / "cache"
    art = linear.train_probe(model, "deception", layer=1, cache_dir=cache)
    assert art.counts["control_negatives_in_training"] == 4  # agentdojo:w user tasks 5..8
    # 4 control rows + 3 template controls + 8 benign template training rows + 8 benign suite training rows
    assert art.counts["control"] == 4 + 3 + 8 + 8 and art.counts["external"] == 4
    assert art.external_auroc is None and "external_fpr" in art.rates and "external_tpr" not in art.rates
    rows, _ = linear.dataset_rows("deception")
    assert all(r["label"] == 0 for r in rows if r["source"] == "agentdojo")
    x = linear.features(model, rows, [1], cache_dir=cache)[1]
    y = np.array([r["label"] for r in rows])
    split = np.array([r["split"] for r in rows])
    ext = np.array([r["source"] == "agentdojo" for r in rows]) & (split != "external")
    train = split == "train"
    w, b = linear._fit(x[train | ext], y[train | ext], "logistic_regression")
    assert np.allclose(art.weights, w) and art.bias == pytest.approx(b)  # the controls are in the fit
    oof = linear._out_of_fold(x, y, ext, rows, "logistic_regression", train | ext)
    fam = np.array([r["family"] for r in rows])
    for f in ("a", "b"):  # benign template training rows: scored by a fit without their family
        out = (train | ext) & (fam != f)
        w_f, b_f = linear._fit(x[out], y[out], "logistic_regression")
        oof[train & (fam == f) & (y == 0)] = (x @ w_f + b_f)[train & (fam == f) & (y == 0)]
    ctl = np.concatenate([oof[ext | (train & (y == 0))], (x @ w + b)[~ext & (split == "control")]])
    assert not np.isnan(ctl).any()
    thr = ev.threshold_at_fpr(ctl, linear.FPR_TARGET)  # the threshold re-derived from out-of-fold scores
    assert art.threshold == pytest.approx(1 / (1 + math.exp(-thr)))
    monkeypatch.setattr(linear, "TRAIN_ON_CONTROLS", frozenset())
    plain = linear.train_probe(model, "deception", layer=1, cache_dir=cache)
    assert plain.counts["control_negatives_in_training"] == 0 and plain.weights != art.weights


def test_batched_features_equal_one_row_at_a_time(datasets: Path) -> None:
    model = tiny_model()
    rows, _ = linear.dataset_rows("harmful_intent")
    feats = row_features(model, rows[:6], [1])
    for i, row in enumerate(rows[:6]):
        st = build_step_text(model.tokenizer, row_input(row))
        cap = forward_capture(model, st.token_ids, resid_layers=[1])
        idx = aggregate_positions(st)
        assert np.allclose(feats.mean[1][i], cap.resid[1][idx].mean(dim=0).numpy(), atol=1e-5)


def test_a_head_over_several_layers_is_a_candidate_and_reads_them_concatenated(
    datasets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Besides each layer, the best few read together compete in the leave-one-family-out choice; a
    multi-layer head scores a step on its layers' residuals concatenated in the artifact's order."""
    monkeypatch.setattr(linear, "COMBINED_LAYERS", 2)  # the tiny model has only 2 candidate layers
    model = tiny_model()
    cache = datasets / "cache"
    art = linear.train_probe(model, "harmful_intent", cache_dir=cache)
    assert set(art.layer_selection) == {"1", "2", "1+2"}
    chosen = "+".join(str(layer) for layer in art.read_layers)
    assert art.layer_selection[chosen] == max(art.layer_selection.values())
    assert len(art.weights) == 32 * len(art.read_layers) and art.layer == art.read_layers[0]
    assert linear.recompute(model, art, cache)["heldout_auroc"] == pytest.approx(art.heldout_auroc)

    rng = np.random.default_rng(1)
    head = replace(art, layer=1, layers=[1, 2], weights=rng.normal(size=64).tolist(), bias=-0.2)
    rows, _ = linear.dataset_rows("harmful_intent")
    st = build_step_text(model.tokenizer, row_input(rows[0]))
    cap = forward_capture(model, st.token_ids, resid_layers=[1, 2])
    data, _ = linear.score_step(head, st, linear.head_input(cap.resid, head.read_layers))
    w = np.array(head.weights)
    per_token = cap.resid[1].double().numpy() @ w[:32] + cap.resid[2].double().numpy() @ w[32:] - 0.2
    idx = aggregate_positions(st)
    assert data["score"] == pytest.approx(1 / (1 + math.exp(-per_token[idx].mean())))
    assert data["layers"] == [1, 2]
