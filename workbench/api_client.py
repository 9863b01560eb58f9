"""Reading through a running `workbench serve`: the CLI's `traces` and `replay` while the server holds
the database.

Why: DuckDB gives one process the file, so while a server runs a read-only open fails. These helpers
ask the server's read API (`workbench/api.py`) instead and return the same records the named queries
return, so the rendering code does not know where the data came from. They return None when no server
holds the data directory, and the caller opens the file itself.
"""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from workbench.errors import WorkbenchError
from workbench.model import Step, StepKind, StoredStep, TraceSummary
from workbench.server import ServerInfo, running_server
from workbench.settings import Settings

_TIMEOUT_S = 300


def _get(server: ServerInfo, settings: Settings, path: str, params: dict[str, Any]) -> Any:
    url = f"{server.http_url}/api/v1{path}?{urllib.parse.urlencode(params)}"
    headers = {"Accept": "application/json"}
    if settings.auth_token:
        headers["Authorization"] = f"Bearer {settings.auth_token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = orjson.loads(exc.read()).get("error", "")
        except (orjson.JSONDecodeError, AttributeError):
            message = ""
        if exc.code == 401:
            message = "it requires a bearer token: set WORKBENCH_AUTH_TOKEN to the server's token"
        raise WorkbenchError(
            f"workbench serve (PID {server.pid}, {server.http_url}) answered {exc.code}: {message}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WorkbenchError(
            f"workbench serve (PID {server.pid}) holds {settings.db_path} but its read API at "
            f"{server.http_url} cannot be reached: {reason}"
        ) from exc


def _server_for(settings: Settings) -> ServerInfo | None:
    """The running server that holds *this* database (`--db` may name another file than the server's)."""
    server = running_server(settings)
    if server is None or Path(server.db) != settings.db_path.resolve():
        return None
    return server


_SUMMARY_FIELDS = tuple(f.name for f in dataclasses.fields(TraceSummary))


def remote_traces(settings: Settings, limit: int) -> list[TraceSummary] | None:
    """The newest `limit` traces from the running server, or None when no server holds the database."""
    server = _server_for(settings)
    if server is None:
        return None
    found: list[TraceSummary] = []
    while len(found) < limit:
        page = _get(
            server, settings, "/traces", {"limit": min(limit - len(found), 10_000), "offset": len(found)}
        )
        rows = page["traces"]
        # Rows may carry more than a summary (findings counts); a newer server may add fields too.
        found += [
            TraceSummary(**{**{k: row[k] for k in _SUMMARY_FIELDS}, "agents": tuple(row["agents"])})
            for row in rows
        ]
        if not rows or len(found) >= page["total"]:
            break
    return found


def remote_trace_steps(settings: Settings, trace_id: str) -> tuple[str, list[StoredStep]] | None:
    """(full trace id, every step in time order) from the running server, or None when no server holds
    the database. `trace_id` may be a unique prefix; the server resolves it."""
    server = _server_for(settings)
    if server is None:
        return None
    full = trace_id
    steps: list[StoredStep] = []
    while True:
        page = _get(
            server, settings, f"/traces/{urllib.parse.quote(full, safe='')}/steps", {"offset": len(steps)}
        )
        full = page["trace_id"]
        steps += [_stored_step(row) for row in page["steps"]]
        if not page["steps"] or len(steps) >= page["total"]:
            return full, steps


def _stored_step(row: dict[str, Any]) -> StoredStep:
    seq = int(row.pop("seq"))
    row["kind"] = StepKind(row["kind"])
    return StoredStep(seq=seq, step=Step(**row))
