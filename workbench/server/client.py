"""The one client every command uses to reach a running `workbench serve`.

Why one: DuckDB gives one process the file, so while a server holds the database `ingest` sends it
OTLP, and `traces`, `replay` and `probe` go through its read API. Each used to carry its own urllib
client with its own answer to a missing token, a dead server and a full queue. Here there is one answer
to each, worded once:

- 401: the server wants a bearer token (set WORKBENCH_AUTH_TOKEN), or rejected the one given;
- unreachable: the server's `server.json` says it holds the database, but nothing answers there;
- 503: the server's queue is full for now; the request is sent again after its Retry-After, for a
  bounded total wait, exactly as an OTLP exporter would;
- another database: a server runs on this data directory but holds another file than `--db` names;
  then no command talks to it, and the named file is opened directly (`connect` returns None and
  `elsewhere` says so in one line).

A command asks `connect(settings)`; None means no server holds this database and the command opens the
file itself. Errors are WorkbenchErrors, shown by the CLI as one line.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.parse
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from workbench.errors import WorkbenchError
from workbench.model import Step, StepKind, StoredStep
from workbench.server.discovery import ServerInfo, running_server
from workbench.settings import Settings

if TYPE_CHECKING:  # imports DuckDB: only the commands that read traces pay for it, inside the call
    from workbench.store.explore_traces import TraceFilter, TraceRow

TIMEOUT_S = 300.0  # a page of a 100k-step trace or a probe request on a busy server
RETRY_DEFAULT_S = 1.0  # a 503 without Retry-After (Uvicorn's own concurrency limit sends none)
RETRY_MAX_WAIT_S = 120.0  # in all, per request; then the 503 is reported
RETRY_STEP_MAX_S = 30.0  # one wait, whatever Retry-After asks
PROTOBUF = "application/x-protobuf"


class ServerClient:
    """Requests to one running server, with its token; a context manager that closes the connections."""

    def __init__(self, info: ServerInfo, settings: Settings, timeout: float = TIMEOUT_S) -> None:
        self.info = info
        self.settings = settings
        headers = {"Authorization": f"Bearer {settings.auth_token}"} if settings.auth_token else {}
        # trust_env=False: the address comes from server.json, and a proxy from the environment is never
        # the way to a server on this machine.
        self._http = httpx.Client(base_url=info.http_url, headers=headers, timeout=timeout, trust_env=False)

    @property
    def name(self) -> str:
        return f"workbench serve (PID {self.info.pid}, {self.info.http_url})"

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def healthy(self) -> bool:
        """Whether the server answers its health check now (no retries: the caller polls)."""
        try:
            return self._http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def get_json(self, path: str, params: dict[str, Any] | list[tuple[str, str]] | None = None) -> Any:
        """GET /api/v1{path} and its JSON body; `params` as pairs when a parameter repeats."""
        return orjson.loads(self.request("GET", f"/api/v1{path}", params=params).content)

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON body to /api/v1{path} and its JSON answer."""
        content = orjson.dumps(body)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        return orjson.loads(self.request("POST", f"/api/v1{path}", content=content, headers=headers).content)

    def export_traces(self, body: bytes) -> bytes:
        """POST an OTLP ExportTraceServiceRequest (protobuf) to /v1/traces; the response's bytes."""
        headers = {"Content-Type": PROTOBUF, "Accept": PROTOBUF}
        return self.request("POST", "/v1/traces", content=body, headers=headers).content

    def export_logs(self, body: bytes) -> bytes:
        """POST an OTLP ExportLogsServiceRequest (protobuf) to /v1/logs; the response's bytes."""
        headers = {"Content-Type": PROTOBUF, "Accept": PROTOBUF}
        return self.request("POST", "/v1/logs", content=body, headers=headers).content

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; 503 is retried after Retry-After, every other refusal is one WorkbenchError."""
        waited = 0.0
        while True:
            try:
                resp = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise WorkbenchError(
                    f"{self.name} holds {self.info.db} but cannot be reached: {exc or type(exc).__name__}"
                ) from exc
            if resp.status_code == 503 and waited < RETRY_MAX_WAIT_S:
                pause = min(retry_after(resp.headers.get("retry-after")), RETRY_MAX_WAIT_S - waited)
                time.sleep(pause)
                waited += pause
                continue
            if resp.status_code == 401:
                raise WorkbenchError(
                    f"{self.name} rejected the bearer token in WORKBENCH_AUTH_TOKEN"
                    if self.settings.auth_token
                    else f"{self.name} requires a bearer token: set WORKBENCH_AUTH_TOKEN to its token"
                )
            if resp.status_code >= 400:
                after = f" (still busy after {waited:.0f} s of retries)" if resp.status_code == 503 else ""
                raise WorkbenchError(f"{self.name} answered {resp.status_code}{after}: {error_message(resp)}")
            return resp


def retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), within sane bounds."""
    if not value:
        return RETRY_DEFAULT_S
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return RETRY_DEFAULT_S
    return max(0.0, min(seconds, RETRY_STEP_MAX_S))


