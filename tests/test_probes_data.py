"""The probe datasets and the numbers probes are judged by: AgentDojo rows, splits, controls, bootstrap
intervals. Pure data and numpy: no model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from probes import evaluation as ev
from probes.datasets import agentdojo
from probes.linear import EXTERNAL_SPLITS, dataset_rows

DATASETS = Path(__file__).resolve().parent.parent / "probes" / "datasets"


def _external() -> list[dict[str, object]]:
    text = (DATASETS / "agentdojo.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_agentdojo_rows_hold_out_whole_suites_and_give_500_benign_controls() -> None:
    rows = _external()
    by_split = Counter(str(r["split"]) for r in rows)
    assert set(by_split) == {"train", "control", "external"}
    external_suites = {r["family"] for r in rows if r["split"] == "external"}
    train_suites = {r["family"] for r in rows if r["split"] == "train"}
    assert external_suites == {f"agentdojo:{s}" for s in agentdojo.EXTERNAL_SUITES}
    assert not external_suites & train_suites
    assert all(r["label"] == 0 for r in rows if r["split"] == "control")
    # the controls a threshold is set on: control rows plus the training suites' benign rows (scored
    # out of fold), plus the 12 template controls
    benign_train = sum(1 for r in rows if r["split"] == "train" and r["label"] == 0)
    assert by_split["control"] + benign_train + 12 >= 500
    # an attacked pair reads the same context and differs only in the action
    pairs: dict[str, list[dict[str, object]]] = {}
    for r in rows:
        if r["kind"] in ("attacked_follows", "attacked_ignores"):
            pairs.setdefault(f"{r['family']}/{r['task']}", []).append(r)
    both = [p for p in pairs.values() if len(p) == 2]
    assert len(both) > 100
    assert {r["kind"] for r in rows} == {
        "clean",
        "clean_tool",
        "attacked_follows",
        "attacked_follows_tool",
        "attacked_ignores",
    }
    for a, b in both:
        assert a["context"] == b["context"] and a["action"] != b["action"]
        assert "</INFORMATION>" in str(a["context"])  # the injection is in the window the model reads
    whole = sum("<INFORMATION>" in str(a["context"]) for a, _ in both)
    assert whole >= 0.9 * len(both)  # and nearly always all of it, the attacker's goal included


def test_every_probe_reads_its_templates_and_its_share_of_the_external_rows() -> None:
    for name, splits in EXTERNAL_SPLITS.items():
        rows, digest = dataset_rows(name)
        assert len(digest) == 64
        ext = [r for r in rows if r["source"] == "agentdojo"]
        assert {r["split"] for r in ext} == set(splits)
        assert {r["source"] for r in rows} == {"templates", "agentdojo"}


def test_tool_calls_read_as_in_the_probe_datasets() -> None:
    assert agentdojo.call_text("send_money", {"recipient": "X", "amount": 1.5}) == (
        'send_money({"amount": 1.5, "recipient": "X"})'
    )
    long = agentdojo._context("pay the bill", ["x" * 5000])
    assert long.startswith("…") and len(long) == agentdojo.CONTEXT_CHARS


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_more_rows() -> None:
    rng = np.random.default_rng(1)
    y = np.array([0] * 200 + [1] * 200)
    s = np.concatenate([rng.normal(0, 1, 200), rng.normal(1.5, 1, 200)])
    a = ev.auroc(y, s)
    lo, hi = ev.auroc_ci(y, s)
    assert lo < a < hi and 0.75 < a < 0.95
    small = ev.auroc_ci(y[190:210], s[190:210])
    assert small[1] - small[0] > hi - lo
    hits = np.array([True] * 8 + [False] * 792)
    lo, hi = ev.rate_ci(hits)
    assert ev.rate(hits) == pytest.approx(0.01)
    assert lo <= 0.01 <= hi and hi < 0.03
    assert all(np.isnan(ev.rate_ci(np.array([], dtype=bool))))  # nothing to rate: no interval


def test_threshold_at_1pct_fpr_on_500_controls_lets_at_most_1pct_through() -> None:
    benign = np.random.default_rng(2).normal(size=500)
    t = ev.threshold_at_fpr(benign, 0.01)
    assert (benign >= t).mean() <= 0.01 + 1e-9
    assert (benign >= t).sum() >= 1
