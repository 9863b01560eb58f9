"""`workbench traces`: the trace list, through the running server's read API or from the file."""

from __future__ import annotations

import dataclasses
import json

import click

from workbench.cli import render
from workbench.cli.common import open_read_only
from workbench.cli.common import settings as settings_of


@click.command()
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def traces(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List traces, newest first, with step, error, tool and token counts."""
    from workbench.server.client import connect, read_traces
    from workbench.store import queries

    settings = settings_of(ctx)
    client = connect(settings)  # through the server's read API while one holds the database
    if client is not None:
        with client:
            found = read_traces(client, limit)
    else:
        with open_read_only(settings) as store:
            found = queries.list_traces(store, limit=limit)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(t) for t in found], indent=2))
    else:
        click.echo(render.traces_table(found))
