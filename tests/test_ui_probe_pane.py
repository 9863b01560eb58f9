"""The replay's probe pane in Chromium against a served workbench with the gated tiny model (issue #17).

Choosing analyses and queueing a run takes one click each; the pane polls the running job and shows
its results ("Inside the model") when it is done, without a reload.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.test_probes_worker import DB_SAMPLE, DB_TRACE, GATE_ENV, GATED_TINY
from workbench.cli.loading import ingest_files
from workbench.settings import Settings

pytestmark = pytest.mark.slow


def test_probe_pane_queues_in_one_click_and_shows_results_when_done(
    tmp_path: Path,
    browser_page: object,
    artifacts_dir: Path,
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    gate = tmp_path / "gate"
    gate.touch()  # the worker's child holds in its model load until the test removes this
    env = {"WORKBENCH_PROBE_MODEL": GATED_TINY, "WORKBENCH_PROBE_CONTEXT_CHARS": "300", GATE_ENV: str(gate)}
    server = ServerProcess(tmp_path / "served", env=env).start()
    try:
        assert ingest_files(Settings(data_dir=server.data_dir), [DB_SAMPLE]).accepted == 15
        page.goto(f"http://127.0.0.1:{server.ui_port}/replay?trace={DB_TRACE}&step=6")
        expect(page.get_by_text("Step 6 of 15")).to_be_visible(timeout=60_000)
        form = page.locator("[data-testid='stForm']").filter(has_text="Queue probe run")
        expect(form).to_be_visible(timeout=30_000)
        form.get_by_text("probes", exact=True).click()  # no trained probes here
        form.get_by_text("attention", exact=True).click()  # and add attention
        form.get_by_role("button", name="Queue probe run").click()  # one click queues
        expect(page.get_by_text("queued probe run 1")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("probe run 1: running").first).to_be_visible(timeout=60_000)
        assert page.get_by_text("Inside the model").count() == 0
        gate.unlink()
        expect(page.get_by_text("Inside the model")).to_be_visible(timeout=120_000)  # no reload
        expect(page.locator(".js-plotly-plot").nth(2)).to_be_visible(timeout=60_000)
        page.wait_for_timeout(1_000)
        page.screenshot(path=str(artifacts_dir / "ui_probe_pane_done.png"), full_page=True)
    finally:
        assert server.stop() == 0, server.log()
