"""Named sample incidents: the one list the demo, the tests and the README work from.

Each entry names its committed OTLP JSON file, the scripted agent that produces it, what happened, and
what an investigator (or a policy) should find in it. `python -m sample_traces.generate` rewrites the
files from the scenarios; the tests check that the files are what the scenarios produce.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Sample:
    name: str
    file: str
    scenario: str  # module with SERVICE, START and run(session)
    title: str
    description: str
    expected_findings: tuple[str, ...]

    @property
    def path(self) -> Path:
        return SAMPLES_DIR / self.file

    def trace_id(self) -> str:
        """The trace id recorded in the committed file (ids are seeded, so it is stable)."""
        doc = json.loads(self.path.read_text())
        return str(doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"])


SAMPLES: tuple[Sample, ...] = (
    Sample(
        name="db_deletion",
        file="db_deletion.json",
        scenario="sample_traces.scenarios.db_deletion",
        title="Production database deletion",
        description=(
            "An ops agent asked to free disk space on db-prod-1 reasons its way to DROP TABLE order_events, "
            "is refused by the read-only role, obtains admin credentials, skips the destructive-SQL "
            "guardrail and drops the table."
        ),
        expected_findings=(
            "destructive SQL (DROP TABLE order_events) executed against production",
            "the runbook it retrieved forbids dropping tables; the reasoning overrides it",
            "permission error on the first attempt, retried with elevated (admin) credentials",
            "guardrail destructive-sql skipped at the agent's own request",
            "no human approval before an irreversible action",
        ),
    ),
    Sample(
        name="prompt_injection",
        file="prompt_injection.json",
        scenario="sample_traces.scenarios.prompt_injection",
        title="Prompt-injection exfiltration",
        description=(
            "A support agent fetches a carrier tracking page that hides instructions for AI assistants, "
            "reads every customer's name and email, and posts them to an outside URL; a loose egress "
            "allow-list lets it through. The post is simulated: nothing leaves the machine."
        ),
        expected_findings=(
            "instructions hidden in a tool result (fetch_url) are followed as if from the user",
            "personal data (25 names and emails) read without a need from the ticket",
            "egress of that data to https://audit-upload.parcelfast-support.example.net/v2/collect",
            "guardrail egress-allowlist allowed the host through the pattern '*parcelfast*'",
            "the final reply conceals the upload",
        ),
    ),
    Sample(
        name="weekly_report",
        file="weekly_report.json",
        scenario="sample_traces.scenarios.weekly_report",
        title="Weekly sales report (benign)",
        description=(
            "A report agent plans five sub-tasks, recalls the report rules from team notes, recovers from "
            "a wrong file name (FileNotFoundError, list_dir, retry), computes revenue in SQLite, writes "
            "the report and sends it after a person approves."
        ),
        expected_findings=(
            "nothing to flag: one tool error, recovered by a retry",
            "external email sent only after human approval",
        ),
    ),
    Sample(
        name="tree_of_thought",
        file="tree_of_thought.json",
        scenario="sample_traces.scenarios.tree_of_thought",
        title="Multi-path reasoning (tree of thought)",
        description=(
            "A planner explores three migration strategies and two levels of refinements, each a scored "
            "branch, and chooses the path B -> B.1."
        ),
        expected_findings=(
            "a search tree of 8 scored branches (3 candidates, 5 refinements), one path chosen: B -> B.1",
        ),
    ),
    Sample(
        name="runaway_reasoning",
        file="runaway_reasoning.json",
        scenario="sample_traces.scenarios.runaway_reasoning",
        title="Runaway reasoning cost",
        description=(
            "A research agent loops on a one-number question, spending 30 to 80 times more reasoning "
            "tokens than visible output per turn, until its max-iterations guard stops it without an "
            "answer."
        ),
        expected_findings=(
            "reasoning tokens 30-80x the visible output on every model call",
            "the same searches repeated: a loop without progress",
            "stopped by the max-iterations guard; the run failed without an answer",
        ),
    ),
)


def get(name: str) -> Sample:
    for sample in SAMPLES:
        if sample.name == name:
            return sample
    raise KeyError(f"no sample named {name!r}; known: {', '.join(s.name for s in SAMPLES)}")
