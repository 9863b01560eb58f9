"""A benign multi-step task, done right: the weekly sales report.

The agent decomposes the task into a plan, recalls from team notes how the report is built, guesses a
file name wrong (a real FileNotFoundError), lists the folder and retries with the right name, computes
revenue by region in SQLite, writes the report file, and sends it only after a person approves. The
data files, the database and the report are real files in the sandbox; the email goes to the outbox.
"""

from __future__ import annotations

import csv
import io
import random
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

from sample_traces.recording import Price, Session, tool_message
from sample_traces.sandbox import Document, Files, Outbox, VectorStore

SERVICE = "report-agent"
START = datetime(2025, 11, 3, 8, 0, 0, tzinfo=UTC)
MODEL = "claude-sonnet-4-5-20250929"
PRICE = Price(input=3.00, output=15.00)
RECIPIENTS = ["sales-leads@acme.example"]
APPROVER = "maria.lopez@acme.example"

TASK = "Prepare the weekly sales report for week 44 and send it to the sales leads."
SYSTEM = (
    "You are report-agent, Acme's analytics assistant. Tools: read_csv(path), list_dir(path), "
    "run_query(query) on the scratch SQLite database, write_file(path, content), send_email(to, subject, "
    "attachment). Search team notes before doing a recurring task. Emails leave the company: ask for "
    "approval before sending."
)
SUBTASKS = [
    "Recall how the weekly report is built",
    "Load the week 44 sales export",
    "Compute revenue by region and the change from week 43",
    "Write the report",
    "Get approval and send it to the sales leads",
]
NOTES = [
    Document(
        "note-12",
        "Weekly sales report: revenue per region is the sum of revenue_cents / 100 for the ISO week, "
        "refund rows (negative revenue_cents) excluded; show the change from the previous week. Send to "
        "sales-leads@acme.example after Maria approves.",
    ),
    Document(
        "note-19",
        "Data files: the weekly sales exports land in data/ and are named sales_YYYY-Www.csv by ISO week, "
        "for example sales_2025-W43.csv.",
    ),
    Document("note-07", "Q3 board deck: use net revenue after discounts and annualize the run rate."),
    Document("note-03", "Office party planning: the December party is on the 12th; sign up by Friday."),
]
REGIONS = ("north", "south", "east", "west")
QUERY = (
    "SELECT region, round(sum(CASE WHEN week = 'W44' THEN revenue_cents END) / 100.0, 2) AS w44, "
    "round(sum(CASE WHEN week = 'W43' THEN revenue_cents END) / 100.0, 2) AS w43 FROM sales "
    "WHERE revenue_cents > 0 GROUP BY region ORDER BY w44 DESC"
)


def _write_exports(files: Files) -> None:
    rng = random.Random(44)
    for week, days in (("W43", range(20, 27)), ("W44", range(27, 34))):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["date", "region", "product", "units", "revenue_cents"])
        for i in range(120):
            day = days[i % 7]
            date = f"2025-10-{day:02d}" if day <= 31 else f"2025-11-{day - 31:02d}"
            units = rng.randint(1, 40)
            cents = units * rng.choice((1999, 2499, 4999, 8999))
            if i % 29 == 0:
                cents = -cents  # a refund
            writer.writerow([date, rng.choice(REGIONS), f"SKU-{rng.randint(100, 140)}", units, cents])
        files.write_text(f"data/sales_2025-{week}.csv", out.getvalue())


