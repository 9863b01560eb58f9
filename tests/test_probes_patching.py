"""Activation patching that resumes the counterfactual after the prefix it shares with the real text
(probes/prefix.py) and pairs positions by a token edit alignment: the same numbers as recomputing the
whole counterfactual, for an edit that keeps the token count and for one that changes it. On a tiny
real Hugging Face Llama booted through TransformerBridge, the path with a real key/value cache."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from probes.hooks import forward_capture
from probes.patching import aligned_positions, patching, resid_pre_hook
from probes.text import StepInput, StepText, build_step_text
from tests.probes_tiny import tiny_hf_model
from workbench.errors import WorkbenchError

INPUT = StepInput(
    context="Disk usage on db-prod-1 is at 94%. Free space before the nightly backup.",
    reasoning="The runbook says never DROP tables in production. "
    "This is an incident, so I will drop the table now.",
    action='run_sql({"query": "DROP TABLE order_events", "role": "admin"})',
)
EDITS = {
    "same token count": ("drop the table", "drop the archive"),
    "more tokens": ("so I will drop the table now", "so I will follow the runbook and archive old rows"),
    "fewer tokens": ("This is an incident, so I will drop", "I will drop"),
}


@pytest.fixture(scope="module")
def hf_tiny(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tiny_hf_model(tmp_path_factory.mktemp("tiny-llama"))


def _texts(model: Any, edit: str) -> tuple[StepText, StepText]:
    old, new = EDITS[edit]
    assert old in INPUT.reasoning
    cf = StepInput(INPUT.context, INPUT.reasoning.replace(old, new), INPUT.action)
    return build_step_text(model.tokenizer, INPUT), build_step_text(model.tokenizer, cf)


def test_the_real_pass_keeps_a_cache_the_counterfactual_can_resume_from(hf_tiny: Any) -> None:
    clean, _ = _texts(hf_tiny, "same token count")
    cap = forward_capture(hf_tiny, clean.token_ids, keep_cache=True)
    assert cap.cache is not None and cap.cache.get_seq_length() == len(clean.token_ids)
    assert forward_capture(hf_tiny, clean.token_ids).cache is None  # only when asked


@pytest.mark.parametrize("edit", sorted(EDITS))
@pytest.mark.parametrize("method", ["attribution", "exact"])
def test_resuming_after_the_shared_prefix_equals_the_full_recompute(
    hf_tiny: Any, edit: str, method: str
) -> None:
    clean, cf = _texts(hf_tiny, edit)
    assert (len(clean.token_ids) == len(cf.token_ids)) == (edit == "same token count")
    cap = forward_capture(hf_tiny, clean.token_ids, resid_pre_layers=range(hf_tiny.n_layers), keep_cache=True)
    fast, fast_summary = patching(hf_tiny, clean, cf, method=method, max_positions=1000, clean_run=cap)
    full, full_summary = patching(hf_tiny, clean, cf, method=method, max_positions=1000, reuse_prefix=False)
    first_edit = next(
        i for i, ab in enumerate(zip(clean.token_ids, cf.token_ids, strict=False)) if ab[0] != ab[1]
    )
    assert fast["resumed_from"] == first_edit > 0 and full["resumed_from"] == 0
    assert fast["positions"] == full["positions"] and fast["layers"] == full["layers"]
    assert fast["counterfactual_positions"] == full["counterfactual_positions"]
    assert np.allclose(fast["effect"], full["effect"], atol=1e-5)
    assert fast["corrupt_value"] == pytest.approx(full["corrupt_value"], abs=1e-5)
    assert fast["clean_value"] == pytest.approx(full["clean_value"], abs=1e-5)
    assert np.abs(np.array(full["effect"])).max() > 0  # the edit moved the metric: a real comparison
    assert fast_summary == full_summary


@pytest.mark.parametrize("edit", ["more tokens", "fewer tokens"])
def test_positions_after_an_edit_that_changes_the_token_count_pair_the_same_tokens(
    hf_tiny: Any, edit: str
) -> None:
    clean, cf = _texts(hf_tiny, edit)
    shift = len(cf.token_ids) - len(clean.token_ids)
    assert shift != 0
    pairs = aligned_positions(clean, cf, 1000)
    assert pairs[-1] == (clean.action_position, cf.action_position)
    tail = [(c, r) for c, r in pairs if r - c == shift]
    assert len(tail) >= 5  # the end of the scratchpad and "Action:" up to the action, shifted by the edit
    assert all(clean.token_ids[c] == cf.token_ids[r] for c, r in tail)
    assert [c for c, _ in pairs] == sorted({c for c, _ in pairs})  # each position once, in order


def test_exact_cells_after_a_length_changing_edit_are_the_patch_itself(hf_tiny: Any) -> None:
    """Re-derive two cells by hand: run the whole counterfactual with the real residual written at the
    aligned position, read the metric, compare with the analysis."""
    clean, cf = _texts(hf_tiny, "more tokens")
    layer = 1
    data, _ = patching(hf_tiny, clean, cf, method="exact", layers=[layer], max_positions=1000)
    norm = data["clean_value"] - data["corrupt_value"]
    _, cache = hf_tiny.bridge.run_with_cache(
        torch.tensor([clean.token_ids]), names_filter=[resid_pre_hook(layer)]
    )
    real = cache[resid_pre_hook(layer)][0]
    target = clean.action_token_id
    assert target is not None
    for col in (len(data["positions"]) // 2, len(data["positions"]) - 1):
        c, r = data["positions"][col], data["counterfactual_positions"][col]

        def put(tensor: torch.Tensor, hook: Any, c: int = c, r: int = r) -> torch.Tensor:
            tensor = tensor.clone()
            tensor[0, r] = real[c]
            return tensor

        with torch.no_grad(), hf_tiny.bridge.hooks(fwd_hooks=[(resid_pre_hook(layer), put)]):
            logits = hf_tiny.bridge(torch.tensor([cf.token_ids]))
        value = float(torch.log_softmax(logits[0, cf.action_position].float(), dim=-1)[target])
        assert data["effect"][0][col] == pytest.approx((value - data["corrupt_value"]) / norm, abs=1e-4)


def test_a_counterfactual_that_changes_nothing_is_refused(hf_tiny: Any) -> None:
    clean = build_step_text(hf_tiny.tokenizer, INPUT)
    with pytest.raises(WorkbenchError, match="reads the same"):
        patching(hf_tiny, clean, clean)


def test_many_positions_keep_the_edit_and_the_tokens_before_the_action(hf_tiny: Any) -> None:
    clean, cf = _texts(hf_tiny, "more tokens")
    every = aligned_positions(clean, cf, 1000)
    few = aligned_positions(clean, cf, 8)
    assert len(every) > 8 and len(few) == 8
    assert few[0] == every[0]  # the first edited token
    assert few[-4:] == every[-4:]  # the tokens nearest the action


@pytest.mark.parametrize("edit", ["more tokens", "fewer tokens"])
def test_after_a_length_changing_edit_each_token_is_patched_with_itself(hf_tiny: Any, edit: str) -> None:
    """Exactness read off the numbers: at layer 0 the residual is the token's embedding alone (Llama
    puts position in the attention, by rotary), so restoring a token that the alignment pairs with the
    same token changes nothing: its effect is exactly 0 at every position after the edit, however far
    the edit shifted it. Aligned backwards from the action, or by position, a token after a
    length-changing edit would be compared with another token, and its cell would not be 0."""
    clean, cf = _texts(hf_tiny, edit)
    data, _ = patching(hf_tiny, clean, cf, method="exact", layers=[0], max_positions=1000)
    shift = len(cf.token_ids) - len(clean.token_ids)
    same = [
        col
        for col, (c, r) in enumerate(zip(data["positions"], data["counterfactual_positions"], strict=True))
        if clean.token_ids[c] == cf.token_ids[r]
    ]
    shifted = [col for col in same if data["counterfactual_positions"][col] - data["positions"][col] == shift]
    assert len(shifted) >= 5  # the rest of the scratchpad and "Action:" up to the action, moved by the edit
    # In the metric (a log-probability), not the effect: the effect divides by real - counterfactual,
    # which a deletion on this tiny model leaves at 6e-4, so float noise of 5e-7 reads as 1e-3 there.
    norm = data["clean_value"] - data["corrupt_value"]
    assert all(abs(data["effect"][0][col] * norm) < 1e-5 for col in same)
    edited = [col for col in range(len(data["positions"])) if col not in same]
    if edit == "more tokens":  # replaced tokens get cells, and restoring them moves the metric
        assert edited and max(abs(data["effect"][0][col] * norm) for col in edited) > 1e-4
