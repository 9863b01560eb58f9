"""`workbench replay`: one trace step by step, through the running server's read API or from the file."""

from __future__ import annotations

import dataclasses
import json

import click

from workbench.cli import render
from workbench.cli.common import open_read_only
from workbench.cli.common import settings as settings_of


@click.command()
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: every step field.")
@click.pass_context
def replay(ctx: click.Context, trace_id: str, as_json: bool) -> None:
    """Replay one trace step by step: kind, actor, tool and arguments, reasoning, tokens, errors.
    TRACE_ID may be a unique prefix."""
    from workbench.server.client import connect, read_trace_steps
    from workbench.store import queries

    settings = settings_of(ctx)
    client = connect(settings)  # through the server's read API while one holds the database
    if client is not None:
        with client:
            full, steps = read_trace_steps(client, trace_id)
    else:
        with open_read_only(settings) as store:
            full = queries.resolve_trace_id(store, trace_id)
            steps = queries.trace_steps(store, full)
    if as_json:
        rows = [{"seq": s.seq, **dataclasses.asdict(s.step), "kind": str(s.step.kind)} for s in steps]
        click.echo(json.dumps({"trace_id": full, "steps": rows}, indent=2))
    else:
        click.echo(render.replay(full, steps))
