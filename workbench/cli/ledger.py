"""`workbench ledger verify` and `workbench ledger checkpoint`: the tamper-evident ledger from the outside.

`verify` recomputes the span chain and Merkle checkpoints, re-derives every step from its raw span, and
checks every sealed finding, annotation and probe result; `--against` proves that today's ledger extends
a signed tree head kept outside the database (the only way to catch a truncated tail). `checkpoint`
writes such a tree head.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from workbench.cli.common import check_output, open_read_only
from workbench.cli.common import settings as settings_of
from workbench.cli.render import clean


@click.group()
def ledger() -> None:
    """The tamper-evident hash chain over every ingested span and every derived row."""


@ledger.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--against",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A signed tree head (or log of them) from `ledger checkpoint`: prove today's ledger extends it.",
)
@click.pass_context
def ledger_verify(ctx: click.Context, as_json: bool, against: Path | None) -> None:
    """Recompute digests, chain and Merkle checkpoints, re-derive every step, check every sealed finding,
    annotation and probe result; name the first bad one. Exit 0 only when everything holds."""
    from collectors.integrity import step_deriver, stored_columns_check, stored_log_columns_check
    from collectors.normalize import NORMALIZER_VERSION
    from workbench.export.signing import load_or_create_key
    from workbench.store import treehead
    from workbench.store.verify import verify_ledger

    settings = settings_of(ctx)
    with open_read_only(settings) as store:
        # With the store, steps filled from GenAI events are re-derived with their sealed log records.
        if store.is_lake:  # every node's chain on its own; problems name the node
            from workbench.store.lake_verify import verify_lake

            report, _per_node = verify_lake(
                store,
                stored_columns_check(),
                derive=step_deriver(store),
                normalizer_version=NORMALIZER_VERSION,
                log_check=stored_log_columns_check(),
            )
        else:
            report = verify_ledger(
                store,
                stored_columns_check(),
                derive=step_deriver(store),
                normalizer_version=NORMALIZER_VERSION,
                log_check=stored_log_columns_check(),
            )
        anchored: list[str] = []
        lake_root: str | None = None
        if store.is_lake:  # each node's tree against its head in the latest signed global root
            from workbench.store import lake_checkpoint

            stored, root_problems = lake_checkpoint.check(store)
            anchored += root_problems
            if stored is not None:
                lake_root = (
                    f"{len(stored.root.heads)} node(s) at the global root of "
                    f"{stored.root.time:%Y-%m-%dT%H:%M:%SZ} signed by {stored.signer_node}"
                )
        if against is not None:
            public = load_or_create_key(settings.data_dir).public_key()
            heads = treehead.parse_log(against.read_text(encoding="utf-8"), public, str(against))
            anchored = treehead.check_extends(store, heads)
    ok = report.ok and not anchored
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": ok,
                    "checked": report.checked,
                    "checkpoints": report.checkpoints,
                    "first_bad_seq": report.first_bad_seq,
                    "problems": [{"seq": s, "problem": p} for s, p in report.problems],
                    "step_problems": [{"seq": s, "problem": p} for s, p in report.step_problems],
                    "entries": report.entries,
                    "entry_problems": [{"entry": s, "problem": p} for s, p in report.entry_problems],
                    "stored_twice": report.stored_twice,
                    "stored_twice_examples": report.stored_twice_examples,
                    "against": [{"problem": p} for p in anchored],
                    "lake_root": lake_root,
                    "chain_head": report.chain_head.hex(),
                    "entries_head": report.entries_head.hex(),
                },
                indent=2,
            )
        )
    elif ok:
        click.echo(
            f"ledger OK: {report.checked} spans, {report.checkpoints} checkpoints, {report.entries} entries"
            f"{', extends ' + str(against) if against else ''}"
            f"{', ' + lake_root if lake_root else ''}, chain head {report.chain_head.hex()}"
        )
    else:
        first = report.first_bad_seq
        click.echo("ledger BROKEN" + (f": first bad sequence number {first}" if first else ""), err=True)
        for _, problem in report.problems + report.step_problems + report.entry_problems:
            click.echo(clean(f"  {problem}"), err=True)
        for problem in anchored:
            click.echo(clean(f"  against {against or 'the global root'}: {problem}"), err=True)
    if report.stored_twice and not as_json:
        # Beside the verdict: both copies are sealed and intact (see workbench.store.verify.stored_twice).
        click.echo(
            f"notice: {report.stored_twice} record(s) stored more than once with the same bytes"
            " (a redelivery stored again):",
            err=True,
        )
        for example in report.stored_twice_examples:
            click.echo(clean(f"  {example}"), err=True)
    sys.exit(0 if ok else 1)


@ledger.command("checkpoint")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append the signed tree head to this file (keep it outside the data directory) [stdout].",
)
@click.pass_context
def ledger_checkpoint(ctx: click.Context, out: Path | None) -> None:
    """Write a signed tree head (size, Merkle roots, time, Ed25519 signature) of the ledger as it is now.
    In lake mode: one signed global root over every node's tree head, also stored in the lake."""
    from workbench.export.signing import load_or_create_key
    from workbench.store import treehead

    settings = settings_of(ctx)
    if out is not None:
        check_output(out, "--out")
    if settings.lake:  # lake mode: every node's head in one signed root, committed to the lake too
        from workbench.store import lake_checkpoint

        with lake_checkpoint.open_for_roots(settings) as store:
            note = lake_checkpoint.commit_root(
                store, load_or_create_key(settings.data_dir), store.node_id or "cli"
            )
    else:
        with open_read_only(settings) as store:
            note = treehead.sign(treehead.current(store), load_or_create_key(settings.data_dir))
    if out is None:
        click.echo(note, nl=False)
    else:
        with out.open("a", encoding="utf-8") as f:
            f.write(note + "\n")
        click.echo(f"signed tree head appended to {out}")
