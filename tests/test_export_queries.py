"""The export's named queries (workbench/store/export_queries.py) and the selection they share with the
trace search, against a real DuckDB store holding the sample traces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sample_traces.catalog import get
from workbench.cli.loading import ingest_files
from workbench.settings import Settings
from workbench.store import export_queries as q
from workbench.store import queries
from workbench.store.connection import Store
from workbench.store.explore_traces import TraceFilter, search_traces

SAMPLE_NAMES = ("db_deletion", "prompt_injection", "weekly_report")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    data_dir: Path = tmp_path_factory.mktemp("export-queries")
    totals = ingest_files(Settings(data_dir=data_dir), [get(n).path for n in SAMPLE_NAMES])
    assert totals.accepted > 0 and not totals.errors
    with Store(data_dir / "workbench.duckdb", read_only=True) as opened:
        yield opened


def _all_spans(store: Store) -> list[q.ExportSpan]:
    seqs = q.selected_seqs(store, q.SpanSelection())
    return [span for chunk in q.iter_spans(store, seqs, 1_000) for span in chunk]


def test_an_empty_selection_is_every_span_in_ledger_order(store: Store) -> None:
    seqs = q.selected_seqs(store, q.SpanSelection())
    total = queries.counts(store)["spans"]
    assert seqs == list(range(1, total + 1))
    digests, chains = q.ledger_links(store)
    assert len(digests) == len(chains) == total


def test_a_trace_selection_is_exactly_that_traces_spans(store: Store) -> None:
    trace = get("db_deletion").trace_id()
    seqs = q.selected_seqs(store, q.SpanSelection(trace_ids=(trace,)))
    assert sorted(s.seq for s in queries.trace_steps(store, trace)) == seqs
    spans = [span for chunk in q.iter_spans(store, seqs, 3) for span in chunk]
    assert [s.seq for s in spans] == seqs and {s.trace_id for s in spans} == {trace}


def test_time_windows_are_half_open_and_tile(store: Store) -> None:
    spans = _all_spans(store)
    starts = sorted({s.start_time_ns for s in spans})
    cut = starts[len(starts) // 2]
    before = q.selected_seqs(store, q.SpanSelection(until_ns=cut))
    after = q.selected_seqs(store, q.SpanSelection(since_ns=cut))
    assert before and after and not set(before) & set(after)
    assert sorted(before + after) == [s.seq for s in spans]
    assert all(s.start_time_ns >= cut for s in spans if s.seq in set(after))


def test_chunks_keep_only_the_asked_for_seqs(store: Store) -> None:
    """A sparse selection (every third span) read three seqs a chunk: each chunk is a range read, and
    what comes back is exactly the asked-for seqs, in order."""
    seqs = q.selected_seqs(store, q.SpanSelection())[::3]
    chunks = list(q.iter_spans(store, seqs, 3))
    assert all(len(chunk) <= 3 for chunk in chunks)
    assert [s.seq for chunk in chunks for s in chunk] == seqs
    assert all(isinstance(s.canonical, bytes) and s.canonical for chunk in chunks for s in chunk)


def test_steps_come_in_chunks_of_the_selection(store: Store) -> None:
    trace = get("weekly_report").trace_id()
    selection = q.SpanSelection(trace_ids=(trace,))
    chunks = list(q.iter_steps(store, selection, 4))
    rows = [row for chunk in chunks for row in chunk]
    assert len(chunks) > 1 and all(len(chunk) <= 4 for chunk in chunks)
    assert [row["seq"] for row in rows] == q.selected_seqs(store, selection)
    assert {row["trace_id"] for row in rows} == {trace}


def test_evidence_and_deployments_follow_the_selection(store: Store) -> None:
    everything = q.SpanSelection()
    nothing = q.SpanSelection(since_ns=2**62)
    reads = (q.selected_findings, q.selected_annotations, q.selected_probe_runs, q.selected_probe_results)
    for read in reads:
        assert read(store, nothing) == []
    findings = q.selected_findings(store, everything)
    assert findings and all(isinstance(f["details"], dict) for f in findings)  # JSON columns parsed
    trace = get("db_deletion").trace_id()
    one = q.selected_findings(store, q.SpanSelection(trace_ids=(trace,)))
    assert one and {f["trace_id"] for f in one} == {trace}
    services = {service for service, _ in q.selected_deployments(store, everything)}
    assert services == {row.service_name for row in search_traces(store, TraceFilter())}
    assert q.selected_deployments(store, nothing) == []


def test_the_trace_search_judges_a_trace_by_its_first_start(store: Store) -> None:
    """The same window builder, over each trace's first start in the search's HAVING; combined with a
    text search, so the parameters of both land in the right placeholders."""
    rows = sorted(search_traces(store, TraceFilter()), key=lambda r: r.start_time_ns)
    assert len(rows) == len(SAMPLE_NAMES)
    middle = rows[1]
    window = TraceFilter(start_ns=middle.start_time_ns, end_ns=middle.start_time_ns + 1)
    assert [r.trace_id for r in search_traces(store, window)] == [middle.trace_id]
    later = TraceFilter(start_ns=middle.start_time_ns)
    assert {r.trace_id for r in search_traces(store, later)} == {r.trace_id for r in rows[1:]}
    text = TraceFilter(text="drop table ORDER_EVENTS", start_ns=rows[0].start_time_ns)
    assert [r.trace_id for r in search_traces(store, text)] == [get("db_deletion").trace_id()]
