"""`workbench traces`: the trace list and its search, through the running server's read API or from the file.

The options are the Traces page's filter (`explore_traces.TraceFilter`), one option per field, so an
investigator on a terminal narrows the list exactly as the page does. Both roads end in the same query
(`explore_traces.search_traces`): the server runs it on its own store when it holds the database (the
API's `GET /api/v1/traces` takes one query parameter per field), and this command runs it on the file
read-only otherwise; the rows are the same either way (`tests/test_cli_traces_search.py`).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from typing import TYPE_CHECKING

import click

from workbench.cli import render
from workbench.cli.common import Instant, Usd, open_read_only, utf8_text
from workbench.cli.common import settings as settings_of

if TYPE_CHECKING:
    from workbench.store.explore_traces import TraceFilter

# The read API's bound on an offset (api.py): one range for both roads, so a number the server would
# refuse is refused here first, as a usage error, and the file's query never sees one past 64 bits.
PAGE_MAX = 2**62


@click.command()
@click.option(
    "--search",
    "text",
    metavar="TEXT",
    default="",
    callback=utf8_text,
    help="Only traces with a step whose name, input, output, reasoning, tool arguments or tool result "
    "contains TEXT (case-insensitive substring).",
)
@click.option("--errors/--no-errors", default=None, help="Only traces with (without) an error step.")
@click.option("--findings/--no-findings", default=None, help="Only traces with (without) findings.")
@click.option(
    "--service",
    "services",
    metavar="NAME",
    multiple=True,
    callback=utf8_text,
    help="Only traces with a step from this service; repeatable (any of them).",
)
@click.option(
    "--agent",
    "agents",
    metavar="NAME",
    multiple=True,
    callback=utf8_text,
    help="Only traces with a step by this agent; repeatable (any of them).",
)
@click.option(
    "--since",
    type=Instant(),
    help="Only traces that started at or after TIME (ISO 8601, UTC without an offset; or ns).",
)
@click.option("--until", type=Instant(), help="Only traces that started before TIME (same forms).")
@click.option("--min-cost", type=Usd(), help="Only traces whose steps cost at least USD in all.")
@click.option(
    "--limit", type=click.IntRange(1, PAGE_MAX), default=100, show_default=True, help="At most N traces."
)
@click.option(
    "--offset",
    type=click.IntRange(0, PAGE_MAX),
    default=0,
    show_default=True,
    help="Skip the first N matches (the next page: --offset 100).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: the rows as exact JSON.")
@click.pass_context
def traces(
    ctx: click.Context,
    text: str,
    errors: bool | None,
    findings: bool | None,
    services: tuple[str, ...],
    agents: tuple[str, ...],
    since: int | None,
    until: int | None,
    min_cost: float | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List traces, newest first, with step, error, tool, token, cost and finding counts; the options
    narrow the list as the Traces page does (all of them must hold)."""
    from workbench.server.client import connect, search_traces
    from workbench.store import explore_traces

    if since is not None and until is not None and since >= until:
        raise click.BadParameter(
            f"{render.iso(until)} is not after --since {render.iso(since)}: the window would be empty",
            ctx,
            param_hint="'--until'",
        )
    flt = explore_traces.TraceFilter(
        text=text,
        services=services,
        agents=agents,
        start_ns=since,
        end_ns=until,
        has_findings=findings,
        has_errors=errors,
        min_cost=min_cost,
    )
    settings = settings_of(ctx)
    client = connect(settings)  # through the server's read API while one holds the database
    if client is not None:
        with client:
            found = search_traces(client, flt, limit, offset)
    else:
        with open_read_only(settings) as store:
            found = explore_traces.search_traces(store, flt, limit, offset)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(t) for t in found], indent=2))
        return
    asked = described(flt, offset)
    click.echo(
        render.traces_table(
            found, searched=bool(text.strip()), empty=f"no trace matches {asked}" if asked else None
        )
    )


def described(flt: TraceFilter, offset: int) -> str:
    """The options that narrowed an empty answer, as a command line would give them, so the message
    says what matched nothing (quoted for a shell; the table's renderer escapes control characters)."""
    words: list[str] = []
    if flt.text.strip():
        words += ["--search", flt.text]
    for flag, names in (("--service", flt.services), ("--agent", flt.agents)):
        for name in names:
            words += [flag, name]
    for flag, wanted in (("errors", flt.has_errors), ("findings", flt.has_findings)):
        if wanted is not None:
            words.append(f"--{flag}" if wanted else f"--no-{flag}")
    for flag, when in (("--since", flt.start_ns), ("--until", flt.end_ns)):
        if when is not None:
            words += [flag, render.iso(when)]
    if flt.min_cost is not None:
        words += ["--min-cost", repr(flt.min_cost)]
    if offset:
        words += ["--offset", str(offset)]
    return shlex.join(words)
