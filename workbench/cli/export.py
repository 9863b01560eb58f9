"""`workbench export`: write a signed audit bundle; the CLI face of workbench/export (floor 3, thin).

An export reads the database and its ledger as one consistent snapshot, so it needs the file itself:
while a server holds it, the command says how to stop the server (the UI offers export instead).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from workbench.cli.common import check_output, open_read_only
from workbench.cli.common import settings as settings_of
from workbench.errors import DatabaseBusy, WorkbenchError


def _time_ns(value: str | None, option: str) -> int | None:
    """ISO 8601 (UTC when no offset is given) or integer nanoseconds since the epoch."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WorkbenchError(
            f"{option} {value!r}: expected ISO 8601 (2025-11-05T10:00:00Z) or nanoseconds"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000_000)


@click.command("export")
@click.option("--trace", "traces", multiple=True, help="Trace id (a unique prefix is enough); repeatable.")
@click.option("--since", help="Only spans starting at or after this time (ISO 8601 or ns).")
@click.option("--until", help="Only spans starting before this time (ISO 8601 or ns).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Bundle directory, or FILE.zip [DATA_DIR/exports/bundle-<time>].",
)
@click.option(
    "--redact",
    "redact",
    envvar="WORKBENCH_EXPORT_REDACT_KINDS",
    show_envvar=True,
    help="Kinds to mask: secret,card,iban,email,phone,ip, all or none [all].",
)
@click.option("--no-redact", is_flag=True, help="Export values as they are (no masking).")
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A signed tree head file or checkpoint log kept outside the data directory; the bundle carries "
    "its latest head and proves it extends it [WORKBENCH_CHECKPOINT_LOG].",
)
@click.pass_context
def export_cmd(
    ctx: click.Context,
    traces: tuple[str, ...],
    since: str | None,
    until: str | None,
    out: Path | None,
    redact: str | None,
    no_redact: bool,
    checkpoint: Path | None,
) -> None:
    """Write a signed audit bundle (spans, steps, findings, probe results, annotations, proofs, report)
    for some traces or a time range; everything when none is given."""
    from collectors.integrity import step_deriver, stored_columns_check
    from collectors.normalize import NORMALIZER_VERSION
    from workbench.export import ExportOptions, export_bundle
    from workbench.export.redact import parse_kinds
    from workbench.store import queries

    settings = settings_of(ctx)
    try:
        kinds = (
            () if no_redact else parse_kinds(redact if redact is not None else settings.export_redact_kinds)
        )
    except ValueError as exc:
        raise WorkbenchError(f"--redact: {exc}") from exc
    if out is None:
        out = settings.data_dir / "exports" / f"bundle-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    check_output(out, "--out")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        opened = open_read_only(settings)
    except DatabaseBusy as exc:
        raise DatabaseBusy(
            f"{exc}. An export reads the database and its ledger as one consistent snapshot: stop the "
            "server (Ctrl-C or SIGTERM; everything acknowledged is kept), run `workbench export`, then start "
            "it again"
        ) from exc
    with opened as store:
        trace_ids = [queries.resolve_trace_id(store, t) for t in traces]
        result = export_bundle(
            store,
            settings.data_dir,
            ExportOptions(
                out=out,
                trace_ids=trace_ids,
                since_ns=_time_ns(since, "--since"),
                until_ns=_time_ns(until, "--until"),
                redact_kinds=kinds,
                row_check=stored_columns_check(),
                derive=step_deriver(store),
                normalizer_version=NORMALIZER_VERSION,
                checkpoint=checkpoint or _existing(settings.checkpoint_log),
                progress=True,
            ),
        )
    c = result.counts
    click.echo(
        f"wrote {result.path}: {c['spans']} spans in {c['traces']} trace(s), {c['findings']} findings, "
        f"{c['probe_runs']} probe runs, {c['annotations']} annotations; {c['redactions']} value(s) redacted"
    )
    from workbench.export import signing

    click.echo(f"signed with key {signing.FINGERPRINT_PREFIX}{result.key_id}")
    click.echo(f"public key (give it to the auditor): {signing.public_key_path(settings.data_dir)}")
    if result.reveal_path:
        click.echo(f"reveal file (salt and originals; keep it private): {result.reveal_path}")
    click.echo(
        f"check it with: workbench verify {result.path} --pubkey {signing.FINGERPRINT_PREFIX}{result.key_id}"
    )


def _existing(path: Path | None) -> Path | None:
    """The settings' checkpoint log, when serve has written one (a fresh data directory has none yet)."""
    return path if path is not None and path.is_file() else None
