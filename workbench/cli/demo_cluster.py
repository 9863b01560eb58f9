"""`workbench demo-cluster`: a lake of two (or more) ingest nodes on this machine, fed the sample incidents.

Why a command and not a script: it is the shortest honest proof that lake mode works as the README says.
It starts what a real deployment has (a PostgreSQL catalog, `workbench serve --lake` nodes sharing one
data path, a reader that is none of them) with the same code a deployment runs: PostgreSQL through
`server/postgres_local.py`, each node as its own `workbench serve` process, the samples sent over
OTLP/HTTP, the check through `workbench ledger verify`. Every trace's spans are dealt round-robin to the
nodes, so one trace is written by several nodes, as a load balancer without trace affinity would do.

The last line it prints is the verdict (`cluster: N nodes, S spans, all queryable: yes, ledger verify:
ok`), counted from what the reader finds in the lake, not from what the nodes acknowledged. The
directory (default DATA_DIR/cluster) is wiped on each run except PostgreSQL's own files, so it refuses
a directory it did not create.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from workbench.cli.common import settings as settings_of
from workbench.errors import WorkbenchError
from workbench.settings import Settings, env_name

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from workbench.server.discovery import ServerInfo
    from workbench.server.postgres_local import LocalPostgres

MARKER = ".workbench-demo-cluster"
LAKE_DB = "lake"
START_TIMEOUT_S = 240.0  # a node imports DuckDB, the UI and the collectors: slow on a loaded machine
QUERYABLE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
# What the cluster sets for each node; the caller's other WORKBENCH_* settings pass through to them.
_NODE_SETTINGS = ("data_dir", "db", "lake", "data_path", "node_id", "http_port", "grpc_port", "ui_port")

Echo = Callable[[str], None]
SpanKey = tuple[str, str]


@dataclass
class Node:
    """One `workbench serve --lake` child process."""

    name: str
    settings: Settings
    proc: subprocess.Popen[bytes]
    log_path: Path
    info: ServerInfo | None = None

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""


@dataclass
class Cluster:
    """Everything the command started, so that it can stop all of it in order."""

    root: Path
    pg: LocalPostgres | None = None
    dsn: str = ""
    nodes: list[Node] = field(default_factory=list)

    @property
    def data_path(self) -> Path:
        return self.root / "data"

    def reader(self, settings: Settings) -> Settings:
        """A machine that is none of the nodes: it reads the whole lake."""
        return dataclasses.replace(
            settings,
            data_dir=self.root / "reader",
            db=None,
            lake=self.dsn,
            data_path=str(self.data_path),
            node_id="reader",
        )

    def env(self, settings: Settings, node_id: str, data_dir: Path) -> dict[str, str]:
        """A node's (or the reader's) environment: the caller's, with the cluster's own settings."""
        env = {k: v for k, v in os.environ.items() if k not in {env_name(f) for f in _NODE_SETTINGS}}
        env.update(
            {
                env_name("data_dir"): str(data_dir),
                env_name("lake"): self.dsn,
                env_name("data_path"): str(self.data_path),
                env_name("node_id"): node_id,
                env_name("http_port"): "0",
                env_name("grpc_port"): "0",
                env_name("ui_port"): "0",  # several UIs on one machine: free ports, printed below
                "PYTHONUNBUFFERED": "1",
            }
        )
        if settings.auth_token:
            env[env_name("auth_token")] = settings.auth_token
        return env

    def stop(self, echo: Echo) -> None:
        """Nodes first (SIGTERM: each commits what it queued and closes), then PostgreSQL."""
        for node in self.nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            try:
                node.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                echo(f"node {node.name} did not stop in {STOP_TIMEOUT_S:.0f} s; killed")
                node.proc.kill()
                node.proc.wait()
        if self.pg is not None:
            self.pg.stop()


def fresh_root(root: Path) -> None:
    """Empty the cluster's directory but keep PostgreSQL's cluster (initdb is the slow part of a start);
    refuse a non-empty directory this command did not create."""
    if root.exists():
        if not root.is_dir():
            raise WorkbenchError(f"{root} is not a directory")
        if any(root.iterdir()) and not (root / MARKER).exists():
            raise WorkbenchError(
                f"{root} is not empty and was not created by `workbench demo-cluster`; give it another --dir"
            )
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("created by `workbench demo-cluster`; the next run empties this folder\n")
    for name in ("data", "nodes", "reader"):
        shutil.rmtree(root / name, ignore_errors=True)


def start_postgres(cluster: Cluster) -> None:
    """PostgreSQL under DIR/pg, and an empty `lake` database in it (a previous run's is dropped)."""
    from workbench.server import postgres_local

    cluster.pg = postgres_local.start(cluster.root / "pg")
    cluster.pg.psql(f"DROP DATABASE IF EXISTS {LAKE_DB} WITH (FORCE)")
    cluster.dsn = cluster.pg.create_database(LAKE_DB)


def start_nodes(cluster: Cluster, settings: Settings, count: int) -> None:
    """`workbench serve --lake` per node; returns when every one answers its health check. The first node
    starts alone: it creates the lake's catalog tables, and DuckLake's first ATTACH of an empty catalog
    is not safe to race (two nodes both try CREATE TABLE ducklake_metadata; the loser fails)."""
    for i in range(1, count + 1):
        if i == 2:
            cluster.nodes[0].info = _wait_until_serving(cluster.nodes[0])
        name = f"n{i}"
        data_dir = cluster.root / "nodes" / name
        data_dir.mkdir(parents=True)
        log_path = data_dir / "serve.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "workbench.cli", "serve"],
                env=cluster.env(settings, name, data_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches this command only: it stops the nodes in order
            )
        node_settings = dataclasses.replace(cluster.reader(settings), data_dir=data_dir, node_id=name)
        cluster.nodes.append(Node(name, node_settings, proc, log_path))
    for node in cluster.nodes[1:]:
        node.info = _wait_until_serving(node)


def _wait_until_serving(node: Node) -> ServerInfo:
    from workbench.server.client import ServerClient
    from workbench.server.discovery import running_server

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise WorkbenchError(
                f"node {node.name} exited with {node.proc.returncode}:\n{node.log_tail()}".rstrip()
            )
        info = running_server(node.settings)
        if info is not None and info.pid == node.proc.pid:
            with ServerClient(info, node.settings, timeout=5) as client:
                if client.healthy():
                    return info
        time.sleep(0.2)
    raise WorkbenchError(f"node {node.name} did not start in {START_TIMEOUT_S:.0f} s:\n{node.log_tail()}")


def dealt(request: ExportTraceServiceRequest, hands: int, start: int) -> Iterator[ExportTraceServiceRequest]:
    """The request's spans dealt round-robin into `hands` requests (span k to hand (start + k) % hands),
    each span keeping its resource and scope: one trace then arrives in pieces at every node."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    parts = [ExportTraceServiceRequest() for _ in range(hands)]
    k = start
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                out_rs = parts[k % hands].resource_spans.add(schema_url=rs.schema_url)
                out_rs.resource.CopyFrom(rs.resource)
                out_ss = out_rs.scope_spans.add(schema_url=ss.schema_url)
                out_ss.scope.CopyFrom(ss.scope)
                out_ss.spans.append(span)
                k += 1
    yield from parts


def send_samples(cluster: Cluster, files: list[Path]) -> set[SpanKey]:
    """Every sample's spans over OTLP/HTTP, dealt across the nodes; the (trace id, span id) keys sent.
    A node that refuses a span is an error: the demo's samples are known to be clean."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    from collectors.files import read_requests
    from workbench.server.client import ServerClient

    clients = []
    for node in cluster.nodes:
        assert node.info is not None
        clients.append(ServerClient(node.info, node.settings))
    sent: set[SpanKey] = set()
    turn = 0
    try:
        for path in files:
            for where, request, left_out in read_requests(path):
                if left_out:
                    raise WorkbenchError(f"{where}: {left_out[0]}")
                if isinstance(request, ExportLogsServiceRequest):  # a logs document: one node takes it
                    clients[turn % len(clients)].export_logs(request.SerializeToString())
                    turn += 1
                    continue
                assert isinstance(request, ExportTraceServiceRequest)
                for client, part in zip(clients, dealt(request, len(clients), turn), strict=True):
                    if not part.resource_spans:
                        continue
                    answer = ExportTraceServiceResponse.FromString(
                        client.export_traces(part.SerializeToString())
                    )
                    if answer.partial_success.rejected_spans:
                        raise WorkbenchError(
                            f"{client.name} refused spans of {where}: {answer.partial_success}"
                        )
                    for rs in part.resource_spans:
                        for ss in rs.scope_spans:
                            sent.update((s.trace_id.hex(), s.span_id.hex()) for s in ss.spans)
                turn += 1
    finally:
        for client in clients:
            client.close()
    return sent


def queryable(reader: Settings, sent: set[SpanKey], timeout: float = QUERYABLE_TIMEOUT_S) -> int:
    """How many of the sent spans a reader finds in the lake, polled until all are there or `timeout`
    (acknowledged means committed, so they should be there at once; the wait is for the truth)."""
    from workbench.store.lake import open_lake

    deadline = time.monotonic() + timeout
    while True:
        with open_lake(reader, read_only=True) as store:
            rows = store.cursor().execute("SELECT trace_id, span_id FROM spans").fetchall()
        found = len(sent & {(str(t), str(s)) for t, s in rows})
        if found == len(sent) or time.monotonic() >= deadline:
            return found
        time.sleep(1.0)


def ledger_verify(cluster: Cluster, settings: Settings) -> tuple[bool, str]:
    """`workbench ledger verify --json` as the reader runs it: (ok, the first problem when not)."""
    reader_dir = cluster.root / "reader"
    reader_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "ledger", "verify", "--json"],
        env=cluster.env(settings, "reader", reader_dir),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return False, (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    if report.get("ok") and done.returncode == 0:
        return True, ""
    problems = [
        p["problem"]
        for key in ("problems", "step_problems", "entry_problems", "against")
        for p in report.get(key, [])
    ]
    return False, problems[0] if problems else f"exit {done.returncode}"


def verdict(nodes: int, sent: int, found: int, verified: bool) -> str:
    """The command's last line."""
    seen = "yes" if found == sent else f"no ({found} of {sent})"
    checked = "ok" if verified else "FAILED"
    return f"cluster: {nodes} nodes, {sent} spans, all queryable: {seen}, ledger verify: {checked}"


def _wait_for_ctrl_c(cluster: Cluster, echo: Echo) -> None:
    stop = threading.Event()
    while not stop.wait(0.5):
        gone = [n for n in cluster.nodes if n.proc.poll() is not None]
        if gone:
            echo(f"node {gone[0].name} exited with {gone[0].proc.returncode}; stopping the cluster")
            return


def run_cluster(
    settings: Settings,
    root: Path,
    *,
    nodes: int = 2,
    keep_running: bool = False,
    echo: Echo = print,
    err: Echo = print,
) -> bool:
    """Start, feed, check, report; stop everything unless `keep_running` (then on Ctrl-C). True when every
    span is queryable and the ledger verifies."""
    from sample_traces.catalog import SAMPLES

    root = root.resolve()
    fresh_root(root)
    cluster = Cluster(root)
    try:
        start_postgres(cluster)
        err(f"catalog: PostgreSQL under {root / 'pg'}, data path {cluster.data_path}")
        start_nodes(cluster, settings, nodes)
        sent = send_samples(cluster, [s.path for s in SAMPLES])
        found = queryable(cluster.reader(settings), sent)
        verified, problem = ledger_verify(cluster, settings)
        ui = next((n.info.ui_url for n in cluster.nodes if n.info and n.info.ui_url), "")
        for node in cluster.nodes:
            assert node.info is not None
            echo(
                f"node {node.name}: OTLP/HTTP {node.info.http_url}/v1/traces  OTLP/gRPC {node.info.host}:"
                f"{node.info.grpc_port}  UI {node.info.ui_url or '-'}"
            )
        echo(f"catalog: {cluster.dsn}")
        echo(
            f"read the whole lake: WORKBENCH_LAKE='{cluster.dsn}' WORKBENCH_DATA_PATH={cluster.data_path} "
            "workbench traces"
        )
        if ui:
            echo(f"UI: {ui}")
        if problem:
            echo(f"ledger verify: {problem}")
        if keep_running:
            # From here on Ctrl-C is the normal way out, even one that lands before the wait begins
            # (a reader that stops the cluster as soon as it sees the verdict).
            with contextlib.suppress(KeyboardInterrupt):
                echo("Stop with Ctrl-C.")
                echo(verdict(len(cluster.nodes), len(sent), found, verified))
                _wait_for_ctrl_c(cluster, err)
        else:
            echo(verdict(len(cluster.nodes), len(sent), found, verified))
        return found == len(sent) and verified
    finally:
        cluster.stop(err)


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a SIGTERM stops the cluster as Ctrl-C does: nodes, then PostgreSQL


@click.command("demo-cluster")
@click.option("--dir", "root", type=click.Path(path_type=Path), help="Emptied first [DATA_DIR/cluster].")
@click.option("--nodes", type=click.IntRange(2, 9), default=2, show_default=True, help="Ingest nodes.")
@click.option("--keep-running", is_flag=True, help="Stay up after the check until Ctrl-C.")
@click.pass_context
def demo_cluster(ctx: click.Context, root: Path | None, nodes: int, keep_running: bool) -> None:
    """A lake on this machine: PostgreSQL, NODES `workbench serve --lake` nodes, the sample incidents
    dealt across them, a check that a third reader finds every span and that `ledger verify` holds."""
    settings = settings_of(ctx)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)
        # "Stop with Ctrl-C" must hold even where SIGINT came in ignored: a non-interactive shell starts
        # `cmd &` with SIGINT set to SIG_IGN, and Python then never raises KeyboardInterrupt, so the
        # cluster would run until killed (seen under a backgrounded `make test`).
        signal.signal(signal.SIGINT, signal.default_int_handler)
    ok = run_cluster(
        settings,
        root or settings.data_dir / "cluster",
        nodes=nodes,
        keep_running=keep_running,
        echo=click.echo,
        err=lambda line: click.echo(line, err=True),
    )
    ctx.exit(0 if ok else 1)
