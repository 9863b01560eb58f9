"""The UI's HTTP guards, as ASGI middleware around Streamlit: the auth token and the page's CSP.

Why middleware: Streamlit serves its pages, static files and websocket from one ASGI app (`st.App`), and
these rules must hold for every one of them, whatever the page scripts do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

SESSION_COOKIE = "workbench_session"

# Trace text is hostile: should any of it ever reach the page as Markdown or HTML, the browser still
# fetches nothing from anywhere but this server. Streamlit's bundle needs inline styles (emotion) and
# eval (its Vega and Plotly builds compile expressions); its websocket is same-origin.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "media-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)


class ContentSecurityPolicy:
    """Adds the Content-Security-Policy header to every HTTP response of the UI."""

    def __init__(self, app: Any, policy: str = CONTENT_SECURITY_POLICY) -> None:
        self.app = app
        self.header = (b"content-security-policy", policy.encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_csp(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                kept = [h for h in message.get("headers", []) if h[0].lower() != self.header[0]]
                message = {**message, "headers": [*kept, self.header]}
            await send(message)

        await self.app(scope, receive, send_with_csp)


class TokenAuth:
    """ASGI middleware: with WORKBENCH_AUTH_TOKEN set, the UI needs the token too.

    A browser cannot add an Authorization header to a page load, so besides `Authorization: Bearer` it
    accepts `?token=...` once: it answers 303 to the same URL without the token, setting an HttpOnly,
    SameSite=Strict cookie (which the websocket also carries). The cookie holds an HMAC of the token under
    a key made at start, not the token: the token never stays in a URL (pasted links, history, Referer)
    nor in the browser's cookie store, and a restart signs everyone out.
    """

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()
        self.session = hmac.new(secrets.token_bytes(32), self.token, hashlib.sha256).hexdigest().encode()

    def _ok(self, value: str | bytes | None, expected: bytes) -> bool:
        if value is None:
            return False
        raw = value.encode() if isinstance(value, str) else value
        return hmac.compare_digest(raw, expected)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        cookies = dict(
            part.strip().split("=", 1) for part in headers.get("cookie", "").split(";") if "=" in part
        )
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in query if k == "token"]
        if scope["type"] == "http" and given and self._ok(given[0], self.token):
            await self._trade(scope, [(k, v) for k, v in query if k != "token"], send)
            return
        if (auth.startswith("Bearer ") and self._ok(auth[7:], self.token)) or self._ok(
            cookies.get(SESSION_COOKIE), self.session
        ):
            await self.app(scope, receive, send)
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

    async def _trade(self, scope: dict[str, Any], rest: list[tuple[str, str]], send: Any) -> None:
        """303 to the same path and query without `token`, with the session cookie set."""
        path = scope.get("root_path", "") + scope.get("path", "/")
        # One leading slash: `//host/...` would be a redirect to another site.
        location = "/" + quote(path.lstrip("/"), safe="/:@!$&'()*+,;=-._~")
        if rest:
            location += "?" + urlencode(rest)
        cookie = f"{SESSION_COOKIE}={self.session.decode()}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
