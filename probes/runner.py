"""Run the requested analyses on one step, sharing one forward pass and caching only what they read.

Logit lens needs the residual stream at every layer, the probes need it at their own layers, attention
needs one query row per layer: all come from a single hooked forward pass (probes/hooks.py). Patching
needs its own pass on the counterfactual text, which resumes after the prefix it shares with the real
text on that pass's cached keys and values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from probes.attention import attention_result
from probes.hooks import forward_capture
from probes.lens import logit_lens
from probes.linear import ProbeArtifact, check_model, head_input, load_artifacts, score_step
from probes.models import LoadedModel
from probes.patching import patching
from probes.text import StepInput, build_step_text
from workbench.errors import WorkbenchError
from workbench.model import ProbeAnalysis, ProbeResult, check_probe_request

ANALYSES: tuple[ProbeAnalysis, ...] = tuple(ProbeAnalysis)

Progress = Callable[[float, str], None]

# Decoding one position at every layer costs d_model x vocab per layer (for SmolLM2, about a fifth of a
# forward pass per 10 positions); the positions nearest the action say the most.
LENS_POSITIONS = 16


def _noop(fraction: float, message: str) -> None:
    return None


def run_analyses(
    model: LoadedModel,
    inp: StepInput,
    analyses: Sequence[str],
    params: dict[str, Any] | None = None,
    artifacts: Sequence[ProbeArtifact] | None = None,
    progress: Progress = _noop,
    run_id: int = 0,
) -> list[ProbeResult]:
    """Every requested analysis of one step, in the probe_results shapes of probes/README.md.

    params: "counterfactual_reasoning" (required for patching), "patching_method" ("attribution" or
    "exact"), "lens_positions" (max positions the logit lens decodes, default 16).
    """
    params = params or {}
    analyses = check_probe_request(list(analyses), params)
    if ProbeAnalysis.PROBES in analyses:
        artifacts = list(artifacts) if artifacts is not None else load_artifacts()
        if not artifacts:
            raise WorkbenchError("no trained probes; run `workbench probes train NAME`")
        for artifact in artifacts:
            check_model(artifact, model)
    else:
        artifacts = []

    progress(0.05, "tokenizing")
    st = build_step_text(model.tokenizer, inp)
    n_ctx = int(getattr(model.bridge.cfg, "n_ctx", 0) or 0)
    if n_ctx and len(st.token_ids) > n_ctx:
        raise WorkbenchError(
            f"the step reads as {len(st.token_ids)} tokens, more than the model's context of {n_ctx}; "
            "lower WORKBENCH_PROBE_CONTEXT_CHARS"
        )
    shared = st.shared()
    n = model.n_layers
    resid_layers: set[int] = set()
    if ProbeAnalysis.LOGIT_LENS in analyses:
        resid_layers |= set(range(n))
    resid_layers |= {layer for a in artifacts for layer in a.read_layers}
    attn_layers = range(n) if ProbeAnalysis.ATTENTION in analyses else range(0)
    progress(0.1, "forward pass")
    cap = forward_capture(
        model,
        st.token_ids,
        resid_layers=resid_layers,
        attn_query=st.action_position,
        attn_layers=attn_layers,
        resid_pre_layers=range(n) if ProbeAnalysis.PATCHING in analyses else (),
        keep_cache=ProbeAnalysis.PATCHING in analyses,  # the counterfactual resumes after the shared prefix
        logit_positions=[st.action_position],  # the only logits the analyses read
    )
    assert cap.logits is not None
    results: list[ProbeResult] = []
    # The model's provenance goes into every result's data, which the second chain seals: the run row's
    # copy (probe_runs.provenance) is not sealed, and what the numbers were computed on (the Q4_1
    # weights, de-quantized) is part of the evidence, not a label beside it.
    shared["provenance"] = model.provenance.as_dict()

    def add(analysis: str, data: dict[str, Any], summary: dict[str, Any]) -> None:
        results.append(
            ProbeResult(run_id=run_id, analysis=str(analysis), summary=summary, data={**shared, **data})
        )

    if ProbeAnalysis.LOGIT_LENS in analyses:
        progress(0.3, "logit lens")
        lens_data, lens_summary = logit_lens(
            model,
            st,
            {layer: cap.resid[layer] for layer in range(n)},
            cap.logits_at(st.action_position),
            max_positions=int(params.get("lens_positions", LENS_POSITIONS)),
        )
        add(ProbeAnalysis.LOGIT_LENS, lens_data, lens_summary)
    if ProbeAnalysis.ATTENTION in analyses:
        progress(0.45, "attention")
        add(ProbeAnalysis.ATTENTION, *attention_result(st, cap.attn_rows))
    for artifact in artifacts:
        progress(0.5, f"probe {artifact.name}")
        add(f"probe:{artifact.name}", *score_step(artifact, st, head_input(cap.resid, artifact.read_layers)))
    if ProbeAnalysis.PATCHING in analyses:
        progress(0.6, "patching")
        counterfactual = replace(inp, reasoning=str(params["counterfactual_reasoning"]))
        cf = build_step_text(model.tokenizer, counterfactual)
        data, summary = patching(
            model,
            st,
            cf,
            method=str(params.get("patching_method", "attribution")),
            clean_run=cap,
        )
        add(ProbeAnalysis.PATCHING, data, summary)
    progress(1.0, "done")
    return results
