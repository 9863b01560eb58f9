"""ASGI middleware that answers only the host names this server serves (a guard against DNS rebinding).

Why: with no token set (the default), a web page the investigator visits could point its own domain at
127.0.0.1 and read traces from the read API or the UI with the browser's help; the one thing such a page
cannot forge is the `Host` header, which still names the attacker's domain. So every HTTP server of the
workbench (the OTLP/HTTP receiver with the read API, and the UI) refuses any other host with 421.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workbench.settings import Settings

LOOPBACK = ("localhost", "127.0.0.1", "::1")
_ANY_ADDRESS = ("", "0.0.0.0", "::")


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Loopback names, the bind address (unless it is the any-address) and WORKBENCH_ALLOWED_HOSTS."""
    names = {*LOOPBACK}
    if settings.host not in _ANY_ADDRESS:
        names.add(_normalize(settings.host))
    names.update(_normalize(n) for n in settings.allowed_hosts.split(",") if n.strip())
    return frozenset(names)


def _normalize(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


def host_name(header: str) -> str:
    """A `Host` header's name without its port: `[::1]:8501` -> `::1`, `Example.COM.:80` -> `example.com`."""
    header = header.strip()
    if header.startswith("["):
        end = header.find("]")
        return _normalize(header[: end + 1]) if end > 0 else ""
    return _normalize(header.rsplit(":", 1)[0] if header.count(":") == 1 else header)


class HostGuard:
    """Refuse requests whose `Host` is not one of `hosts` ('*' among them allows any): HTTP gets 421 with
    a plain-text body that says what to set; a websocket is closed before it is accepted."""

    def __init__(self, app: Any, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(hosts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.hosts:
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope.get("headers", []) if k == b"host"), None)
        name = host_name(raw.decode("latin-1")) if raw is not None else ""
        if name in self.hosts:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        shown = name or "(none)"
        body = (
            f"workbench: this server does not answer for host {shown!r}; it serves "
            f"{', '.join(sorted(self.hosts))}. Add the name to WORKBENCH_ALLOWED_HOSTS to allow it.\n"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 421,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
