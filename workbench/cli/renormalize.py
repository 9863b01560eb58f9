"""`workbench renormalize`: re-derive every step from the stored raw spans, after a mapping fix.

Raw spans are never thrown away, so normalization can be run again; it rewrites the steps table and
needs the database for writing. The trace list's `trace_commits` is rebuilt from the new steps; the search
side index is deleted with the old steps, and rebuilt by the next `serve`.
"""

from __future__ import annotations

import sys

import click

from workbench.cli.common import open_for_writing
from workbench.cli.common import settings as settings_of


@click.command()
@click.pass_context
def renormalize(ctx: click.Context) -> None:
    """Re-derive every step from the stored raw spans (after a fix to a convention mapping)."""
    from tqdm import tqdm

    from collectors import events
    from collectors.decode import record_from_canonical
    from collectors.normalize import NORMALIZER_VERSION
    from collectors.pipeline import default_normalizer
    from workbench.store import log_join, queries, search_index, trace_commits

    settings = settings_of(ctx)
    normalize = default_normalizer()
    with open_for_writing(settings, "renormalize") as store:
        counted = queries.counts(store)
        total = counted["spans"] - counted["versions"]  # conflicting versions have no step of their own
        done = 0
        with tqdm(total=total, unit="span", disable=None, file=sys.stderr) as bar:
            for chunk in queries.iter_canonical(store):
                seqs = [seq for seq, _ in chunk]
                records = [record_from_canonical(raw, settings.max_attribute_length) for _, raw in chunk]
                # A step filled from GenAI events stays joined with them (collectors.events).
                stored = log_join.events_of(store.cursor(), sorted({r.trace_id for r in records}))
                trace_events = {t: events.decode_events(e) for t, e in stored.items()}
                steps = [events.join(r, trace_events.get(r.trace_id, []), normalize) for r in records]
                queries.replace_steps(store, seqs, steps, NORMALIZER_VERSION)
                done += len(chunk)
                bar.update(len(chunk))
        # The trace list's derived table, from the rewritten steps (workbench.store.trace_commits).
        trace_commits.rebuild(store)
        # The search side index holds the old steps' words: the next `serve` rebuilds it from these.
        search_index.discard(store)
    click.echo(f"renormalized {done} steps")
