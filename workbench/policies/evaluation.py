"""Precision and recall of the rules over a labelled set of steps.

A labelled file is one trace as JSON: `{"name", "trace_id", "convention", "steps": [...]}`, each step
holding `Step` fields plus `seq` and `labels` (the rule ids that should fire on it; `[]` means none
should). Every step of a file is labelled, so a rule firing on an unlabelled step is a false positive.
Rules run on whole traces (chains and loops span steps), and are scored step by step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.model import Step, StepKind, StoredStep
from workbench.policies.engine import Engine

_STEP_FIELDS = {f.name for f in fields(Step)}


@dataclass(frozen=True)
class LabelledTrace:
    name: str
    trace_id: str
    steps: list[StoredStep]
    labels: dict[int, frozenset[str]]  # seq -> expected rule ids
    path: str


@dataclass(frozen=True)
class RuleScore:
    rule_id: str
    positives: int  # labelled steps
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


@dataclass(frozen=True)
class Evaluation:
    scores: list[RuleScore]
    steps: int
    traces: int
    misses: list[str]  # "file seq rule: missed / unexpected", for tuning


def _step(
    doc: dict[str, Any], trace_id: str, convention: str, where: str
) -> tuple[StoredStep, frozenset[str]]:
    try:
        seq = int(doc["seq"])
        labels = frozenset(doc.get("labels", []))
        values = {k: v for k, v in doc.items() if k in _STEP_FIELDS}
        unknown = set(doc) - _STEP_FIELDS - {"seq", "labels", "note"}
        if unknown:
            raise ValueError(f"unknown step keys {sorted(unknown)}")
        values.setdefault("trace_id", trace_id)
        values.setdefault("span_id", f"{seq:016x}")
        values.setdefault("parent_span_id", "")
        values["kind"] = StepKind(values.get("kind", "other"))
        values.setdefault("name", values.get("tool_name") or str(values["kind"]))
        values.setdefault("start_time_ns", 1_700_000_000_000_000_000 + seq * 1_000_000_000)
        values.setdefault("end_time_ns", values["start_time_ns"] + 500_000_000)
        values.setdefault("convention", convention)
        return StoredStep(seq, Step(**values)), labels
    except (KeyError, TypeError, ValueError) as exc:
        raise WorkbenchError(f"{where}: bad labelled step: {exc}") from exc


def load_labelled(path: Path) -> list[LabelledTrace]:
    """Every labelled trace in a folder (*.json, sorted) or one file."""
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files or not all(f.exists() for f in files):
        raise WorkbenchError(f"{path}: no labelled traces (*.json) there")
    out = []
    for file in files:
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WorkbenchError(f"{file}: not a readable JSON file: {exc}") from exc
        trace_id = str(doc.get("trace_id") or file.stem)
        convention = str(doc.get("convention", "labelled"))
        steps, labels = [], {}
        for k, raw in enumerate(doc.get("steps", [])):
            stored, lab = _step(raw, trace_id, convention, f"{file} steps[{k}]")
            steps.append(stored)
            labels[stored.seq] = lab
        steps.sort(key=lambda s: (s.step.start_time_ns, s.seq))
        out.append(LabelledTrace(str(doc.get("name", file.stem)), trace_id, steps, labels, str(file)))
    return out


def evaluate(engine: Engine, traces: Sequence[LabelledTrace]) -> Evaluation:
    """Score every enabled rule over the labelled traces, step by step."""
    counts: dict[str, list[int]] = {r.id: [0, 0, 0, 0] for r in engine.rules}  # positives, tp, fp, fn
    misses: list[str] = []
    steps = 0
    for trace in traces:
        fired: dict[int, set[str]] = {}
        for f in engine.evaluate(trace.trace_id, trace.steps):
            fired.setdefault(f.step_seq, set()).add(f.rule_id)
        for stored in trace.steps:
            steps += 1
            want = trace.labels.get(stored.seq, frozenset())
            got = fired.get(stored.seq, set())
            for rule_id, c in counts.items():
                w, g = rule_id in want, rule_id in got
                c[0] += w
                c[1] += w and g
                c[2] += g and not w
                c[3] += w and not g
                if w != g:
                    what = "missed" if w else "unexpected"
                    misses.append(f"{Path(trace.path).name} seq {stored.seq} {rule_id}: {what}")
    scores = [RuleScore(rid, *c) for rid, c in counts.items()]
    return Evaluation(scores, steps, len(traces), misses)


def _pct(value: float | None) -> str:
    return "   -" if value is None else f"{value:.2f}"


def format_table(result: Evaluation) -> str:
    """The precision/recall table as plain text, one row per rule and a micro-averaged total."""
    width = max([len(s.rule_id) for s in result.scores] + [len("rule")])
    lines = [
        f"{result.steps} labelled steps in {result.traces} traces",
        f"{'rule':<{width}}  labelled  TP  FP  FN  precision  recall",
    ]
    for s in result.scores:
        lines.append(
            f"{s.rule_id:<{width}}  {s.positives:>8}  {s.tp:>2}  {s.fp:>2}  {s.fn:>2}  "
            f"{_pct(s.precision):>9}  {_pct(s.recall):>6}"
        )
    total = RuleScore(
        "all", *(sum(getattr(s, k) for s in result.scores) for k in ("positives", "tp", "fp", "fn"))
    )
    lines.append(
        f"{'all (micro)':<{width}}  {total.positives:>8}  {total.tp:>2}  {total.fp:>2}  {total.fn:>2}  "
        f"{_pct(total.precision):>9}  {_pct(total.recall):>6}"
    )
    return "\n".join(lines)


def as_json(result: Evaluation) -> list[dict[str, Any]]:
    return [
        {
            "rule": s.rule_id,
            "labelled": s.positives,
            "tp": s.tp,
            "fp": s.fp,
            "fn": s.fn,
            "precision": s.precision,
            "recall": s.recall,
        }
        for s in result.scores
    ]


def default_labelled_dir(candidates: Iterable[Path] = ()) -> Path:
    """tests/data/findings_labelled in the current folder, else beside the installed package's checkout."""
    here = Path(__file__).resolve().parents[2] / "tests" / "data" / "findings_labelled"
    for path in [*candidates, Path("tests/data/findings_labelled"), here]:
        if path.is_dir():
            return path
    raise WorkbenchError("no labelled set found; give its folder: workbench findings eval DIR")
