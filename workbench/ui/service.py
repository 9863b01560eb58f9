"""The Streamlit UI as a service inside `workbench serve`: same process, same Store, its own port.

Why in-process: DuckDB allows one read-write process per file, and the UI writes (annotations, queued
probe runs). Streamlit 1.6x serves apps as an ASGI application (`st.App`), so the UI runs on its own
Uvicorn server on a thread with its own event loop, beside the OTLP receivers. The socket is bound in
`start()` (a taken port fails `workbench serve` at once, with the port named) while Streamlit itself is
imported on the UI thread, so the receivers are ready without waiting for it.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

from collectors.hosts import HostGuard, allowed_hosts
from workbench.errors import WorkbenchError
from workbench.settings import Settings
from workbench.store.connection import Store
from workbench.ui import context
from workbench.ui.basepath import PinBaseUrl
from workbench.ui.guards import ContentSecurityPolicy, TokenAuth

log = logging.getLogger(__name__)

APP_PATH = Path(__file__).resolve().parent / "app.py"

# Streamlit options for a server that lives inside another process: no file watching (the code does not
# change under a running server), no usage statistics (no network), no browser to open.
STREAMLIT_OPTIONS: dict[str, Any] = {
    "server.headless": True,
    "server.fileWatcherType": "none",
    "server.runOnSave": False,
    "server.showEmailPrompt": False,
    "browser.gatherUsageStats": False,
    "global.developmentMode": False,
    "client.toolbarMode": "minimal",
    "client.showErrorDetails": "full",
    "theme.base": "light",
    # Streamlit runs a full gc.collect(2) after every script run by default. Inside `workbench serve` the
    # heap holds the receivers, the store and the probe worker's imports, so that collection took ~0.2 s
    # with the GIL held after each replay step change, delaying the step's last deltas (measured with
    # py-spy, benchmarks/RESULTS.md). Python's own generational GC still runs.
    "runner.postScriptGC": False,
}


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise WorkbenchError(
            f"cannot listen on {host}:{port} for the UI: {exc.strerror} "
            "(set WORKBENCH_UI_PORT; 0 picks a free port)"
        ) from exc
    sock.listen(128)
    return sock


class UIService:
    """The workbench UI on `settings.host:settings.ui_port`, sharing the server's Store."""

    name = "ui"

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._started = threading.Event()
        self.port = 0

    @property
    def url(self) -> str:
        host = self.settings.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        shown = f"[{shown}]" if ":" in shown else shown
        return f"http://{shown}:{self.port}/"

    def start(self) -> None:
        self._sock = _bind(self.settings.host, self.settings.ui_port)
        self.port = self._sock.getsockname()[1]
        context.set_store(self.store, self.settings)
        self._thread = threading.Thread(target=self._run, name="workbench-ui", daemon=True)
        self._thread.start()

    def _build_app(self) -> Any:
        import streamlit as st
        from streamlit import config as st_config
        from streamlit.web import bootstrap

        options = {**STREAMLIT_OPTIONS, "server.port": self.port, "server.address": self.settings.host}
        bootstrap.load_config_options(options)
        for key, value in options.items():
            st_config.set_option(key, value)
        from starlette.middleware import Middleware

        # Outermost first: a foreign Host is refused before anything else; every answer carries the CSP.
        middleware = [
            Middleware(HostGuard, hosts=allowed_hosts(self.settings)),
            Middleware(ContentSecurityPolicy),
        ]
        if self.settings.auth_token:
            middleware.append(Middleware(TokenAuth, token=self.settings.auth_token))
        middleware.append(Middleware(PinBaseUrl))  # innermost: it edits only the app's own HTML page
        return st.App(str(APP_PATH), middleware=middleware)

    def _run(self) -> None:
        import uvicorn

        try:
            config = uvicorn.Config(
                self._build_app(), log_level="warning", lifespan="on", timeout_graceful_shutdown=3
            )
            self._server = uvicorn.Server(config)
            self._started.set()
            assert self._sock is not None
            self._server.run(sockets=[self._sock])
        except Exception:
            log.exception("the workbench UI stopped with an error; the collectors keep running")
        finally:
            self._started.set()

    def stop(self) -> None:
        self._started.wait(30)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        if self._sock is not None:
            self._sock.close()
        context.set_store(None)