def run(s: Session) -> None:
    files = Files(s.workspace)
    _write_exports(files)
    outbox = Outbox(files)
    notes = VectorStore(NOTES)
    scratch = s.workspace / "scratch.db"

    def read_csv(path: str) -> dict[str, Any]:
        rows = list(csv.DictReader(io.StringIO(files.read_text(path))))
        week = path.rsplit("-", 1)[-1].removesuffix(".csv")
        with closing(sqlite3.connect(scratch)) as conn, conn:
            conn.execute("CREATE TABLE IF NOT EXISTS sales (week TEXT, region TEXT, revenue_cents INTEGER)")
            conn.executemany(
                "INSERT INTO sales VALUES (?, ?, ?)",
                [(week, r["region"], int(r["revenue_cents"])) for r in rows],
            )
        return {"path": path, "rows": len(rows), "columns": list(rows[0]), "loaded_into": "scratch.db:sales"}

    def run_query(query: str) -> dict[str, Any]:
        with closing(sqlite3.connect(scratch)) as conn:
            cursor = conn.execute(query)
            return {"columns": [d[0] for d in cursor.description], "rows": [list(r) for r in cursor]}

    def llm(**kwargs: Any) -> str | None:
        return s.llm(MODEL, provider="anthropic", price=PRICE, system=SYSTEM, **kwargs)

    with s.rec.agent_run(
        SERVICE, task=TASK, agent_id="report-agent-1", model=MODEL, provider="anthropic"
    ) as agent:
        llm(
            messages=TASK,
            reasoning=(
                "A recurring task with an external recipient. Break it down: find how the report was built "
                "before, load this week's export, compute revenue by region against last week, write the "
                "report, then ask for approval before the email goes out."
            ),
            answer="Plan: " + "; ".join(SUBTASKS) + ".",
            reasoning_tokens=214,
            seconds=3.4,
        )
        with s.rec.plan(TASK, SUBTASKS) as plan:
            with plan.subtask():
                query = "how is the weekly sales report built: data files, revenue rule, recipients"
                with s.rec.memory_read(query, store="team-notes", top_k=3) as memory:
                    s.pause(0.2)
                    found = notes.query(query, top_k=3)
                    memory.documents(found)

            with plan.subtask():
                guess = {"path": "data/sales_week_44.csv"}
                call = llm(
                    messages=[{"role": "tool", "parts": [{"type": "tool_call_response", "response": found}]}],
                    reasoning="Revenue rule and recipients are in note-12. Load the week 44 export.",
                    tool=("read_csv", guess),
                    reasoning_tokens=96,
                    seconds=1.6,
                )
                missing = s.tool("read_csv", guess, read_csv, call_id=call, seconds=0.05)
                call = llm(
                    messages=[tool_message(call, missing)],
                    reasoning=(
                        "No file by that name. note-19 says the exports are named by ISO week, "
                        "sales_YYYY-Www.csv; list data/ to find the exact name."
                    ),
                    tool=("list_dir", {"path": "data"}),
                    reasoning_tokens=121,
                    seconds=1.9,
                )
                listing = s.tool("list_dir", {"path": "data"}, files.list_dir, call_id=call, seconds=0.05)
                right = {"path": "data/sales_2025-W44.csv"}
                call = llm(
                    messages=[tool_message(call, listing)],
                    reasoning="data/sales_2025-W44.csv is week 44. Load it, and week 43 for the comparison.",
                    tool=("read_csv", right),
                    reasoning_tokens=64,
                    seconds=1.2,
                )
                loaded = s.tool(
                    "read_csv",
                    right,
                    read_csv,
                    call_id=call,
                    attempt=2,
                    retry_of=missing.step,
                    side_effect="loaded 120 rows into the scratch database table sales",
                )
                previous = {"path": "data/sales_2025-W43.csv"}
                call = llm(messages=[tool_message(call, loaded)], tool=("read_csv", previous), seconds=0.9)
                s.tool(
                    "read_csv",
                    previous,
                    read_csv,
                    call_id=call,
                    side_effect="loaded 120 rows into the scratch database table sales",
                )

            with plan.subtask():
                call = llm(
                    messages=[("user", "Both weeks are loaded.")],
                    reasoning="Sum positive revenue per region for both weeks; note-12 excludes refunds.",
                    tool=("run_query", {"query": QUERY}),
                    reasoning_tokens=142,
                    seconds=2.1,
                )
                totals = s.tool("run_query", {"query": QUERY}, run_query, call_id=call)

            with plan.subtask():
                lines = [
                    "# Weekly sales: 2025-W44",
                    "",
                    "| region | W44 | W43 | change |",
                    "|---|---|---|---|",
                ]
                for region, w44, w43 in totals.result["rows"]:
                    lines.append(f"| {region} | ${w44:,.2f} | ${w43:,.2f} | {(w44 - w43) / w43:+.1%} |")
                total44 = sum(r[1] for r in totals.result["rows"])
                total43 = sum(r[2] for r in totals.result["rows"])
                lines += ["", f"Total ${total44:,.2f} ({(total44 - total43) / total43:+.1%} on week 43)."]
                report = "\n".join(lines) + "\n"
                args = {"path": "reports/sales_2025-W44.md", "content": report}
                call = llm(
                    messages=[tool_message(call, totals)],
                    reasoning="A short table per region with the week-over-week change, then the total.",
                    tool=("write_file", args),
                    reasoning_tokens=188,
                    seconds=4.2,
                )
                s.tool(
                    "write_file",
                    args,
                    files.write_text,
                    call_id=call,
                    side_effect=f"wrote reports/sales_2025-W44.md ({len(report.encode())} bytes)",
                )

            with plan.subtask():
                subject = "Weekly sales: 2025-W44"
                with s.rec.human_approval(
                    f"Send '{subject}' (reports/sales_2025-W44.md) to {', '.join(RECIPIENTS)}?",
                    approver=APPROVER,
                ) as approval:
                    s.pause(252.0)  # a person reads the report before answering
                    approval.decide("approved", f"by {APPROVER}: numbers match the dashboard, send it")
                mail = {"to": RECIPIENTS, "subject": subject, "attachment": "reports/sales_2025-W44.md"}
                call = llm(messages=[("user", "Approved by Maria.")], tool=("send_email", mail), seconds=0.8)
                sent = s.tool(
                    "send_email",
                    mail,
                    lambda to, subject, attachment: outbox.send_email(
                        to, subject, files.read_text(attachment)
                    ),
                    call_id=call,
                    side_effect=f"emailed the report to {', '.join(RECIPIENTS)} (simulated: sandbox outbox)",
                )

        answer = (
            f"Sent 'Weekly sales: 2025-W44' to {', '.join(RECIPIENTS)} after {APPROVER} approved it. Total "
            f"revenue ${total44:,.2f}, {(total44 - total43) / total43:+.1%} on week 43."
        )
        llm(messages=[tool_message(call, sent)], answer=answer, reasoning_tokens=40, seconds=1.3)
        agent.finish(answer)