def error_message(resp: httpx.Response) -> str:
    """What the server said: the API's `{"error": ...}`, a receiver's google.rpc.Status, or the text."""
    kind = resp.headers.get("content-type", "")
    try:
        if "json" in kind:
            body = orjson.loads(resp.content)
            if isinstance(body, dict):
                return str(body.get("error") or body.get("message") or body)[:500]
        if "protobuf" in kind:
            from google.rpc.status_pb2 import Status

            return Status.FromString(resp.content).message[:500]
    except (ValueError, orjson.JSONDecodeError):
        pass
    return resp.text[:500] or resp.reason_phrase


def connect(settings: Settings) -> ServerClient | None:
    """A client for the running server that holds the database `settings` names, or None when no server
    does (none runs, or the one on this data directory holds another file): open the file directly."""
    info = running_server(settings)
    if info is None or not info.holds(settings):
        return None
    return ServerClient(info, settings)


def elsewhere(settings: Settings) -> str | None:
    """One line when a server runs on this data directory but holds another database than the one named:
    the command does not send it anything and opens the named file itself. None otherwise."""
    info = running_server(settings)
    if info is None or info.holds(settings):
        return None
    named = settings.db_path.resolve()
    return (
        f"workbench serve (PID {info.pid}, {info.http_url}) holds {info.db}, not {named}; "
        "nothing goes to that server: this command opens the named database itself"
    )


# The read API's pages as the records the named queries return, so a command renders them without
# knowing where they came from.

TRACES_PAGE_MAX = 10_000  # the API's largest page of traces (api.py TRACES_MAX_LIMIT)


def filter_params(flt: TraceFilter) -> list[tuple[str, str]]:
    """`flt` as the read API's query parameters, one per field (`api.trace_filter` reads them back):
    `q`, `service` and `agent` (repeated), `start_ns`, `end_ns`, `has_findings`, `has_errors`,
    `min_cost`. Empty fields send nothing, which the API reads as no condition."""
    params: list[tuple[str, str]] = [("q", flt.text)] if flt.text else []
    params += [("service", name) for name in flt.services]
    params += [("agent", name) for name in flt.agents]
    for key, when in (("start_ns", flt.start_ns), ("end_ns", flt.end_ns)):
        if when is not None:
            params.append((key, str(when)))
    for key, wanted in (("has_findings", flt.has_findings), ("has_errors", flt.has_errors)):
        if wanted is not None:
            params.append((key, "true" if wanted else "false"))
    if flt.min_cost is not None:
        params.append(("min_cost", repr(flt.min_cost)))  # the shortest text that reads back exactly
    return params


def search_traces(client: ServerClient, flt: TraceFilter, limit: int, offset: int = 0) -> list[TraceRow]:
    """The trace list narrowed by `flt`, newest first, from `offset` on: the rows `explore_traces.
    search_traces` gives on the file, fetched page after page (a page holds at most TRACES_PAGE_MAX).

    A page shorter than asked for is the last: a filtered page has no total to count against."""
    from workbench.store.explore_traces import TraceRow

    fields = {f.name for f in dataclasses.fields(TraceRow)}
    base = filter_params(flt)
    found: list[TraceRow] = []
    while len(found) < limit:
        want = min(limit - len(found), TRACES_PAGE_MAX)
        page = client.get_json("/traces", [*base, ("limit", str(want)), ("offset", str(offset + len(found)))])
        rows = page["traces"]
        # A newer server may add fields: keep the ones this row type has.
        found += [
            TraceRow(**{**{k: v for k, v in row.items() if k in fields}, "agents": tuple(row["agents"])})
            for row in rows
        ]
        if len(rows) < want:
            break
    return found


def read_trace_steps(client: ServerClient, trace_id: str) -> tuple[str, list[StoredStep]]:
    """(full trace id, every step in time order); `trace_id` may be a unique prefix, the server resolves
    it."""
    full = trace_id
    steps: list[StoredStep] = []
    while True:
        page = client.get_json(f"/traces/{urllib.parse.quote(full, safe='')}/steps", {"offset": len(steps)})
        full = page["trace_id"]
        steps += [_stored_step(row) for row in page["steps"]]
        if not page["steps"] or len(steps) >= page["total"]:
            return full, steps


def _stored_step(row: dict[str, Any]) -> StoredStep:
    seq = int(row.pop("seq"))
    row["kind"] = StepKind(row["kind"])
    return StoredStep(seq=seq, step=Step(**row))
