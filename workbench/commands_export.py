"""`workbench export` and `workbench verify`: the CLI face of workbench/export (floor 3, thin)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

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
@click.pass_context
def export_cmd(
    ctx: click.Context,
    traces: tuple[str, ...],
    since: str | None,
    until: str | None,
    out: Path | None,
    redact: str | None,
    no_redact: bool,
) -> None:
    """Write a signed audit bundle (spans, steps, findings, probe results, annotations, proofs, report)
    for some traces or a time range; everything when none is given."""
    from collectors.integrity import stored_columns_check
    from workbench.cli import _open_read_only, _settings
    from workbench.export import ExportOptions, export_bundle
    from workbench.export.redact import parse_kinds
    from workbench.store import queries

    settings = _settings(ctx)
    try:
        kinds = (
            () if no_redact else parse_kinds(redact if redact is not None else settings.export_redact_kinds)
        )
    except ValueError as exc:
        raise WorkbenchError(f"--redact: {exc}") from exc
    if out is None:
        out = settings.data_dir / "exports" / f"bundle-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        opened = _open_read_only(settings)
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
                progress=True,
            ),
        )
    c = result.counts
    click.echo(
        f"wrote {result.path}: {c['spans']} spans in {c['traces']} trace(s), {c['findings']} findings, "
        f"{c['probe_runs']} probe runs, {c['annotations']} annotations; {c['redactions']} value(s) redacted"
    )
    click.echo(f"signed with key {result.key_id}")
    if result.reveal_path:
        click.echo(f"reveal file (salt and originals; keep it private): {result.reveal_path}")
    click.echo(f"check it with: workbench verify {result.path}")


@click.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--pubkey",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The signer's public key you trust (PEM or hex); without it, the bundle's own key is used.",
)
@click.option(
    "--reveal",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The exporter's reveal file: also check every redaction against its original.",
)
@click.option(
    "--jobs",
    type=int,
    default=0,
    show_default=True,
    help="Worker processes re-encoding span lines; 0: one per CPU from 20,000 spans, else none.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_cmd(bundle: Path, pubkey: Path | None, reveal: Path | None, jobs: int, as_json: bool) -> None:
    """Check an audit bundle offline: signature, every file hash, every span digest, chain link, inclusion
    and consistency proof, every redaction record. Exit 0 only when everything holds."""
    from workbench.export import verify_bundle

    result = verify_bundle(
        bundle,
        pubkey=pubkey.read_bytes() if pubkey else None,
        reveal=reveal.read_bytes() if reveal else None,
        jobs=jobs,
    )
    if as_json:
        out: dict[str, Any] = {
            "ok": result.ok,
            "bundle_id": result.bundle_id,
            "key_id": result.key_id,
            "pinned": pubkey is not None,
            "checked": result.checked,
            "problems": [
                {"file": p.file, "line": p.line, "span_id": p.span_id, "problem": p.what}
                for p in result.problems
            ],
            "more_problems": result.dropped,
        }
        click.echo(json.dumps(out, indent=2))
    elif result.ok:
        click.echo(
            f"bundle OK: {result.checked.get('spans', 0)} spans, {result.checked.get('files', 0)} files, "
            f"signed by key {result.key_id}" + ("" if pubkey else " (not pinned: pass --pubkey to pin it)")
        )
    else:
        click.echo(f"bundle FAILS verification: {len(result.problems) + result.dropped} problem(s)", err=True)
        for p in result.problems:
            click.echo(f"  {p}", err=True)
        if result.dropped:
            click.echo(f"  ... and {result.dropped} more", err=True)
    sys.exit(0 if result.ok else 1)


def register(cli: click.Group) -> None:
    cli.add_command(export_cmd)
    cli.add_command(verify_cmd)
