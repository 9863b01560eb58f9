"""The served UI in a real browser: `workbench serve` as a subprocess, samples sent over OTLP, and the
replay deep link opened in Debian's headless Chromium (driven by Playwright, which never downloads one).

Screenshots are kept under tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sample_traces.catalog import get
from tests.conftest import ServerProcess
from workbench.ingest import ingest_files
from workbench.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user data dir per test
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            # Streamlit scrolls inside its own container, so a tall window is what makes a full screenshot.
            viewport={"width": 1440, "height": 2400},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_replay_deep_link_renders_the_step_in_chromium(
    serve_process: ServerProcess, browser_page: object, artifacts_dir: Path
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    names = ["db_deletion", "prompt_injection", "tree_of_thought", "weekly_report", "runaway_reasoning"]
    totals = ingest_files(Settings(data_dir=serve_process.data_dir), [get(n).path for n in names])
    assert totals.accepted == 94 and "workbench serve" in totals.via
    assert serve_process.ui_port, serve_process.log()
    base = f"http://127.0.0.1:{serve_process.ui_port}"
    trace = get("db_deletion").trace_id()

    page.goto(f"{base}/replay?trace={trace}&step=12")
    expect(page.get_by_text("Step 12 of 15")).to_be_visible(timeout=60_000)
    # The page streams in; wait for each pane rather than reading the body once.
    expect(page.get_by_text("dropped table order_events").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Raw span attributes and events")).to_be_visible(timeout=30_000)
    body = page.inner_text("body")
    assert "execute_tool run_sql" in body and "DROP TABLE order_events" in body and "Side effect" in body
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=90_000)  # the timeline drew
    page.wait_for_timeout(1_000)
    page.screenshot(path=str(artifacts_dir / "ui_replay_db_deletion_step12.png"), full_page=True)

    expect(page.get_by_text("▲ step 12 ·")).to_be_visible(timeout=30_000)  # the current-step marker
    # A step change reruns only the step's fragment: the timeline's chart element stays the same node.
    page.evaluate("() => { document.querySelector('.js-plotly-plot').dataset.wbKept = 'yes'; }")
    page.get_by_role("button", name="Next ▶").click()
    expect(page.get_by_text("Step 13 of 15")).to_be_visible(timeout=30_000)
    expect(page).to_have_url(re.compile(r"step=13"))
    expect(page.get_by_text("▲ step 13 ·")).to_be_visible(timeout=30_000)  # the marker moved
    assert page.evaluate("() => document.querySelector('.js-plotly-plot').dataset.wbKept") == "yes"

    tot = get("tree_of_thought").trace_id()
    page.goto(f"{base}/replay?trace={tot}&step=12")
    expect(page.get_by_text("Step 12 of 23")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("reasoning: branch B.1").first).to_be_visible(timeout=30_000)  # the step tree
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=90_000)
    page.wait_for_timeout(1_000)
    page.screenshot(path=str(artifacts_dir / "ui_replay_tree_of_thought_step12.png"), full_page=True)

    page.goto(f"{base}/dashboard")
    expect(page.get_by_text("Agentic IQ")).to_be_visible(timeout=60_000)
    expect(page.locator("[data-testid='stDataFrame'] canvas").first).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1_500)
    page.screenshot(path=str(artifacts_dir / "ui_dashboard.png"), full_page=True)

    page.goto(f"{base}/")  # the traces page is the app's main page
    expect(page.get_by_text("5 trace(s)")).to_be_visible(timeout=60_000)
    expect(page.locator("[data-testid='stDataFrame'] canvas").first).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1_500)
    page.screenshot(path=str(artifacts_dir / "ui_traces.png"), full_page=True)

    page.goto(f"{base}/findings")
    expect(page.get_by_role("heading", name="Findings")).to_be_visible(timeout=60_000)
    expect(page.locator("[data-testid='stDataFrame'] canvas").first).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1_500)
    page.screenshot(path=str(artifacts_dir / "ui_findings.png"), full_page=True)
    assert serve_process.stop() == 0  # SIGTERM still shuts down cleanly with the UI inside


def test_replay_step_change_catches_up_with_a_growing_trace(
    serve_process: ServerProcess, browser_page: object, tmp_path: Path
) -> None:
    """Next reruns only the step fragment; when the trace has grown meanwhile, the whole page reruns so
    the total, the order and the timeline include the new steps (the fragment alone would show stale ones).
    """
    from playwright.sync_api import Page, expect

    from sample_traces import long_trace

    page: Page = browser_page  # type: ignore[assignment]
    first, more = tmp_path / "first.pb", tmp_path / "more.pb"
    long_trace.write(first, steps=30, seed=7)
    long_trace.write(more, steps=60, seed=7)  # the same trace id (seeded), 60 more spans
    settings = Settings(data_dir=serve_process.data_dir)
    assert ingest_files(settings, [first]).accepted == 30
    page.goto(f"http://127.0.0.1:{serve_process.ui_port}/replay?step=5")
    expect(page.get_by_text("Step 5 of 30")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Next ▶")).to_be_visible(timeout=60_000)
    assert ingest_files(settings, [more]).accepted == 60
    page.get_by_role("button", name="Next ▶").click()
    expect(page.get_by_text("Step 6 of 90")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("· 90 steps ·")).to_be_visible(timeout=30_000)  # the header, outside the fragment


def test_a_taken_ui_port_fails_serve_with_a_clear_message(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
        env.update(
            WORKBENCH_DATA_DIR=str(tmp_path / "taken"),
            WORKBENCH_HTTP_PORT="0",
            WORKBENCH_GRPC_PORT="0",
            WORKBENCH_UI_PORT=str(port),
        )
        done = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port} for the UI" in done.stderr
    assert "Traceback" not in done.stderr
