"""`workbench serve`: one process owning the database, with the OTLP receivers (and later the UI) in it.

DuckDB allows one read-write process per file, so everything that writes lives here: the HTTP receiver
on Uvicorn's event loop, the gRPC receiver on its thread pool, and the single writer thread of the
ingest pipeline. `server.json` in the data directory (`discovery.py`) tells other CLI commands that a server
holds the database and where to send data instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from typing import Protocol

import uvicorn

from collectors.pipeline import IngestPipeline
from collectors.receiver_grpc import start_grpc_server
from collectors.receiver_http import create_app
from collectors.workers import DecodePool
from workbench.server.discovery import ServerInfo, running_server, server_file
from workbench.settings import Settings
from workbench.store.connection import Store
from workbench.store.lake import open_store

log = logging.getLogger(__name__)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} for OTLP/HTTP: {exc.strerror}") from exc
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def _graceful_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def duckdb_threads(settings: Settings, detected: int) -> int:
    """DuckDB's threads in the server: `settings.duckdb_threads`, or (0) the cores DuckDB detected less
    the decode workers, at least one.

    Why not DuckDB's default of one per core: the decode workers already keep a core busy, and a group
    commit run on two threads beside them cost 1.8x the CPU of the same commit on one (measured on 2
    cores, `benchmarks/RESULTS.md`, "Fewer bytes per span"). Each query still runs on its caller's
    thread, so readers and the writer still run concurrently; only a large scan on an idle server
    loses speed.
    """
    if settings.duckdb_threads > 0:
        return settings.duckdb_threads
    return max(1, detected - max(0, settings.decode_workers))


def _warm_up() -> None:
    """Import now what the first batch would otherwise import while clients wait for their 200.

    pyarrow imports pandas lazily on its first conversion from Python lists (about a second here), and
    the normalizer's modules load on first use.
    """
    import pyarrow as pa

    from collectors.normalize import normalize  # noqa: F401

    pa.array(["warm"])


class Service(Protocol):
    """Something that lives inside `workbench serve` beside the receivers and shares its Store: the
    findings scanner, the probe worker, the UI. Started after the store is open, stopped (in reverse
    order) before it closes."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


