"""`workbench serve`: run the one process that owns the database (workbench/server/app.py)."""

from __future__ import annotations

from typing import Any

import click

from workbench.cli.common import lake_options, setting_option
from workbench.cli.common import settings as settings_of
from workbench.errors import DatabaseBusy


@click.command()
@setting_option("host", "--host", help="Address to bind [127.0.0.1].")
@setting_option("http_port", "--http-port", type=int, help="OTLP/HTTP port [4318].")
@setting_option("grpc_port", "--grpc-port", type=int, help="OTLP/gRPC port [4317].")
@setting_option("ui_port", "--ui-port", type=int, help="Workbench UI port [8501]; 0 picks a free one.")
@setting_option("auth_token", "--auth-token", help="Require this bearer token on every request.")
@lake_options
@click.pass_context
def serve(ctx: click.Context, **options: Any) -> None:
    """Run the collectors (OTLP/HTTP and OTLP/gRPC) as the one process that owns the database."""
    from workbench.server.app import serve as run_server
    from workbench.server.discovery import running_server

    settings = settings_of(ctx).replace(**options)
    other = running_server(settings)
    if other is not None:
        raise DatabaseBusy(f"workbench serve is already running for this data directory (PID {other.pid})")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        run_server(settings)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a person stops the server: the shutdown already ran, exit 0
