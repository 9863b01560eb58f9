"""`workbench demo`: a fresh data directory with the sample incidents in it, and the server running.

The samples go in through the same decode/normalize/ledger path as any client, then `workbench serve`
runs in this process as usual. With `live`, the scripted agents also run now, exporting over OTLP/HTTP
to that server as an instrumented agent would, so new traces arrive while it runs.

The data directory is wiped first, so the demo refuses a directory it did not create: pointing
`--data-dir` at real data must not delete it. The ingest and server modules are imported when the demo
runs, not when the CLI starts.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from workbench.cli.common import setting_option
from workbench.cli.common import settings as settings_of
from workbench.errors import DatabaseBusy, WorkbenchError
from workbench.server.discovery import ServerInfo, running_server
from workbench.settings import Settings

DEFAULT_DEMO_DIR = Path(".workbench") / "demo"
# Written into a directory the demo created, so a later run knows it may wipe it.
MARKER = ".workbench-demo"

Echo = Callable[[str], None]


def demo_settings(settings: Settings, data_dir: Path | None) -> Settings:
    """The demo's own data directory (default .workbench/demo) and a database inside it."""
    return dataclasses.replace(settings, data_dir=data_dir or DEFAULT_DEMO_DIR, db=None)


def samples() -> ModuleType:
    """The sample catalog (imported late: the demo is the only command that needs it)."""
    import sample_traces.catalog as catalog

    return catalog


def fresh_data_dir(settings: Settings) -> None:
    """Empty the demo's data directory, or make it; refuse one that holds anything the demo did not put."""
    data_dir = settings.data_dir
    other = running_server(settings)
    if other is not None:
        raise DatabaseBusy(f"workbench serve (PID {other.pid}) is running on {data_dir}; stop it first")
    if data_dir.exists():
        if not data_dir.is_dir():
            raise WorkbenchError(f"{data_dir} is not a directory")
        if any(data_dir.iterdir()) and not (data_dir / MARKER).exists():
            raise WorkbenchError(
                f"{data_dir} is not empty and was not created by `workbench demo`; the demo starts from an "
                "empty directory, so give it another --data-dir"
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).write_text("created by `workbench demo`; the next demo run deletes this folder\n")


def _wait_until_serving(settings: Settings, stop: threading.Event, timeout: float = 60) -> ServerInfo | None:
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        info = running_server(settings)
        if info is not None:
            from workbench.server.client import ServerClient

            with ServerClient(info, settings, timeout=2) as client:
                if client.healthy():
                    return info
        stop.wait(0.1)
    return None


def _cli(settings: Settings) -> str:
    return f"workbench --data-dir {settings.data_dir}"


def hints(settings: Settings, info: ServerInfo) -> list[str]:
    """What to try, once the server is up: the UI's deep link to each incident's key step first."""
    catalog = samples()
    lines = [""]
    if info.ui_url:
        lines += [f"The workbench is running. Open {info.ui_url} or go straight to an incident:"]
        for sample in catalog.SAMPLES:
            lines.append(f"  {info.ui_url}replay?trace={sample.trace_id()}   # {sample.title}")
        lines.append("")
    lines += [
        f"  send OTLP/HTTP   {info.http_url}/v1/traces   (OTEL_EXPORTER_OTLP_ENDPOINT={info.http_url})",
        f"  send OTLP/gRPC   {info.host}:{info.grpc_port}",
        "",
        "In another terminal (read through the running server):",
    ]
    for sample in catalog.SAMPLES[:2]:
        lines.append(f"  {_cli(settings)} replay {sample.trace_id()[:12]}   # {sample.title}")
    lines += [f"  {_cli(settings)} traces", "Stop with Ctrl-C.", ""]
    return lines


def _announce(settings: Settings, live: bool, pace: float, stop: threading.Event, echo: Echo) -> None:
    info = _wait_until_serving(settings, stop)
    if info is None:
        return
    for line in hints(settings, info):
        echo(line)
    if not live:
        return
    from sample_traces.generate import run_live

    headers = {"Authorization": f"Bearer {settings.auth_token}"} if settings.auth_token else None
    try:
        run_live(
            info.http_url,
            pace=pace,
            headers=headers,
            progress=lambda sample: echo(f"live: running the {sample.name} agent against {info.http_url}"),
        )
    except Exception as exc:  # noqa: BLE001 (a failed live run must not take the server down)
        echo(f"live: stopped: {exc}")
        return
    echo("live: every scripted agent has run; their traces are in the database beside the samples")


def run_demo(settings: Settings, *, live: bool = False, pace: float = 0.1, echo: Echo = print) -> None:
    """Fresh directory, samples ingested, server in the foreground until Ctrl-C; then the trace list."""
    from workbench.cli.loading import ingest_files
    from workbench.server.app import serve

    catalog = samples()
    fresh_data_dir(settings)
    files = [sample.path for sample in catalog.SAMPLES]
    totals = ingest_files(settings, files)
    if totals.rejected:
        raise WorkbenchError(f"the sample traces did not load cleanly: {'; '.join(totals.errors[:3])}")
    echo(f"demo data in {settings.data_dir}: {totals.accepted} spans from {len(files)} sample incidents")
    stop = threading.Event()
    announcer = threading.Thread(
        target=_announce, args=(settings, live, pace, stop, echo), name="demo-announcer", daemon=True
    )
    announcer.start()
    try:
        serve(settings)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a demo ends; the server has shut down cleanly by now
    except OSError as exc:  # a port already taken, most likely
        raise WorkbenchError(f"{exc}; choose other ports with --http-port / --grpc-port") from exc
    finally:
        stop.set()
    announcer.join(timeout=1)
    _print_traces(settings, echo)


def _print_traces(settings: Settings, echo: Echo) -> None:
    from workbench.cli.render import traces_table
    from workbench.store import queries
    from workbench.store.connection import Store

    try:
        with Store(settings.db_path, read_only=True) as store:
            echo(traces_table(queries.list_traces(store)))
    except WorkbenchError as exc:
        echo(f"(could not list the traces: {exc})")
        return
    echo(f"\nReplay one: {_cli(settings)} replay TRACE_ID")


@click.command()
@click.option("--data-dir", "demo_dir", type=click.Path(path_type=Path), help="Wiped first [.workbench/demo]")
@click.option("--live", is_flag=True, help="Also run the scripted agents now, over OTLP/HTTP to the server.")
@click.option("--pace", type=float, default=0.1, show_default=True, help="Live: real s per scripted s.")
@setting_option("http_port", "--http-port", type=int, help="OTLP/HTTP port [4318].")
@setting_option("grpc_port", "--grpc-port", type=int, help="OTLP/gRPC port [4317].")
@click.pass_context
def demo(ctx: click.Context, demo_dir: Path | None, live: bool, pace: float, **options: Any) -> None:
    """Start over in a demo data directory (wiped first), load the sample incidents, and serve;
    `--live` also runs the scripted agents against the server so their traces arrive while it runs."""
    given = demo_dir or ctx.find_root().params.get("data_dir")
    run_demo(demo_settings(settings_of(ctx).replace(**options), given), live=live, pace=pace, echo=click.echo)
