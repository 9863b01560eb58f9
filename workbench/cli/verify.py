"""`workbench verify`: check an audit bundle offline, with nothing but the bundle (and a pinned key).

Exit 0 only when everything holds and the signer is pinned, so a script or CI step can rely on the
status alone: a forger can re-sign a bundle with a key of their own, so a bundle that merely agrees with
itself is not trusted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from workbench.cli.render import clean
from workbench.errors import WorkbenchError

# `workbench verify` exit codes (README): problems found, and a bundle that holds together but whose
# signer nobody pinned (a forger's re-signed bundle looks exactly like that).
EXIT_PROBLEMS = 1
EXIT_UNPINNED = 3


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
    and consistency proof, every finding, annotation and probe result against its ledger entry, the
    external checkpoint it carries, every redaction record, every span line against its sealed bytes,
    every step re-derived from its span, every finding's evidence. Exit 0 only when everything holds and
    the signer is pinned; 1 on problems; 3 when the bundle holds together but no key was pinned (--pubkey)
    and --trust-bundle-key was not given."""
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
    parts = {"crypto": "cryptographic checks", "derive": "re-derivation (span lines, steps)"}
    timing = ", ".join(f"{parts.get(part, part)} {sec:.2f} s" for part, sec in result.seconds.items())
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
            click.echo(clean(f"  {p}"), err=True)
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
