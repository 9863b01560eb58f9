"""`workbench rescan`: recompute findings with the rules in force, after the rules file changed.

It rewrites the findings table, so it needs the database for writing: while a server holds it, the
server's own scanner keeps findings current and this command says so.
"""

from __future__ import annotations

import click

from workbench.cli.common import open_for_writing
from workbench.cli.common import settings as settings_of
from workbench.cli.render import clean
from workbench.errors import WorkbenchError


@click.command()
@click.option("--trace", "trace_id", help="Only this trace (a unique prefix is enough); default: all.")
@click.pass_context
def rescan(ctx: click.Context, trace_id: str | None) -> None:
    """Recompute findings with the current rules (after editing the rules file)."""
    from workbench.policies.engine import engine_from_settings
    from workbench.policies.engine import rescan as run_rescan
    from workbench.store import queries

    settings = settings_of(ctx)
    engine = engine_from_settings(settings)  # a bad rules file fails before the database is opened
    with open_for_writing(settings, "rescan") as store:
        full = queries.resolve_trace_id(store, trace_id) if trace_id else None
        report = run_rescan(store, engine, full)
    for error in report.errors:
        click.echo(f"  {clean(error)}", err=True)
    click.echo(f"rescanned {report.traces} trace(s): {report.findings} finding(s)")
    if report.errors:
        raise WorkbenchError(f"{len(report.errors)} rule failure(s); the other rules' findings were stored")
