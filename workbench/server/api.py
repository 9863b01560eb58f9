"""The read API of `workbench serve`: traces and their steps as JSON over HTTP.

Why: DuckDB lets one process open the file read-write, and while `workbench serve` runs that process is
the server, so nothing else can even open the file read-only. Other tools (the CLI's `traces` and
`replay`, benchmarks, scripts) read through this API instead. It is mounted on the OTLP/HTTP receiver's
app (same port, same bearer token), and its queries run on Starlette's thread pool with their own
cursor, so a large page never stalls the event loop that acknowledges ingest.

    GET /api/v1/traces?limit=100&offset=0[&q=text][&service=S...][&agent=A...][&start_ns=N][&end_ns=N]
                      [&has_findings=true|false][&has_errors=true|false][&min_cost=USD]
        {"total": int, "limit": int, "offset": int,
         "traces": [TraceSummary fields + findings, max_severity, matches]}
        The Traces page's filter (`TraceFilter`), one parameter per field: q, the traces whose step text
        contains it (case-insensitive); service and agent repeat; the window is [start_ns, end_ns) on
        the trace's start. With any filter, "total": null (counting every match would cost what the
        page saves)
    GET /api/v1/traces/{trace_id}/steps?limit=20000&offset=0
        {"trace_id": full id, "total": int, "limit": int, "offset": int, "steps": [{seq, Step fields...}]}

    POST /api/v1/probe-runs  {"trace_id", "step_seq" | "step" (1-based, time order), "analyses", "params"}
        201 {run fields..., "step": {"seq", "index", "kind", "name"}}: queued for the server's probe worker
    GET /api/v1/probe-runs/{id}
        {run fields..., "results": [{"analysis", "summary", "data"}...] (once done)}

Why probe runs here: while the server runs, no other process can write the queue, so `workbench probe`
queues through this and polls; the server's worker (probes/worker.py) runs the job in its child process.

`trace_id` may be a unique prefix, as on the command line. Errors are JSON `{"error": message}` with
400 (bad parameter, ambiguous prefix), 401 (token), 404 (no such trace) or 500 (the query failed).
"""

from __future__ import annotations

import dataclasses
import logging
import math
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
from workbench.errors import BadInput
from workbench.model import ProbeRunStatus, check_probe_request
from workbench.settings import Settings
from workbench.store import api_queries, explore_traces, queries
from workbench.store import probes as probe_store
from workbench.store.connection import Store
from workbench.store.explore_traces import TraceFilter

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


def _opt_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 2**63
    if not -(2**63) <= value < 2**63:
        raise ApiError(400, f"query parameter {name!r} must be a 64-bit integer (nanoseconds), got {raw!r}")
    return value


def _opt_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in ("true", "false"):
        raise ApiError(400, f"query parameter {name!r} must be true or false, got {raw!r}")
    return raw == "true"


