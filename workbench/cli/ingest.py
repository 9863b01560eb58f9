"""`workbench ingest`: load OTLP files (the work is in `loading.py`, imported when the command runs, so
that `workbench --help` does not pay for protobuf, the collectors and DuckDB)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from workbench.cli.common import settings as settings_of
from workbench.cli.render import clean


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.pass_context
def ingest(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Load OTLP trace files (.json, .jsonl, protobuf .pb; also .gz). While `workbench serve` runs, the
    spans are sent to it over OTLP/HTTP; otherwise they are written to the database directly."""
    from workbench.cli.loading import ingest_files
    from workbench.server.client import elsewhere

    settings = settings_of(ctx)
    note = elsewhere(settings)
    if note:  # said before the work, so a long ingest does not hide where it goes
        click.echo(note, err=True)
    totals = ingest_files(settings, files)
    click.echo(
        f"ingested {totals.accepted} spans from {len(files)} file(s)"
        + (f", rejected {totals.rejected}" if totals.rejected else "")
        + (f" via {totals.via}" if totals.via else f" into {settings.db_path}" if note else "")
    )
    if totals.findings is not None:
        click.echo(f"findings: {totals.findings} (workbench findings)")
    if totals.findings_error:
        click.echo(clean(f"findings not computed: {totals.findings_error}"), err=True)
    for error in totals.errors[:20]:
        click.echo(clean(f"  rejected: {error}"), err=True)
    if totals.rejected and not totals.accepted:
        sys.exit(1)
