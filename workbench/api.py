"""The read API of `workbench serve`: traces and their steps as JSON over HTTP.

Why: DuckDB lets one process open the file read-write, and while `workbench serve` runs that process is
the server, so nothing else can even open the file read-only. Other tools (the CLI's `traces` and
`replay`, benchmarks, scripts) read through this API instead. It is mounted on the OTLP/HTTP receiver's
app (same port, same bearer token), and its queries run on Starlette's thread pool with their own
cursor, so a large page never stalls the event loop that acknowledges ingest.

    GET /api/v1/traces?limit=100&offset=0
        {"total": int, "limit": int, "offset": int, "traces": [TraceSummary fields...]}
    GET /api/v1/traces/{trace_id}/steps?limit=20000&offset=0
        {"trace_id": full id, "total": int, "limit": int, "offset": int, "steps": [{seq, Step fields...}]}

`trace_id` may be a unique prefix, as on the command line. Errors are JSON `{"error": message}` with
400 (bad parameter, ambiguous prefix), 401 (token), 404 (no such trace) or 500 (the query failed).
"""

from __future__ import annotations

import logging
import string
from collections.abc import Awaitable, Callable
from typing import Any

import duckdb
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from collectors.receiver_http import check_token
from workbench.settings import Settings
from workbench.store import api_queries, queries
from workbench.store.connection import Store

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
TRACES_DEFAULT_LIMIT = 100
TRACES_MAX_LIMIT = 10_000
# One call fetches a whole 10,000-step trace (the size the UI and the benchmark display); larger traces
# page. The ceiling bounds the memory one response can take (a step is a few KB of JSON).
STEPS_DEFAULT_LIMIT = 20_000
STEPS_MAX_LIMIT = 100_000

_HEX = frozenset(string.hexdigits)


class ApiError(Exception):
    """A request the API refuses: answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # orjson writes dataclasses (TraceSummary) and str enums natively, several times faster than json.
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def _int_param(request: Request, name: str, default: int, maximum: int, minimum: int = 0) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if not minimum <= value <= maximum:
        raise ApiError(
            400, f"query parameter {name!r} must be an integer from {minimum} to {maximum}, got {raw!r}"
        )
    return value


def _resolve(store: Store, given: str) -> str:
    prefix = given.strip().lower()
    if not prefix or not _HEX.issuperset(prefix):
        raise ApiError(400, f"trace id {given!r} is not hexadecimal")
    found = api_queries.trace_ids_with_prefix(store, prefix, 2)
    if not found:
        raise ApiError(404, f"no trace with id {given!r}")
    if len(found) > 1:
        raise ApiError(400, f"{given!r} matches several traces; give more characters")
    return found[0]


def _traces_page(store: Store, limit: int, offset: int) -> dict[str, Any]:
    return {
        "total": api_queries.count_traces(store),
        "limit": limit,
        "offset": offset,
        "traces": queries.list_traces(store, limit=limit, offset=offset),
    }


def _steps_page(store: Store, given: str, limit: int, offset: int) -> dict[str, Any]:
    trace_id = _resolve(store, given)
    return {
        "trace_id": trace_id,
        "total": api_queries.count_trace_steps(store, trace_id),
        "limit": limit,
        "offset": offset,
        "steps": api_queries.trace_step_page(store, trace_id, limit, offset),
    }


Handler = Callable[[Request], Awaitable[Response]]


def _guarded(settings: Settings, work: Callable[[Request], dict[str, Any]]) -> Handler:
    """Auth, then `work` on the thread pool; refusals and query failures become JSON errors, never a
    dropped connection, and the server stays up."""

    async def endpoint(request: Request) -> Response:
        if not check_token(request.headers.get("authorization"), settings.auth_token):
            return _json({"error": "missing or wrong bearer token"}, 401, {"WWW-Authenticate": "Bearer"})
        try:
            return _json(await run_in_threadpool(work, request))
        except ApiError as exc:
            return _json({"error": str(exc)}, exc.status)
        except duckdb.Error as exc:
            log.exception("read API query failed: %s", request.url.path)
            return _json({"error": f"query failed: {exc}"}, 500)

    return endpoint


def api_mount(store: Store, settings: Settings) -> Mount:
    """The API's routes under /api/v1, to append to the receiver app's routes."""

    def traces(request: Request) -> dict[str, Any]:
        limit = _int_param(request, "limit", TRACES_DEFAULT_LIMIT, TRACES_MAX_LIMIT, minimum=1)
        offset = _int_param(request, "offset", 0, 2**62)
        return _traces_page(store, limit, offset)

    def steps(request: Request) -> dict[str, Any]:
        limit = _int_param(request, "limit", STEPS_DEFAULT_LIMIT, STEPS_MAX_LIMIT, minimum=1)
        offset = _int_param(request, "offset", 0, 2**62)
        return _steps_page(store, request.path_params["trace_id"], limit, offset)

    return Mount(
        PREFIX,
        routes=[
            Route("/traces", _guarded(settings, traces), methods=["GET"]),
            Route("/traces/{trace_id}/steps", _guarded(settings, steps), methods=["GET"]),
        ],
    )