def _opt_cost(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ApiError(400, f"query parameter {name!r} must be a finite amount of zero or more, got {raw!r}")
    return value


def trace_filter(request: Request) -> TraceFilter:
    """The trace list's filter from the query string, one parameter per `TraceFilter` field (`q` for the
    text, `service` and `agent` repeated), so the CLI and other tools filter exactly as the Traces page
    does; a bad value is a 400 naming its parameter. The client's `filter_params` writes them."""
    return TraceFilter(
        text=request.query_params.get("q", ""),
        services=tuple(request.query_params.getlist("service")),
        agents=tuple(request.query_params.getlist("agent")),
        start_ns=_opt_int(request, "start_ns"),
        end_ns=_opt_int(request, "end_ns"),
        has_findings=_opt_bool(request, "has_findings"),
        has_errors=_opt_bool(request, "has_errors"),
        min_cost=_opt_cost(request, "min_cost"),
    )


def _traces_page(store: Store, flt: TraceFilter, limit: int, offset: int) -> dict[str, Any]:
    # The unfiltered page has the same rows as a search (findings, worst severity; matches 0), so both
    # carry what the module docstring promises; only it counts the total, which is cheap without filters.
    filtered = dataclasses.replace(flt, text=flt.text.strip()) != TraceFilter()
    return {
        "total": None if filtered else api_queries.count_traces(store),
        "limit": limit,
        "offset": offset,
        "traces": explore_traces.search_traces(store, flt, limit, offset),
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


def _guarded(settings: Settings, work: Callable[[Request], dict[str, Any]], status: int = 200) -> Handler:
    """Auth, then `work` on the thread pool; refusals and query failures become JSON errors, never a
    dropped connection, and the server stays up. A POST's body is read first (into `request.state.body`)
    because the thread pool cannot await it."""

    async def endpoint(request: Request) -> Response:
        if not check_token(request.headers.get("authorization"), settings.auth_token):
            return _json({"error": "missing or wrong bearer token"}, 401, {"WWW-Authenticate": "Bearer"})
        try:
            if request.method == "POST":
                request.state.body = await request.body()
            return _json(await run_in_threadpool(work, request), status)
        except ApiError as exc:
            return _json({"error": str(exc)}, exc.status)
        except duckdb.Error as exc:
            log.exception("read API query failed: %s", request.url.path)
            return _json({"error": f"query failed: {exc}"}, 500)

    return endpoint


PROBE_BODY_MAX = 1 << 20  # a counterfactual scratchpad is a few KB; nothing legitimate comes near this


def _queue_probe(store: Store, body: bytes) -> dict[str, Any]:
    """Validate a probe request (each refusal names the field) and queue the run."""
    if len(body) > PROBE_BODY_MAX:
        raise ApiError(400, f"request body is {len(body)} bytes; at most {PROBE_BODY_MAX}")
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not JSON: {exc}") from exc
    if not isinstance(req, dict):
        raise ApiError(400, "request body must be a JSON object")
    unknown = sorted(set(req) - {"trace_id", "step_seq", "step", "analyses", "params"})
    if unknown:
        raise ApiError(
            400, f"unknown field(s) {unknown}; expected trace_id, step_seq or step, analyses, params"
        )
    if not isinstance(req.get("trace_id"), str):
        raise ApiError(400, "'trace_id' must be a string (a trace id or a unique prefix)")
    trace_id = _resolve(store, req["trace_id"])
    if ("step_seq" in req) == ("step" in req):
        raise ApiError(400, "give exactly one of 'step_seq' (ingest seq) or 'step' (1-based, in time order)")
    params = req.get("params", {})
    if not isinstance(params, dict):
        raise ApiError(400, f"'params' must be a JSON object, got {params!r}")
    try:
        analyses = check_probe_request(req.get("analyses"), params)
    except BadInput as exc:
        raise ApiError(400, f"'analyses': {exc}") from exc
    steps = queries.trace_steps(store, trace_id)
    if "step" in req:
        index = req["step"]
        if not isinstance(index, int) or isinstance(index, bool) or not 1 <= index <= len(steps):
            raise ApiError(400, f"'step' {index!r} is out of range: the trace has {len(steps)} steps")
        target = steps[index - 1]
    else:
        seq = req["step_seq"]
        found = [i for i, s in enumerate(steps) if s.seq == seq] if isinstance(seq, int) else []
        if not found:
            raise ApiError(400, f"'step_seq' {seq!r} is not a step of trace {trace_id}")
        index = found[0] + 1
        target = steps[found[0]]
    run_id = probe_store.insert_run(store, trace_id, target.seq, analyses, params)
    run = probe_store.get_run(store, run_id)
    assert run is not None
    step = {"seq": target.seq, "index": index, "kind": str(target.step.kind), "name": target.step.name}
    return {**run.to_json(), "step": step}


def _probe_run(store: Store, given: str) -> dict[str, Any]:
    try:
        run_id = int(given)
    except ValueError:
        raise ApiError(400, f"probe run id {given!r} is not an integer") from None
    run = probe_store.get_run(store, run_id)
    if run is None:
        raise ApiError(404, f"no probe run {run_id}")
    results = probe_store.results_of_run(store, run_id) if run.status == ProbeRunStatus.DONE else []
    return {
        **run.to_json(),
        "results": [{"analysis": r.analysis, "summary": r.summary, "data": r.data} for r in results],
    }


def api_mount(store: Store, settings: Settings) -> Mount:
    """The API's routes under /api/v1, to append to the receiver app's routes."""

    def traces(request: Request) -> dict[str, Any]:
        limit = _int_param(request, "limit", TRACES_DEFAULT_LIMIT, TRACES_MAX_LIMIT, minimum=1)
        offset = _int_param(request, "offset", 0, 2**62)
        return _traces_page(store, trace_filter(request), limit, offset)

    def steps(request: Request) -> dict[str, Any]:
        limit = _int_param(request, "limit", STEPS_DEFAULT_LIMIT, STEPS_MAX_LIMIT, minimum=1)
        offset = _int_param(request, "offset", 0, 2**62)
        return _steps_page(store, request.path_params["trace_id"], limit, offset)

    def queue_probe(request: Request) -> dict[str, Any]:
        return _queue_probe(store, request.state.body)

    def probe_run(request: Request) -> dict[str, Any]:
        return _probe_run(store, request.path_params["run_id"])

    return Mount(
        PREFIX,
        routes=[
            Route("/traces", _guarded(settings, traces), methods=["GET"]),
            Route("/traces/{trace_id}/steps", _guarded(settings, steps), methods=["GET"]),
            Route("/probe-runs", _guarded(settings, queue_probe, 201), methods=["POST"]),
            Route("/probe-runs/{run_id}", _guarded(settings, probe_run), methods=["GET"]),
        ],
    )
