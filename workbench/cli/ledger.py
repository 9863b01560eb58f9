"""`workbench ledger verify`: recompute the tamper-evident hash chain over every ingested span."""

from __future__ import annotations

import json
import sys

import click

from workbench.cli.common import open_read_only
from workbench.cli.common import settings as settings_of
from workbench.cli.render import clean


@click.group()
def ledger() -> None:
    """The tamper-evident hash chain over every ingested span."""


@ledger.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ledger_verify(ctx: click.Context, as_json: bool) -> None:
    """Recompute digests, chain and Merkle checkpoints; name the first bad sequence number. Exit 0 only
    when everything holds."""
    from collectors.integrity import stored_columns_check
    from workbench.store.verify import verify_ledger

    with open_read_only(settings_of(ctx)) as store:
        report = verify_ledger(store, stored_columns_check())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "checkpoints": report.checkpoints,
                    "first_bad_seq": report.first_bad_seq,
                    "problems": [{"seq": s, "problem": p} for s, p in report.problems],
                    "chain_head": report.chain_head.hex(),
                },
                indent=2,
            )
        )
    elif report.ok:
        click.echo(
            f"ledger OK: {report.checked} spans, {report.checkpoints} checkpoints, "
            f"chain head {report.chain_head.hex()}"
        )
    else:
        click.echo(f"ledger BROKEN: first bad sequence number {report.first_bad_seq}", err=True)
        for _, problem in report.problems:
            click.echo(clean(f"  {problem}"), err=True)
    sys.exit(0 if report.ok else 1)
