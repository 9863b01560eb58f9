"""Every page of the served UI in Chromium at 1440 px (issue #17): a clean console on direct loads, and a
traces list that is readable without a sideways scroll, worst severity first."""

from __future__ import annotations

from pathlib import Path

import pytest

from sample_traces.catalog import get
from tests.conftest import ServerProcess
from workbench.cli.loading import ingest_files
from workbench.settings import Settings

pytestmark = pytest.mark.slow

SAMPLES = ["db_deletion", "prompt_injection", "tree_of_thought", "weekly_report", "runaway_reasoning"]
PAGES = ["/replay", "/dashboard", "/findings", "/probes", "/export", "/"]


def test_direct_loads_log_nothing_and_the_traces_list_fits(
    serve_process: ServerProcess,
    browser_page: object,
    artifacts_dir: Path,
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    page.set_viewport_size({"width": 1440, "height": 900})
    assert (
        ingest_files(Settings(data_dir=serve_process.data_dir), [get(n).path for n in SAMPLES]).accepted == 94
    )
    base = f"http://127.0.0.1:{serve_process.ui_port}"
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: failed.append(f"console {m.text}") if m.type == "error" else None)
    for path in PAGES:
        page.goto(base + path)
        expect(page.locator("[data-testid='stSidebarNav']")).to_be_visible(timeout=60_000)
        page.wait_for_timeout(2_500)  # the connection settles: the base-path probes come first
        assert failed == [], (path, failed)

    expect(page.get_by_text("5 trace(s), worst severity first")).to_be_visible(timeout=60_000)
    grid = page.locator("[data-testid='stDataFrame'] .dvn-scroller").first
    expect(grid).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1_000)
    sizes = grid.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert sizes[0] <= sizes[1] + 1, sizes  # every column fits: no sideways scroll at 1440 px
    page.screenshot(path=str(artifacts_dir / "ui_traces_1440.png"))
    page.get_by_label("Search inputs, outputs, reasoning and tool arguments").fill("order")
    page.keyboard.press("Enter")
    expect(page.get_by_text("trace(s) matching, worst severity first")).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1_500)
    sizes = page.locator("[data-testid='stDataFrame'] .dvn-scroller").first.evaluate(
        "e => [e.scrollWidth, e.clientWidth]"
    )
    assert sizes[0] <= sizes[1] + 1, sizes  # the matches column fits too
