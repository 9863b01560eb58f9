"""Debian's Chromium driven by Playwright: the one way the benchmarks and the browser tests open it.

Why one module: the replay benchmark, the growth benchmark and the UI's browser tests must open the
same browser with the same flags, or a figure in benchmarks/RESULTS.md would describe a browser no
test drives. Playwright never downloads a browser here: it is pointed at Debian's `chromium`
(`make chromium` installs it).

Timing a page as a user sees it: navigate, then check a JavaScript predicate on every animation frame
until it holds. Playwright's expect() polls at 100, 250, 500, then 1000 ms, which would round a
measure up by up to a second; `polling="raf"` does not.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Playwright is imported only when a browser is opened
    from playwright.sync_api import BrowserContext, Page

ROOT = Path(__file__).resolve().parent.parent
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
# The text is somewhere in the page. textContent (not innerText) forces no layout, so checking it on
# every frame does not slow the page it measures.
SHOWN = "t => document.body && document.body.textContent.includes(t)"
TIMEOUT_MS = 120_000


@contextmanager
def chromium(profile: Path, width: int = 1440, height: int = 1000) -> Iterator[BrowserContext]:
    """A headless Chromium with its own user data directory `profile` and a `width` x `height` window,
    closed on exit. A fresh profile per use keeps one run's cache from speeding up the next."""
    if not CHROMIUM.exists():
        raise FileNotFoundError(
            f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()


def wait_until(page: Page, predicate: str, arg: object = None, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until the JavaScript function `predicate(arg)` is true, checked on every animation frame."""
    page.wait_for_function(predicate, arg=arg, polling="raf", timeout=timeout_ms)


def seconds_until(page: Page, url: str, predicate: str, arg: object = None) -> float:
    """Seconds from starting to load `url` until `predicate(arg)` holds in the page."""
    t0 = time.perf_counter()
    page.goto(url)
    wait_until(page, predicate, arg)
    return time.perf_counter() - t0


# A floor page (a Streamlit app file, argv[1]) served the way `workbench serve` serves the UI: st.App on
# Uvicorn with the same Streamlit options, so what the browser needs for it is what Streamlit itself
# costs on this machine, and a workbench page's time is reported against it.
FLOOR_SERVER = """
import socket, sys, threading
import streamlit as st, uvicorn
from streamlit import config
from streamlit.web import bootstrap
from workbench.ui.service import STREAMLIT_OPTIONS
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(128)
bootstrap.load_config_options(STREAMLIT_OPTIONS)
for key, value in STREAMLIT_OPTIONS.items():
    config.set_option(key, value)
server = uvicorn.Server(uvicorn.Config(st.App(sys.argv[1]), log_level="warning", lifespan="on"))
print(f"UI              http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
print("ready", flush=True)
server.run(sockets=[sock])
"""


def floor_command(app: str | Path) -> list[str]:
    """The command that serves the Streamlit app file `app` as a floor page (see FLOOR_SERVER)."""
    return [sys.executable, "-c", FLOOR_SERVER, str(app)]


def start_until_ready(cmd: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start `cmd` (`workbench serve` or a floor server) with its output in `log`; return it and the UI
    port from its "UI  http://...:PORT/" line once it has printed "ready"."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "\nready" in text:
            ui = next(line for line in text.splitlines() if line.startswith("UI "))
            return proc, int(ui.rsplit(":", 1)[1].strip("/ "))
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{cmd} did not start:\n{log.read_text(errors='replace')}")
