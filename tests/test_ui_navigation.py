"""Navigation an investigator can trust, in Chromium against the served app (issue #17).

A deep link with a wrong or ambiguous trace id names the problem and the candidate traces and never
opens another trace; Back and Forward walk the replay's steps; a timeline bar always jumps, the same
bar included after stepping away.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sample_traces.catalog import get
from tests.conftest import ServerProcess
from workbench.cli.loading import ingest_files
from workbench.settings import Settings

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
SAMPLES = ["db_deletion", "prompt_injection", "tree_of_thought", "weekly_report", "runaway_reasoning"]


def _widest_bar_center(page: object) -> tuple[float, float]:
    """The centre of the timeline's widest bar (a sliver is too thin to hit reliably)."""
    script = """() => {
        const bars = [...document.querySelectorAll('.js-plotly-plot .barlayer .point path')];
        const boxes = bars.map(b => b.getBoundingClientRect()).filter(r => r.width > 0);
        boxes.sort((a, b) => b.width - a.width);
        const r = boxes[0];
        return [r.left + r.width / 2, r.top + r.height / 2];
    }"""
    x, y = page.evaluate(script)  # type: ignore[attr-defined]
    return float(x), float(y)


def test_deep_links_back_forward_and_timeline_clicks(
    serve_process: ServerProcess,
    browser_page: object,
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    totals = ingest_files(Settings(data_dir=serve_process.data_dir), [get(n).path for n in SAMPLES])
    assert totals.accepted == 94
    base = f"http://127.0.0.1:{serve_process.ui_port}"
    db, tot = get("db_deletion").trace_id(), get("tree_of_thought").trace_id()
    assert db[0] == tot[0] == "0"  # "0" is ambiguous between these two

    # An unknown id: an error, the recent traces as candidates, and the URL keeps the id it was given.
    page.goto(f"{base}/replay?trace=ffffdeadbeef&step=3")
    expect(page.get_by_text("no trace with id").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Recent traces:")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("link", name=re.compile(db))).to_be_visible()
    page.wait_for_timeout(2_000)
    assert "trace=ffffdeadbeef" in page.url
    assert page.get_by_text(re.compile(r"Step \d+ of \d+")).count() == 0

    # An ambiguous prefix: exactly the matching traces, and still no trace opened.
    page.goto(f"{base}/replay?trace=0")
    expect(page.get_by_text("matches several traces").first).to_be_visible(timeout=60_000)
    expect(page.get_by_role("link", name=re.compile(db))).to_be_visible(timeout=30_000)
    expect(page.get_by_role("link", name=re.compile(tot))).to_be_visible()
    assert page.get_by_role("link", name=re.compile(get("weekly_report").trace_id())).count() == 0
    page.wait_for_timeout(2_000)
    assert re.search(r"trace=0(&|$)", page.url), page.url
    assert page.get_by_text(re.compile(r"Step \d+ of \d+")).count() == 0
    page.get_by_role("link", name=re.compile(tot)).click()  # a candidate opens that trace
    expect(page.get_by_text("Step 1 of 23")).to_be_visible(timeout=60_000)

    # The incident brief tops the replay; its sentences link to their steps.
    page.goto(f"{base}/replay?trace={db}&step=1")
    brief = page.locator("#brief")
    expect(brief).to_be_visible(timeout=60_000)
    expect(brief.get_by_text("PagerDuty INC-4471: disk usage on db-prod-1")).to_be_visible()
    expect(brief.get_by_text("CRITICAL destructive-action at step #12")).to_be_visible()
    expect(brief.get_by_text("No human approval was recorded")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    brief.screenshot(path=str(SCREENSHOTS / "incident_brief.png"))
    brief.get_by_role("link", name="#12").first.click()
    expect(page.get_by_text("Step 12 of 15")).to_be_visible(timeout=60_000)

    # Back and Forward walk the steps visited.
    page.goto(f"{base}/replay?trace={db}&step=3")
    expect(page.get_by_text("Step 3 of 15")).to_be_visible(timeout=60_000)
    for n in (4, 5):
        page.get_by_role("button", name="Next ▶").click()
        expect(page.get_by_text(f"Step {n} of 15")).to_be_visible(timeout=30_000)
        expect(page).to_have_url(re.compile(rf"step={n}(&|$)"))
    page.go_back()
    expect(page.get_by_text("Step 4 of 15")).to_be_visible(timeout=30_000)
    page.go_back()
    expect(page.get_by_text("Step 3 of 15")).to_be_visible(timeout=30_000)
    page.go_forward()
    expect(page.get_by_text("Step 4 of 15")).to_be_visible(timeout=30_000)
    expect(page).to_have_url(re.compile(r"step=4(&|$)"))

    # A timeline bar jumps; after stepping away, the same bar jumps again.
    expect(page.locator(".js-plotly-plot .barlayer .point path").first).to_be_attached(timeout=90_000)
    page.wait_for_timeout(1_000)
    x, y = _widest_bar_center(page)
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    jumped = page.get_by_text(re.compile(r"^Step \d+ of 15"))
    expect(jumped).not_to_have_text(re.compile(r"^Step 4 of 15"), timeout=30_000)
    match = re.match(r"Step (\d+) of 15", jumped.inner_text())
    assert match, jumped.inner_text()
    target = f"Step {match.group(1)} of 15"
    page.get_by_role("button", name="Next ▶").click()
    expect(page.get_by_text(target)).to_have_count(0, timeout=30_000)
    expect(page.locator(".js-plotly-plot .barlayer .point path").first).to_be_attached(timeout=60_000)
    page.wait_for_timeout(1_000)
    x, y = _widest_bar_center(page)
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    expect(page.get_by_text(target)).to_be_visible(timeout=30_000)
