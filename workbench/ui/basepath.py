"""Tell Streamlit's page where its server is, so a direct load of /replay logs no 404s.

Why: Streamlit's frontend guesses the server's base path from the page URL. Loaded at `/replay` it
first tries `/replay/_stcore/health` and `/replay/_stcore/host-config` (two 404s in every console) and
only then `/`. The workbench always serves Streamlit at the root, so this ASGI middleware adds one
inline script to the app's HTML page that sets `window.__streamlit.BACKEND_BASE_URL` (the frontend's
documented embedding setting) to the page's origin; the frontend then asks `/` only. The CSP already
allows inline scripts (Streamlit needs them), and the script holds no request data.
"""

from __future__ import annotations

import gzip
from typing import Any

PIN_SCRIPT = (
    b"<script>window.__streamlit = Object.assign(window.__streamlit || {}, "
    b'{BACKEND_BASE_URL: window.location.origin + "/"});</script>'
)


def pin_base_url(page: bytes) -> bytes:
    """The HTML page with the pin script as the first thing in its head (unchanged without a head)."""
    at = page.find(b"<head>")
    if at < 0:
        return page
    at += len(b"<head>")
    return page[:at] + PIN_SCRIPT + page[at:]


class PinBaseUrl:
    """ASGI middleware: every `text/html` answer of the UI gets `pin_base_url` (the app page is small)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        body: list[bytes] = []

        async def rewrite(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if b"text/html" in headers.get(b"content-type", b"") and message.get("status") == 200:
                    start = message  # held until the body is complete
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            page = b"".join(body)
            headers = {k.lower(): v for k, v in start.get("headers", [])}
            if headers.get(b"content-encoding", b"identity") == b"gzip":  # Streamlit compresses its page
                page = gzip.decompress(page)
            page = pin_base_url(page)
            dropped = (b"content-length", b"etag", b"content-encoding")  # sent as plain bytes, 8 kB
            kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in dropped]
            length = str(len(page)).encode()
            await send({**start, "headers": [*kept, (b"content-length", length)]})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, rewrite)