def build_services(settings: Settings, store: Store, pipeline: IngestPipeline) -> list[Service]:
    """The in-process services of `workbench serve`, in start order. Heavy imports stay inside."""
    services: list[Service] = []
    # On a lake every node runs the scanner and the probe worker too: each trace is scanned, and each
    # queued probe run is run, under its lease in the catalog, so exactly one node does it at a time.
    from workbench.policies.service import findings_service  # findings kept current after each commit

    scanner = findings_service(settings, store, pipeline)
    if settings.findings_otlp_endpoint:  # each new finding out as an OTLP log record (before the scanner
        # starts, so findings of its catch-up count as new; stopped after it, so its last ones leave)
        from workbench.policies.finding_exporter import FindingExporter

        exporter = FindingExporter(store, settings.findings_otlp_endpoint)
        scanner.add_scan_listener(exporter.on_scan)
        services.append(exporter)
    services.append(scanner)
    # The trace search's full-text side index, kept in step after each commit. It is a file beside the
    # DuckDB file; a lake has no such file and other nodes' spans never pass this process, so lake
    # nodes search by the exact scan (the index is optional by design).
    if settings.search_index and not store.is_lake:
        from workbench.store.search_indexer import SearchIndexer

        services.append(SearchIndexer(store, pipeline))
    from workbench.ui.service import UIService  # the Streamlit UI, on settings.ui_port

    services.append(UIService(settings, store))
    from probes.worker import ProbeWorker  # queued probe runs; the model loads on the first job

    services.append(ProbeWorker(settings, store))
    if settings.checkpoint_log is not None and not store.is_lake:  # signed tree heads that leave the database
        from workbench.export.signing import load_or_create_key
        from workbench.store.checkpoint_log import CheckpointLogService

        key = load_or_create_key(settings.data_dir)
        services.append(CheckpointLogService(store, key, settings.checkpoint_log, settings.checkpoint_every))
    if store.is_lake:  # every node's tree head in one signed global root in the lake, every CHECKPOINT_EVERY
        from workbench.export.signing import load_or_create_key
        from workbench.store.lake_checkpoint import GlobalCheckpointService

        services.append(
            GlobalCheckpointService(store, load_or_create_key(settings.data_dir), settings.checkpoint_every)
        )
        if settings.lake and settings.lake_compact_every > 0:  # few Parquet files, one node at a time
            from workbench.store.lake_compact import LakeCompactionService

            services.append(
                LakeCompactionService(
                    store, settings.lake, settings.lake_compact_every, settings.lake_snapshot_keep
                )
            )
    return services


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; on the way out, commit what is queued and write a ledger checkpoint."""
    # Uvicorn handles SIGTERM by stopping the HTTP server, then re-raises it under the handler that was
    # installed before it started. Under the default handler that kills the process before the
    # `finally` below could stop gRPC, drain the queue, checkpoint and close the database; this one
    # turns it into an exception that runs the `finally` and exits 0.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _graceful_sigterm)
    store = open_store(settings)  # the DuckDB file, or the lake as one of its nodes
    cur = store.cursor()
    (detected,) = cur.execute("SELECT current_setting('threads')").fetchone() or (1,)
    cur.execute(f"SET threads = {duckdb_threads(settings, int(detected))}")
    cur.close()
    _warm_up()
    pipeline = IngestPipeline(
        store,
        queue_max_spans=settings.queue_max_spans,
        commit_max_spans=settings.commit_max_spans,
        checkpoint_interval=settings.checkpoint_interval,
    )
    grpc_server = None
    decode_pool = None
    started: list[Service] = []
    info_path = server_file(settings)
    try:
        for service in build_services(settings, store, pipeline):
            service.start()
            started.append(service)
        if settings.decode_workers > 0:
            decode_pool = DecodePool(settings.decode_workers, settings)
        http_sock = _bind(settings.host, settings.http_port)
        grpc_server, grpc_port = start_grpc_server(pipeline, settings, decode_pool)
        info = ServerInfo(
            pid=os.getpid(),
            host=settings.host,
            http_port=http_sock.getsockname()[1],
            grpc_port=grpc_port,
            db=str(settings.db_path.resolve()),
            ui_url=next((str(s.url) for s in started if getattr(s, "url", None)), ""),  # type: ignore[attr-defined]
        )
        info_path.write_text(json.dumps(info.__dict__))
        if store.is_lake:  # the catalog string may hold a password: name the node, not the DSN
            print(f"lake node       {store.node_id} (index {store.node_index})", flush=True)
        else:
            print(f"database        {info.db}", flush=True)
        print(f"OTLP/HTTP       {info.http_url}/v1/traces  {info.http_url}/v1/logs", flush=True)
        print(f"OTLP/gRPC       {info.host}:{info.grpc_port}", flush=True)
        for service in started:  # services that listen say where (the UI)
            if getattr(service, "url", None):
                print(f"{service.name.upper():<16}{service.url}", flush=True)  # type: ignore[attr-defined]
        print("ready", flush=True)
        app = create_app(pipeline, settings, decode_pool)
        from workbench.server.api import api_mount  # the read API (GET /api/v1/...), same port and token

        app.router.routes.append(api_mount(store, settings))
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=10,
            # Bodies are read whole before decoding: without a cap on requests in flight, memory would
            # grow with the number of clients, not with the limits.
            limit_concurrency=settings.max_concurrent_requests,
        )
        uvicorn.Server(config).run(sockets=[http_sock])
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=5).wait(10)
        if decode_pool is not None:
            decode_pool.close()
        pipeline.close()  # commits what is queued; listeners still hear of it
        for service in reversed(started):
            try:
                service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)
        store.close()
        with contextlib.suppress(OSError):
            if running_server(settings) is None or json.loads(info_path.read_text())["pid"] == os.getpid():
                info_path.unlink()
        print("stopped", file=sys.stderr, flush=True)
