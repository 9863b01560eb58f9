"""The Streamlit UI as a service inside `workbench serve`: same process, same Store, its own port.

Why in-process: DuckDB allows one read-write process per file, and the UI writes (annotations, queued
probe runs). Streamlit 1.6x serves apps as an ASGI application (`st.App`), so the UI runs on its own
Uvicorn server on a thread with its own event loop, beside the OTLP receivers. The socket is bound in
`start()` (a taken port fails `workbench serve` at once, with the port named) while Streamlit itself is
imported on the UI thread, so the receivers are ready without waiting for it.
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from workbench.errors import WorkbenchError
from workbench.settings import Settings
from workbench.store.connection import Store
from workbench.ui import context

log = logging.getLogger(__name__)

APP_PATH = Path(__file__).resolve().parent / "app.py"
TOKEN_COOKIE = "workbench_token"

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


class TokenAuth:
    """ASGI middleware: with WORKBENCH_AUTH_TOKEN set, the UI needs the token too.

    A browser cannot add an Authorization header to a page load, so besides `Authorization: Bearer` it
    accepts `?token=...` once (then remembered in an HttpOnly cookie, which the websocket also carries).
    """

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _ok(self, value: str | bytes | None) -> bool:
        if value is None:
            return False
        raw = value.encode() if isinstance(value, str) else value
        return hmac.compare_digest(raw, self.token)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        cookies = dict(
            part.strip().split("=", 1) for part in headers.get("cookie", "").split(";") if "=" in part
        )
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        from_query = self._ok((query.get("token") or [None])[0])
        if auth.startswith("Bearer ") and self._ok(auth[7:]) or self._ok(cookies.get(TOKEN_COOKIE)):
            await self.app(scope, receive, send)
            return
        if from_query and scope["type"] == "http":
            cookie = f"{TOKEN_COOKIE}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict".encode()

            async def send_with_cookie(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
                await send(message)

            await self.app(scope, receive, send_with_cookie)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b"workbench UI: this server requires its auth token; open the URL with ?token=<token>\n"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


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
        middleware = []
        if self.settings.auth_token:
            from starlette.middleware import Middleware

            middleware.append(Middleware(TokenAuth, token=self.settings.auth_token))
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
