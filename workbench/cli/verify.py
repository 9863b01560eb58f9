"""`workbench verify`: check an audit bundle offline, with nothing but the bundle (and a pinned key).

Exit 0 only when everything holds, so a script or CI step can rely on the status alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from workbench.cli.render import clean


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
            click.echo(clean(f"  {p}"), err=True)
        if result.dropped:
            click.echo(f"  ... and {result.dropped} more", err=True)
    sys.exit(0 if result.ok else 1)
