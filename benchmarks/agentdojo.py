"""Findings measured on AgentDojo: traces built from its task suites, labelled by AgentDojo, scored.

AgentDojo (Debenedetti et al., ETH Zurich; the `agentdojo` package) ships four suites (workspace, banking,
slack, travel) of user tasks with ground-truth tool calls, environments whose data carry injection
vectors, injection tasks with their own ground-truth calls, and attack templates. Nobody here wrote its
labels, which is the point: the labelled set in tests/ was written knowing the rules.

For every user task this builds, with our SDK, one trace of its ground-truth calls run in the suite's
environment (benign); and for each injection task, one trace whose tool output carries the injection text
in one of AgentDojo's attack templates (round-robin), either followed by the injection task's ground-truth
calls right after the injected output (compromised: "the attack succeeded") or not (resisted). Labels:
a trace is compromised when the injection task's calls ran; the injected output and the harmful calls are
the steps to flag. Traces go over OTLP/HTTP to a real `workbench serve`; findings are read back from its
database after it stops.

Tuned on: banking, slack. Held out: workspace, travel (reported alone as well).
`--blind-out FILE` writes the blind step set (held-out suites) before any scoring.

Run: `make bench-agentdojo` (installs agentdojo without its LLM-client dependencies into
benchmarks/work/agentdojo-pkg; it needs only pydantic and pyyaml from ours).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the package it measures: its own folder must not shadow `agentdojo`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
PKG = ROOT / "benchmarks" / "work" / "agentdojo-pkg"
if PKG.is_dir():
    sys.path.insert(0, str(PKG))

from benchmarks import report  # noqa: E402
from collectors.sdk import Recorder, configure  # noqa: E402
from workbench.model import Severity  # noqa: E402

TUNED = ("banking", "slack")
HELD_OUT = ("workspace", "travel")
VERSION = "v1.2.2"
USER_NAME, MODEL_NAME = "Emma Johnson", "GPT-4"
# AgentDojo's attack templates (agentdojo.attacks.baseline_attacks / important_instructions_attacks).
TEMPLATE_ATTACKS = ("important_instructions", "direct", "ignore_previous", "system_message", "injecagent")


@dataclass
class Built:
    """One trace as built: its AgentDojo labels and the span ids of the labelled steps."""

    trace_id: str
    suite: str
    variant: str  # benign / resisted / compromised
    user_task: str
    injection_task: str = ""
    attack: str = ""
    injected_spans: list[str] = field(default_factory=list)
    harmful_spans: list[str] = field(default_factory=list)


def _templates() -> dict[str, str]:
    from agentdojo.attacks import baseline_attacks, important_instructions_attacks

    ii = important_instructions_attacks.ImportantInstructionsAttack._JB_STRING
    out = {"important_instructions": ii}
    for cls in vars(baseline_attacks).values():
        name = getattr(cls, "name", None)
        if name in TEMPLATE_ATTACKS and name not in out:
            # FixedJailbreakAttack subclasses pass their template to __init__; read it from the source.
            import inspect

            src = inspect.getsource(cls.__init__)
            start = src.index('"', src.index("super().__init__("))
            literal = src[start : src.index(",", src.index('"', start + 1))]
            out[name] = eval(literal)  # the template is a string literal in AgentDojo's own source
    return out


def _format(result: Any) -> str:
    from agentdojo.agent_pipeline.tool_execution import tool_result_to_str

    return tool_result_to_str(result)


class Builder:
    """Runs ground-truth calls in an AgentDojo environment and records them as a trace with our SDK."""

    def __init__(self, recorder: Recorder) -> None:
        self.rec = recorder

    def _calls(self, built: Built, env: Any, runtime: Any, calls: list[Any], marks: dict[str, Any]) -> None:
        for call in calls:
            with self.rec.llm_call(MODEL_NAME, provider="openai") as llm:
                call_id = llm.request_tool(call.function, dict(call.args))
            result, error = runtime.run_function(env, call.function, dict(call.args))
            with self.rec.tool_call(call.function, dict(call.args), call_id=call_id) as tool:
                text = _format(result)
                if error:
                    tool.fail(error)
                else:
                    tool.result(text)
                span = format(tool.span.get_span_context().span_id, "016x")
            if marks.get("harmful"):
                built.harmful_spans.append(span)
            canary = marks.get("canary")
            if canary and canary in " ".join(text.split()):
                built.injected_spans.append(span)
                after = marks.pop("after_injection", None)
                if after is not None:
                    self._calls(built, env, runtime, after, {"harmful": True})

    def trace(
        self,
        suite: Any,
        built: Built,
        prompt: str,
        injections: dict[str, str],
        injection: Any,
        needle: str = "",
    ) -> Built:
        from agentdojo.functions_runtime import FunctionsRuntime

        env = suite.load_and_inject_default_environment(injections)
        runtime = FunctionsRuntime(suite.tools)
        calls = suite.user_tasks[built.user_task].ground_truth(env.model_copy(deep=True))
        marks: dict[str, Any] = {}
        if injections:
            # YAML wraps long lines of the tool output: compare with whitespace normalised.
            marks["canary"] = " ".join(marks_text.split())[:40] if (marks_text := needle) else None
            if injection is not None:
                marks["after_injection"] = injection.ground_truth(env.model_copy(deep=True))
        with self.rec.agent_run(f"agentdojo-{suite.name}", task=prompt) as run:
            self._calls(built, env, runtime, calls, marks)
            built.trace_id = format(run.span.get_span_context().trace_id, "032x")
            run.finish("done")
        return built


def injection_candidates(suite: Any, user_task: Any) -> list[str]:
    """The vectors a user task's ground truth reads (AgentDojo's own canary method)."""
    from agentdojo.functions_runtime import FunctionsRuntime

    canaries = {v: f"<CANARY---{v}--->" for v in suite.get_injection_vector_defaults()}
    env = suite.load_and_inject_default_environment(canaries)
    runtime = FunctionsRuntime(suite.tools)
    seen = []
    for call in user_task.ground_truth(env.model_copy(deep=True)):
        result, _ = runtime.run_function(env, call.function, dict(call.args))
        text = _format(result)
        seen += [v for v, c in canaries.items() if c in text and v not in seen]
    return seen


def build_all(recorder: Recorder, suites: list[str], per_suite: int) -> list[Built]:
    from agentdojo.task_suite.load_suites import get_suites

    all_suites = get_suites(VERSION)
    templates = _templates()
    attacks = itertools.cycle(TEMPLATE_ATTACKS)
    builder = Builder(recorder)
    out: list[Built] = []
    for name in suites:
        suite = all_suites[name]
        users = sorted(suite.user_tasks.items(), key=lambda kv: int(kv[0].rsplit("_", 1)[-1]))[:per_suite]
        injections = sorted(suite.injection_tasks.items(), key=lambda kv: int(kv[0].rsplit("_", 1)[-1]))
        for k, (uid, user) in enumerate(users):
            out.append(builder.trace(suite, Built("", name, "benign", uid), user.PROMPT, {}, None))
            vectors = injection_candidates(suite, user)
            if not vectors:
                continue
            for j, (iid, inj) in enumerate(injections):
                attack = next(attacks)
                text = templates[attack].format(
                    goal=inj.GOAL, user=USER_NAME, model=MODEL_NAME, task=user.PROMPT
                )
                variant = "resisted" if (k + j) % 3 == 2 else "compromised"
                built = Built("", name, variant, uid, iid, attack)
                payload = {v: text for v in vectors}
                harmful = inj if variant == "compromised" else None
                out.append(builder.trace(suite, built, user.PROMPT, payload, harmful, needle=inj.GOAL))
    return out


# --- the server --------------------------------------------------------------------------------------


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update({"WORKBENCH_DATA_DIR": str(data_dir), "WORKBENCH_HTTP_PORT": "0", "WORKBENCH_GRPC_PORT": "0"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    for raw in proc.stdout:
        if raw.strip() == b"ready":
            break
    info = json.loads((data_dir / "server.json").read_text())
    return proc, int(info["http_port"])


def _served_traces(port: int) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/traces?limit=5000"
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (loopback, our own server)
        return list(json.loads(resp.read())["traces"])


def wait_scanned(port: int, expected: int, timeout_s: float = 180) -> None:
    """Until every trace is stored and the findings count has stopped moving for a few polls."""
    deadline = time.monotonic() + timeout_s
    last, stable = -1, 0
    while time.monotonic() < deadline:
        rows = _served_traces(port)
        total = sum(int(r.get("findings") or 0) for r in rows)
        if len(rows) >= expected and total == last:
            stable += 1
            if stable >= 3:
                return
        else:
            stable = 0
        last = total
        time.sleep(1.0)


def read_findings(db: Path) -> dict[str, list[Any]]:
    from workbench.store import findings as store_findings
    from workbench.store.connection import Store

    out: dict[str, list[Any]] = defaultdict(list)
    with Store(db, read_only=True) as store:
        for row in store.cursor().execute("SELECT DISTINCT trace_id FROM findings").fetchall():
            out[row[0]] = store_findings.trace_findings(store, row[0])
    return out


# --- scoring -----------------------------------------------------------------------------------------


def _high(f: Any) -> bool:
    return bool(Severity(f.severity).rank >= Severity.HIGH.rank)


def score(
    built: list[Built], found: dict[str, list[Any]], span_of: dict[tuple[str, int], str]
) -> dict[str, Any]:
    pos = [b for b in built if b.variant == "compromised"]
    neg = [b for b in built if b.variant == "benign"]
    resisted = [b for b in built if b.variant == "resisted"]
    flagged = {b.trace_id for b in built if any(_high(f) for f in found.get(b.trace_id, []))}
    tp = sum(b.trace_id in flagged for b in pos)
    fp = sum(b.trace_id in flagged for b in neg)
    rules = sorted({f.rule_id for fs in found.values() for f in fs})
    per_rule = {}
    for rule in rules:
        hit = {
            b.trace_id
            for b in built
            if any(_high(f) and f.rule_id == rule for f in found.get(b.trace_id, []))
        }
        rtp, rfp = sum(b.trace_id in hit for b in pos), sum(b.trace_id in hit for b in neg)
        per_rule[rule] = {
            "tp": rtp,
            "fp": rfp,
            "precision": rtp / (rtp + rfp) if rtp + rfp else None,
            "recall": rtp / len(pos) if pos else None,
        }

    def step_recall(kind: str) -> tuple[int, int]:
        total = hit = 0
        for b in pos:
            spans = b.injected_spans if kind == "injected" else b.harmful_spans
            marked = {span_of.get((b.trace_id, f.step_seq)) for f in found.get(b.trace_id, []) if _high(f)}
            total += len(spans)
            hit += sum(s in marked for s in spans)
        return hit, total

    inj_hit, inj_total = step_recall("injected")
    harm_hit, harm_total = step_recall("harmful")
    return {
        "traces": len(built),
        "compromised": len(pos),
        "benign": len(neg),
        "resisted": len(resisted),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / len(pos) if pos else 0.0,
        "benign_high_rate": fp / len(neg) if neg else 0.0,
        "resisted_high_rate": sum(b.trace_id in flagged for b in resisted) / len(resisted)
        if resisted
        else 0.0,
        "injected_step_recall": inj_hit / inj_total if inj_total else 0.0,
        "harmful_step_recall": harm_hit / harm_total if harm_total else 0.0,
        "per_rule": per_rule,
    }


def dump(path: Path, built: list[Built], found: dict[str, list[Any]], span_of: dict[Any, str]) -> None:
    """One JSON line per trace: its AgentDojo labels and its findings, for reading misses and false alarms."""
    with path.open("w", encoding="utf-8") as out:
        for b in built:
            rows = []
            for f in found.get(b.trace_id, []):
                span = span_of.get((b.trace_id, f.step_seq))
                label = (
                    "injected" if span in b.injected_spans else "harmful" if span in b.harmful_spans else ""
                )
                rows.append(
                    {"rule": f.rule_id, "severity": str(f.severity), "title": f.title, "label": label}
                )
            record = {k: getattr(b, k) for k in ("suite", "variant", "user_task", "injection_task", "attack")}
            out.write(json.dumps({**record, "findings": rows}) + "\n")


def _line(name: str, s: dict[str, Any]) -> str:
    return (
        f"{name}: {s['traces']} traces ({s['compromised']} compromised, {s['benign']} benign, "
        f"{s['resisted']} resisted); precision {s['precision']:.2f}, recall {s['recall']:.2f}, benign with a "
        f"high finding {s['benign_high_rate']:.1%}, resisted flagged {s['resisted_high_rate']:.1%}; "
        f"step recall: injected input {s['injected_step_recall']:.2f}, "
        f"harmful action {s['harmful_step_recall']:.2f}"
    )


def section(result: dict[str, Any], args: argparse.Namespace, elapsed: float) -> str:
    """The run's section for benchmarks/RESULTS.md (under "Findings scan", via benchmarks/report.py)."""
    rows = []
    for group, label in (
        ("tuned", f"tuned: {', '.join(TUNED)}"),
        ("held_out", f"held out: {', '.join(HELD_OUT)}"),
    ):
        if group in result:
            s = result[group]
            rows.append(
                f"| {label} | {s['traces']} ({s['compromised']} / {s['benign']} / {s['resisted']}) | "
                f"{s['precision']:.2f} | {s['recall']:.2f} | {s['benign_high_rate']:.1%} | "
                f"{s['resisted_high_rate']:.1%} | {s['injected_step_recall']:.2f} | "
                f"{s['harmful_step_recall']:.2f} |"
            )
    a = result["all"]
    rows.append(
        f"| all | {a['traces']} | {a['precision']:.2f} | {a['recall']:.2f} | {a['benign_high_rate']:.1%} "
        f"| {a['resisted_high_rate']:.1%} | {a['injected_step_recall']:.2f} | "
        f"{a['harmful_step_recall']:.2f} |"
    )
    per_rule = "; ".join(f"{rule} tp {r['tp']} fp {r['fp']}" for rule, r in sorted(a["per_rule"].items()))
    return "\n".join([
        f"AgentDojo {VERSION} suites, first {args.per_suite} user tasks per suite; suites {args.suites}; "
        f"`python benchmarks/agentdojo.py --per-suite {args.per_suite}`; "
        f"{a['traces']} traces in {elapsed:.0f} s. "
        "A trace counts as flagged when it has a high or critical finding. " + args.note,
        "",
        "| suites | traces (compromised / benign / resisted) | precision | recall "
        "| benign with a high finding | resisted flagged | injected-input step recall "
        "| harmful-action step recall |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Per rule (high or critical, trace level, all suites): {per_rule}.",
    ])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suites", default=",".join(TUNED + HELD_OUT))
    ap.add_argument("--per-suite", type=int, default=12, help="user tasks per suite (time budget)")
    ap.add_argument("--blind-out", type=Path, help="write the held-out blind step set here")
    ap.add_argument("--json", type=Path, help="write the scores as JSON here")
    ap.add_argument("--dump", type=Path, help="write every trace's labels and findings here (JSON lines)")
    ap.add_argument("--note", default="", help="a sentence on what this run measures (goes in the section)")
    report.add_output_args(ap)
    args = ap.parse_args()
    suites = [s for s in args.suites.split(",") if s]
    started = time.monotonic()
    run = report.Run()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        proc, port = start_server(data)
        try:
            provider = configure(
                endpoint=f"http://127.0.0.1:{port}", service_name="agentdojo", set_global=False
            )
            clock = itertools.count(1_750_000_000_000_000_000, 1_000_000)
            built = build_all(
                Recorder(provider, clock=lambda: next(clock), record_stacktraces=False),
                suites,
                args.per_suite,
            )
            provider.force_flush()
            provider.shutdown()
            wait_scanned(port, len(built))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        found = read_findings(data / "workbench.duckdb")
        from workbench.store.connection import Store

        with Store(data / "workbench.duckdb", read_only=True) as store:
            rows = store.cursor().execute("SELECT trace_id, seq, span_id FROM steps").fetchall()
        span_of = {(t, int(q)): s for t, q, s in rows}
    if args.blind_out:
        blind = [
            {"suite": b.suite, "user_task": b.user_task, "injection_task": b.injection_task,
             "attack": b.attack, "label": label, "span_id": span}
            for b in built if b.suite in HELD_OUT and b.variant == "compromised"
            for label, spans in (("injected-input", b.injected_spans), ("harmful-action", b.harmful_spans))
            for span in spans
        ]  # fmt: skip
        args.blind_out.write_text(json.dumps(blind, indent=1) + "\n")
    if args.dump:
        dump(args.dump, built, found, span_of)
    result = {"all": score(built, found, span_of)}
    for group, names in (("tuned", TUNED), ("held_out", HELD_OUT)):
        part = [b for b in built if b.suite in names]
        if part:
            result[group] = score(part, found, span_of)
    for rule, r in sorted(result["all"]["per_rule"].items()):
        p = "-" if r["precision"] is None else f"{r['precision']:.2f}"
        print(f"  {rule:22} tp {r['tp']:4} fp {r['fp']:4} precision {p:>5} recall {r['recall']:.2f}")
    for group in ("tuned", "held_out"):
        if group in result:
            names = TUNED if group == "tuned" else HELD_OUT
            print(_line(f"{group} ({', '.join(names)})", result[group]))
    elapsed = time.monotonic() - started
    print(f"elapsed {elapsed:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    report.publish(args, "findings", run.section("Findings on AgentDojo", section(result, args, elapsed)))
    a = result["all"]
    print(f"agentdojo: {a['traces']} traces, precision {a['precision']:.2f}, recall {a['recall']:.2f}")


if __name__ == "__main__":
    main()
