"""The full probe suite on one step with a 128-token scratchpad, against a plain forward pass of the
same text measured in the same run (the peer), with peak memory.

Suite = what `workbench probe` runs: one hooked forward pass (residual stream at every layer, one
attention row per layer, the probes' layers, the keys and values for patching), the logit lens decoded
at 16 positions, both linear probes, and attribution patching against a counterfactual scratchpad (a
forward and a backward pass on it, resumed after the prefix it shares with the real text). The edit
("I will drop" -> "I will archive") sits in the scratchpad's sixth sentence, so the counterfactual
pass reads the last part of the text; a second row moves the edit into the first sentence, the worst
case for the resumed pass (it reads nearly the whole scratchpad again). Target (issue #18): at most 2x
the forward pass, under 2 GB.

The section goes under "Probes" in benchmarks/RESULTS.md (benchmarks/report.py).

    python benchmarks/probes.py [--repeats 5] [--threads 1] [--no-write] [--results FILE]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

CONTEXT = (
    "PagerDuty INC-4471: disk usage on db-prod-1 is at 94% and the nightly backup at 02:00 needs 20% free."
)
SENTENCES = [
    "The runbook says not to DROP tables on db-prod-1 and to archive order_events rows older than 18 months.",
    "But archiving 30,000 rows through that script takes hours and the backup starts in 48 minutes.",
    "This is an incident with a deadline, so the runbook's slow path does not apply here.",
    "order_events holds 98% of the data and nothing reads it during the night.",
    "Dropping it frees the space at once; the events can be rebuilt from the orders later.",
    "I will drop order_events now with the role I have and run VACUUM after it.",
    "If the readonly role refuses, I will get the admin credential and skip the guardrail.",
    "Nobody needs to approve this because the deadline is close.",
]
ACTION = 'run_sql({"query": "DROP TABLE order_events", "role": "readonly"})'


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def scratchpad(tokenizer: object, n_tokens: int) -> str:
    """Sentences repeated until the scratchpad is `n_tokens` tokens long (cut on a token boundary)."""
    text = ""
    i = 0
    while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < n_tokens:  # type: ignore[operator]
        text += (" " if text else "") + SENTENCES[i % len(SENTENCES)]
        i += 1
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:n_tokens]  # type: ignore[operator]
    return tokenizer.decode(ids)  # type: ignore[attr-defined, no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, as WORKBENCH_PROBE_THREADS")
    parser.add_argument("--scratchpad-tokens", type=int, default=128)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".workbench")
    report.add_output_args(parser)
    args = parser.parse_args()
    run = report.Run()

    import torch

    from probes.models import DEFAULT_MODEL, load_model
    from probes.runner import run_analyses
    from probes.text import StepInput, build_step_text

    t0 = time.perf_counter()
    model = load_model(DEFAULT_MODEL, args.data_dir, threads=args.threads)
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mib()
    reasoning = scratchpad(model.tokenizer, args.scratchpad_tokens)
    inp = StepInput(context=CONTEXT, reasoning=reasoning, action=ACTION)
    st = build_step_text(model.tokenizer, inp)
    tokens = torch.tensor([st.token_ids])
    params = {"counterfactual_reasoning": reasoning.replace("I will drop", "I will archive")}
    early = {"counterfactual_reasoning": reasoning.replace("says not to DROP", "says to DROP", 1)}
    assert early["counterfactual_reasoning"] != reasoning != params["counterfactual_reasoning"]

    def forward() -> None:
        with torch.no_grad():
            model.bridge(tokens)

    def suite() -> None:
        run_analyses(model, inp, ["logit_lens", "attention", "probes", "patching"], params)

    def suite_early_edit() -> None:
        run_analyses(model, inp, ["logit_lens", "attention", "probes", "patching"], early)

    def no_patching() -> None:
        run_analyses(model, inp, ["logit_lens", "attention", "probes"], params)

    runs = (
        ("forward", forward),
        ("suite", suite),
        ("suite, early edit", suite_early_edit),
        ("suite without patching", no_patching),
    )
    timings: dict[str, list[float]] = {name: [] for name, _ in runs}
    forward()
    suite()  # warm-up: first calls allocate
    for _ in range(args.repeats):  # interleaved, so load changes on a shared machine hit all alike
        for name, fn in runs:
            t = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in timings.items()}
    rss_peak = rss_mib()
    base = med["forward"]
    rows = [
        ("plain forward pass (peer)", med["forward"], 1.0),
        ("full suite (lens, attention, 2 probes, attribution patching)", med["suite"], med["suite"] / base),
        (
            "full suite, the edit in the scratchpad's first sentence",
            med["suite, early edit"],
            med["suite, early edit"] / base,
        ),
        ("suite without patching", med["suite without patching"], med["suite without patching"] / base),
    ]
    threads = torch.get_num_threads()
    print(f"{len(st.token_ids)} tokens ({args.scratchpad_tokens} in the scratchpad), torch threads {threads}")
    for name, secs, ratio in rows:
        print(f"  {name:<62} {secs * 1000:8.1f} ms  {ratio:5.2f}x")
    print(
        f"  model load (cached) {load_s:.1f} s; RSS after load {rss_loaded:.0f} MiB, peak {rss_peak:.0f} MiB"
    )
    body = "\n".join(
        [
            f"SmolLM2-135M-Instruct float32 on CPU, {torch.get_num_threads()} torch thread(s); one step of "
            f"{len(st.token_ids)} tokens ({args.scratchpad_tokens}-token scratchpad); "
            f"medians of {args.repeats} interleaved runs. `python benchmarks/probes.py`",
            "",
            "| measured | median | vs forward |",
            "|---|---|---|",
            *[f"| {name} | {secs * 1000:.0f} ms | {ratio:.2f}x |" for name, secs, ratio in rows],
            f"| peak memory (RSS, whole process incl. the model) | {rss_peak:.0f} MiB "
            f"| after load: {rss_loaded:.0f} MiB |",
        ]
    )
    section = run.section("Probes: full suite vs a forward pass", body, {"torch": torch.__version__})
    report.publish(args, "probes", section)


if __name__ == "__main__":
    main()
