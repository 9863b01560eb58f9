"""`workbench export` and `workbench verify`: the CLI face of workbench/export (floor 3, thin)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from workbench.errors import DatabaseBusy, WorkbenchError

# `workbench verify` exit codes (README): problems found, and a bundle that holds together but whose
# signer nobody pinned (a forger's re-signed bundle looks exactly like that).
EXIT_PROBLEMS = 1
EXIT_UNPINNED = 3


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
    from collectors.normalize import NORMALIZER_VERSION
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
                normalizer_version=NORMALIZER_VERSION,
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


@click.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--pubkey",
    envvar="WORKBENCH_VERIFY_PUBKEY",
    show_envvar=True,
    help="The signer you trust: a public key file (PEM or hex) or its sha256:... fingerprint.",
)
@click.option(
    "--trust-bundle-key",
    is_flag=True,
    help=f"Accept the bundle's own key unpinned (else exit {EXIT_UNPINNED}: anyone can re-sign a bundle).",
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
def verify_cmd(
    bundle: Path,
    pubkey: str | None,
    trust_bundle_key: bool,
    reveal: Path | None,
    jobs: int,
    as_json: bool,
) -> None:
    """Check an audit bundle offline: signature, every file hash, every span digest, chain link, inclusion
    and consistency proof, every redaction record, every step re-derived from its span, every finding's
    evidence. Exit 0 only when everything holds and the signer is pinned; 1 on problems; 3 when the
    bundle holds together but no key was pinned (--pubkey) and --trust-bundle-key was not given."""
    from collectors.normalize import NORMALIZER_VERSION, step_from_canonical
    from workbench.export import signing, verify_bundle

    pin = None
    if pubkey is not None:
        pin = signing.parse_pin(
            pubkey if signing.is_fingerprint(pubkey) else _read_key_file(pubkey), f"--pubkey {pubkey}"
        )
    result = verify_bundle(
        bundle,
        pubkey=pin,
        reveal=reveal.read_bytes() if reveal else None,
        jobs=jobs,
        derive=step_from_canonical,
        normalizer_version=NORMALIZER_VERSION,
    )
    unpinned = result.ok and not result.pinned and not trust_bundle_key
    code = 0 if result.ok and not unpinned else EXIT_PROBLEMS if not result.ok else EXIT_UNPINNED
    fingerprint = f"{signing.FINGERPRINT_PREFIX}{result.key_id}" if result.key_id else None
    timing = ", ".join(f"{part} {sec:.2f} s" for part, sec in result.seconds.items())
    if as_json:
        out: dict[str, Any] = {
            "ok": code == 0,
            "reason": None if code == 0 else "unpinned" if unpinned else "problems",
            "bundle_id": result.bundle_id,
            "key_id": result.key_id,
            "fingerprint": fingerprint,
            "pinned": result.pinned,
            "seconds": result.seconds,
            "notes": result.notes,
            "checked": result.checked,
            "problems": [
                {"file": p.file, "line": p.line, "span_id": p.span_id, "problem": p.what}
                for p in result.problems
            ],
            "more_problems": result.dropped,
        }
        click.echo(json.dumps(out, indent=2))
    elif unpinned:
        click.echo(
            f"bundle NOT TRUSTED: it holds together, but it is signed by key {fingerprint}, which you "
            "did not pin; anyone can re-sign a bundle with their own key. Pass --pubkey with the exporter's "
            "signing.pub.pem or its sha256: fingerprint (or --trust-bundle-key to accept it as is)",
            err=True,
        )
    elif result.ok:
        click.echo(
            f"bundle OK: {result.checked.get('spans', 0)} spans, {result.checked.get('steps', 0)} steps "
            f"re-derived, {result.checked.get('evidence', 0)} findings' evidence, "
            f"{result.checked.get('files', 0)} files, signed by key {fingerprint}"
            + (" (pinned)" if result.pinned else " (NOT pinned: --trust-bundle-key)")
            + (f"; {timing}" if timing else "")
        )
    else:
        click.echo(f"bundle FAILS verification: {len(result.problems) + result.dropped} problem(s)", err=True)
        for p in result.problems:
            click.echo(f"  {p}", err=True)
        if result.dropped:
            click.echo(f"  ... and {result.dropped} more", err=True)
    if timing and not as_json and not (result.ok and not unpinned):
        click.echo(f"  ({timing})", err=True)
    sys.exit(code)


def _read_key_file(value: str) -> bytes:
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise WorkbenchError(
            f"--pubkey {value!r}: neither a readable key file nor a sha256:<64 hex> fingerprint ({exc})"
        ) from exc


def register(cli: click.Group) -> None:
    cli.add_command(export_cmd)
    cli.add_command(verify_cmd)
