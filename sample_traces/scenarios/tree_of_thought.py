"""Multi-path reasoning: a tree-of-thought search over migration plans, one path chosen.

The planner proposes three strategies, expands each into concrete variants, has the model score every
node, and takes the best path. Every candidate is a reasoning step (`branch X`) nested under the one it
refines, with its score and whether it was chosen, so the tree can be drawn from the trace alone. The
chosen plan is written to a file in the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sample_traces.recording import Price, Session
from sample_traces.sandbox import Files

SERVICE = "planner-agent"
START = datetime(2025, 11, 5, 10, 20, 0, tzinfo=UTC)
MODEL = "o3-2025-04-16"
PRICE = Price(input=2.00, output=8.00)

TASK = (
    "Plan the migration of invoice generation from the nightly cron jobs to the billing event queue "
    "without missing or duplicating a single invoice."
)
SYSTEM = (
    "You are planner-agent. Explore several strategies before committing: propose candidates, refine "
    "the promising ones, score each from 0 to 1 for safety, effort and time to value, and pick the best path."
)


@dataclass
class Node:
    label: str
    thought: str
    score: float
    critique: str
    reasoning_tokens: int
    children: list[Node] = field(default_factory=list)


TREE = [
    Node(
        "A",
        "Big-bang cutover: stop the cron jobs on a Friday night, start the queue consumers, and backfill "
        "anything missed by hand on Monday.",
        0.34,
        "Fast, but a single failure window with no comparison data. Manual backfill is exactly how "
        "invoices get missed or doubled.",
        1_840,
        [
            Node(
                "A.1",
                "Cut over during the month-end freeze, when no pricing changes ship.",
                0.29,
                "Month-end is the highest invoice volume of the month: the worst time to find a bug.",
                1_120,
            ),
            Node(
                "A.2",
                "Cut over with a scripted rollback to cron and an idempotency key per invoice.",
                0.41,
                "Rollback helps, but still no evidence before the switch that both paths agree.",
                1_406,
            ),
        ],
    ),
    Node(
        "B",
        "Dual run: queue consumers generate invoices in shadow mode next to cron, a daily job reconciles "
        "the two outputs, and the switch happens only once they agree.",
        0.81,
        "Costs a few weeks of double compute, but every difference surfaces before customers see it.",
        2_512,
        [
            Node(
                "B.1",
                "Shadow for two full billing cycles; switch when reconciliation has been clean for 14 "
                "consecutive days; keep cron as a cold standby for one more cycle.",
                0.88,
                "Covers month-end and mid-month cycles, with a measurable exit criterion and a fallback.",
                2_203,
            ),
            Node(
                "B.2",
                "Shadow one region at a time and switch region by region.",
                0.76,
                "Smaller blast radius, but cross-region accounts get invoiced by both systems mid-rollout.",
                1_957,
            ),
        ],
    ),
    Node(
        "C",
        "Strangler: move one invoice type at a time (usage, then subscriptions, then one-off charges).",
        0.63,
        "Incremental, but an account with mixed invoice types sits in two systems for months.",
        1_688,
        [
            Node(
                "C.1",
                "Start with usage invoices, the lowest volume, and learn before moving subscriptions.",
                0.58,
                "Usage invoices depend on metering joins the queue does not have yet: not a cheap start.",
                1_312,
            ),
        ],
    ),
]


def _best_path(nodes: list[Node]) -> list[Node]:
    best = max(nodes, key=lambda n: n.score)
    return [best, *(_best_path(best.children) if best.children else [])]


def run(s: Session) -> None:
    files = Files(s.workspace)
    chosen = _best_path(TREE)
    chosen_labels = {n.label for n in chosen}

    def llm(**kwargs: Any) -> str | None:
        return s.llm(MODEL, provider="openai", price=PRICE, system=SYSTEM, **kwargs)

    def explore(node: Node) -> None:
        with s.rec.branch(node.label, node.thought, model=MODEL) as branch:
            llm(
                messages=[("user", f"Score this candidate from 0 to 1 and say why: {node.thought}")],
                reasoning=node.critique,
                answer=f"{node.score:.2f}: {node.critique}",
                reasoning_tokens=node.reasoning_tokens,
                seconds=round(node.reasoning_tokens / 400, 1),
            )
            branch.score(node.score)
            if node.label in chosen_labels:
                branch.choose("highest score among its siblings")
            for child in node.children:
                explore(child)

    with s.rec.agent_run(
        SERVICE, task=TASK, agent_id="planner-agent-2", model=MODEL, provider="openai"
    ) as agent:
        llm(
            messages=TASK,
            reasoning=(
                "Three families of approach: switch everything at once, run both systems side by side and "
                "compare, or move invoice types one by one. Generate one candidate per family, refine each "
                "into concrete variants, and score them before choosing."
            ),
            answer="\n".join(f"{n.label}. {n.thought}" for n in TREE),
            reasoning_tokens=3_072,
            seconds=9.5,
        )
        with s.rec.plan(TASK) as plan:
            for node in TREE:
                explore(node)
            path = " -> ".join(n.label for n in chosen)
            summary = (
                f"Best path {path} (score {chosen[-1].score:.2f}). "
                + " ".join(f"{n.label} {n.score:.2f}" for n in _all(TREE) if n.label not in chosen_labels)
                + " were scored lower."
            )
            with s.rec.reasoning(summary, model=MODEL, name="select path") as select:
                s.pause(0.4)
                select.output(f"chosen: {path}")
            steps = [
                "Add an idempotency key (account, period, invoice type) to every invoice.",
                "Deploy the queue consumers in shadow mode writing to invoices_shadow.",
                "Run the daily reconciliation of invoices against invoices_shadow; alert on any difference.",
                "Switch after two billing cycles and 14 clean days; keep cron as a cold standby for a cycle.",
                "Decommission the cron jobs after the standby cycle closes clean.",
            ]
            plan.output("\n".join(f"{i}. {step}" for i, step in enumerate(steps, start=1)))

        document = f"# Invoice generation: cron to queue\n\nChosen path: {path}\n\n" + "\n".join(
            f"{i}. {step}" for i, step in enumerate(steps, start=1)
        )
        args = {"path": "plans/invoice-migration.md", "content": document + "\n"}
        call = llm(messages=[("user", "Write the plan down.")], tool=("write_file", args), seconds=2.0)
        s.tool(
            "write_file",
            args,
            files.write_text,
            call_id=call,
            side_effect="wrote plans/invoice-migration.md",
        )
        answer = (
            f"Recommended plan: {path}, dual run with daily reconciliation. "
            "Written to plans/invoice-migration.md."
        )
        llm(messages=[("user", "Summarize.")], answer=answer, reasoning_tokens=256, seconds=1.5)
        agent.finish(answer)


def _all(nodes: list[Node]) -> list[Node]:
    return [m for n in nodes for m in (n, *_all(n.children))]
