"""The trace list read through `trace_commits` answers exactly what one scan of every step answers.

Real parts: OTLP/JSON files ingested by the real pipeline (group commits, redelivery, conflicting
versions, GenAI events joined to steps whether they come before or after their span, the findings
rules), a real DuckDB file, the real side index. The reference is `explore_scan.scan_traces`, the query
the list ran before migration 0051, on the same store.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from workbench.cli import cli
from workbench.cli.loading import ingest_files
from workbench.settings import Settings
from workbench.store import (
    explore_candidates,
    explore_walk,
    export_nodes,
    export_queries,
    lake_verify,
    ledger,
    search_index,
    trace_commits,
    verify,
    verify_derived,
)
from workbench.store.api_queries import count_traces
from workbench.store.connection import Store
from workbench.store.explore_scan import scan_traces
from workbench.store.explore_traces import TEXT_COLUMNS, TraceFilter, TraceRow, search_traces, text_predicate
from workbench.store.queries import list_traces

BASE = 1_764_000_000_000_000_000
SERVICES = ("billing", "search", "support")
PHRASE = "after a dry run"


def _attr(key: str, value: object) -> dict[str, object]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _doc(service: str, spans: list[dict[str, object]]) -> str:
    resource = {"attributes": [_attr("service.name", service)]}
    return json.dumps(
        {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {}, "spans": spans}]}]}
    )


def _span(
    trace: str, n: int, parent: str, start: int, attrs: dict[str, object], *, error: bool = False
) -> dict:
    span: dict[str, Any] = {
        "traceId": trace,
        "spanId": f"{int(trace[:8], 16) % 10**6:06x}{n:010x}",
        "parentSpanId": parent,
        "name": f"step {n}",
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1000 + n),
        "attributes": [_attr(k, v) for k, v in attrs.items()],
    }
    if error:
        span["status"] = {"code": 2, "message": "boom"}
    return span


def _events(trace: str, span_id: str, text: str) -> str:
    record = {
        "traceId": trace,
        "spanId": span_id,
        "timeUnixNano": "5",
        "eventName": "gen_ai.client.inference.operation.details",
        "attributes": [
            _attr(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}]),
            ),
            _attr("gen_ai.output.messages", json.dumps([{"role": "assistant", "parts": []}])),
        ],
    }
    scope = {"scope": {"name": "opentelemetry.util.genai"}, "logRecords": [record]}
    return json.dumps({"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [scope]}]})


def _files(tmp_path: Path, traces: int = 40) -> list[Path]:
    """Traces in pieces over several files (so a trace's steps take several seq ranges), plus a
    redelivered piece, conflicting versions, and GenAI events before and after their spans."""
    rng = random.Random(20)
    pieces: list[str] = []
    late: list[str] = []
    early: list[str] = []
    for t in range(traces):
        trace = f"{rng.getrandbits(128):032x}"
        # Some traces start at the same nanosecond: the list breaks that tie by trace id.
        start = BASE + (t // 3) * 10**9 + (0 if t % 3 else rng.randrange(10**6))
        service = SERVICES[t % 3]
        root = _span(trace, 0, "", start, {"gen_ai.agent.name": f"agent-{t % 4}"})
        spans = [root]
        for n in range(1, rng.randrange(3, 8)):
            at = start + n * 1000
            if n % 3 == 1:
                attrs: dict[str, object] = {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.usage.input_tokens": 10 * n,
                    "gen_ai.usage.cost": round(0.001 * (t % 7) * n, 6),
                }
            elif n % 3 == 2:
                text = f"ticket-{t:05d} {PHRASE}" if t % 5 else f"ticket-{t:05d} DROP TABLE users"
                attrs = {
                    "openinference.span.kind": "TOOL",
                    "tool.name": "run_sql",
                    "input.value": text,
                    "output.value": "ok",
                }
            else:
                attrs = {"openinference.span.kind": "CHAIN", "input.value": f"plan {t} {'x' * n}"}
            spans.append(_span(trace, n, root["spanId"], at, attrs, error=(t % 6 == 0 and n == 2)))
        cut = rng.randrange(1, len(spans))
        pieces += [_doc(service, spans[:cut]), _doc(service, spans[cut:])]
        if t % 4 == 0:  # an event for the first chat span, after its span or before it
            (late if t % 8 else early).append(_events(trace, str(spans[1]["spanId"]), f"late words {t}"))
        if t % 9 == 0:  # the same span ids with other bytes: conflicting versions, no steps
            changed = [dict(s, name="rewritten") for s in spans[1:3]]
            late.append(_doc(service, changed))
    rng.shuffle(pieces)
    pieces += pieces[:5]  # redelivered, byte for byte
    out = []
    for name, lines in (
        ("early", early),
        ("a", pieces[: len(pieces) // 2]),
        ("b", pieces[len(pieces) // 2 :]),
    ):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        out.append(path)
    late_path = tmp_path / "late.jsonl"
    late_path.write_text("\n".join(late) + "\n")
    return [*out, late_path]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    tmp = tmp_path_factory.mktemp("walk")
    settings = Settings(data_dir=tmp / "data")
    # One file at a time: each is its own run of group commits, so traces interleave in seq order.
    for path in _files(tmp):
        totals = ingest_files(settings, [path])
        assert totals.rejected == 0, totals.errors
    return settings


def _filters() -> list[TraceFilter]:
    some_start = BASE + 5 * 10**9
    return [
        TraceFilter(),
        TraceFilter(start_ns=some_start),
        TraceFilter(end_ns=some_start),
        TraceFilter(start_ns=BASE + 3 * 10**9, end_ns=BASE + 9 * 10**9),
        TraceFilter(has_errors=True),
        TraceFilter(has_errors=False),
        TraceFilter(has_findings=True),
        TraceFilter(has_findings=False),
        TraceFilter(min_cost=0.004),
        TraceFilter(services=("billing", "support")),
        TraceFilter(agents=("agent-1",)),
        TraceFilter(text=PHRASE),
        TraceFilter(text="TICKET-00007"),
        TraceFilter(text="late words"),
        TraceFilter(text="drop table"),
        TraceFilter(text="no such text anywhere"),
        TraceFilter(text="plan", has_errors=False, start_ns=some_start, services=("search",)),
        TraceFilter(has_errors=True, start_ns=BASE + 2 * 10**9, end_ns=BASE + 11 * 10**9),
        TraceFilter(has_findings=True, has_errors=False, end_ns=some_start),
        TraceFilter(has_findings=False, has_errors=True),
        TraceFilter(has_findings=True, text="ticket-0"),
        TraceFilter(text="-0000", agents=("agent-1", "agent-2")),
        TraceFilter(text="(", min_cost=0.0),
        TraceFilter(text="ticket-00010 drop", start_ns=BASE),
        TraceFilter(start_ns=BASE + 13 * 10**9, end_ns=BASE + 12 * 10**9),
        TraceFilter(min_cost=0.001, has_errors=False, start_ns=BASE + 10**9),
    ]


def _exact(rows: list[TraceRow]) -> list[TraceRow]:
    # A sum of doubles depends on the order DuckDB adds them in (two plans, or two threads): costs are
    # compared to 1e-12 USD; every other field exactly.
    return [dataclasses.replace(r, cost_usd=round(r.cost_usd, 12)) for r in rows]


def _same(store: Store, flt: TraceFilter) -> None:
    for limit, offset in ((100, 0), (7, 0), (7, 7), (3, 13), (1, 39), (5, 100)):
        new, old = search_traces(store, flt, limit, offset), scan_traces(store, flt, limit, offset)
        assert _exact(new) == _exact(old), (flt, limit, offset)


def test_the_store_exercises_every_case(settings: Settings) -> None:
    with Store(settings.db_path, read_only=True) as store:
        cur = store.cursor()
        row = cur.execute(
            "SELECT count(DISTINCT trace_id), count(*) FILTER (WHERE is_error), count(DISTINCT actor),"
            " count(*) FILTER (WHERE cost_usd > 0), count(*) FILTER (WHERE event_fields IS NOT NULL)"
            " FROM steps"
        ).fetchone()
        assert row is not None and row[0] == 40 and all(row[1:]), row
        versions = cur.execute("SELECT count(*) FROM spans WHERE version_of IS NOT NULL").fetchone()
        duplicates = cur.execute("SELECT sum(duplicate_spans) FROM delivery_stats").fetchone()
        findings = cur.execute("SELECT count(DISTINCT trace_id) FROM findings").fetchone()
        assert versions and versions[0] and duplicates and duplicates[0] and findings and 0 < findings[0] < 40
        # Traces lie in several seq ranges, and some start at the same nanosecond.
        (split,) = cur.execute(
            "SELECT count(*) FROM (SELECT trace_id FROM trace_commits GROUP BY trace_id HAVING count(*) > 1)"
        ).fetchone() or (0,)
        (ties,) = cur.execute(
            "SELECT count(*) - count(DISTINCT s)"
            " FROM (SELECT min(start_time_ns) s FROM steps GROUP BY trace_id)"
        ).fetchone() or (0,)
        assert split > 10 and ties > 0


@pytest.mark.parametrize(("first_batch", "rest_fraction"), [(explore_walk.FIRST_BATCH, 4), (2, 4), (1, 1)])
def test_every_filter_and_page_answers_what_the_scan_answers(
    settings: Settings, first_batch: int, rest_fraction: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny batches make the walk take several of them, then scan the rest (past 1/rest_fraction).
    monkeypatch.setattr(explore_walk, "FIRST_BATCH", first_batch)
    monkeypatch.setattr(explore_walk, "REST_FRACTION", rest_fraction)
    # A small first tail (or first threshold) makes `newest` (`threshold`) grow it, and meet traces
    # seen again after an older commit (traces with a row before the threshold).
    monkeypatch.setattr(explore_candidates, "MIN_TAIL_ROWS", first_batch)
    monkeypatch.setattr(explore_candidates, "TAIL_ROWS_PER_TRACE", 1)
    # With the smallest batches, sets to keep go by the threshold too (not read whole).
    monkeypatch.setattr(explore_candidates, "DIRECT_TRACES", 0 if first_batch == 1 else 20_000)
    with Store(settings.db_path, read_only=True) as store:
        assert len(scan_traces(store, TraceFilter(text=PHRASE))) > 10
        for flt in _filters():
            _same(store, flt)
        assert count_traces(store) == len(scan_traces(store, TraceFilter(), 1000))
        assert [t.trace_id for t in list_traces(store, 1000)] == [
            t.trace_id for t in scan_traces(store, TraceFilter(), 1000)
        ]


def test_with_the_side_index_narrowing_the_answer_is_the_same(settings: Settings, tmp_path: Path) -> None:
    with Store(settings.db_path, read_only=True) as store:
        index = search_index.SearchIndex(tmp_path / "index.sqlite")
        while index.update(store):
            pass
        search_index.attach(store, index)
        try:
            assert index.candidates("ticket-00007") is not None  # the index narrows this one
            for text in ("ticket-00007", "late words", PHRASE, "drop table"):
                narrowed = search_traces(store, TraceFilter(text=text), 10)
                search_index.detach(store)
                assert _exact(narrowed) == _exact(scan_traces(store, TraceFilter(text=text), 10))
                search_index.attach(store, index)
        finally:
            search_index.detach(store)


def test_renormalize_rebuilds_the_table_and_the_list_stays_exact(settings: Settings, tmp_path: Path) -> None:
    copy = Settings(data_dir=tmp_path / "copy")
    copy.data_dir.mkdir()
    copy.db_path.write_bytes(settings.db_path.read_bytes())
    with Store(copy.db_path) as store:
        before = (
            store.cursor().execute("SELECT count(*), count(DISTINCT trace_id) FROM trace_commits").fetchone()
        )
    result = CliRunner().invoke(cli, ["--data-dir", str(copy.data_dir), "renormalize"])
    assert result.exit_code == 0, result.output
    with Store(copy.db_path) as store:
        cur = store.cursor()
        after = cur.execute("SELECT count(*), count(DISTINCT trace_id) FROM trace_commits").fetchone()
        assert before and after and after[1] == before[1] == 40
        expected = cur.execute(trace_commits.REBUILD_SQL.replace("INSERT INTO trace_commits ", "")).fetchall()
        assert sorted(cur.execute("SELECT * FROM trace_commits").fetchall()) == sorted(expected)
        for flt in _filters():
            _same(store, flt)


def test_merge_ranges_covers_every_range_in_at_most_the_asked_number() -> None:
    rng = random.Random(3)
    for _ in range(200):
        ranges = [
            (lo, lo + rng.randrange(50))
            for lo in (rng.randrange(10_000) for _ in range(rng.randrange(1, 30)))
        ]
        merged = explore_walk.merge_ranges(ranges, gap=rng.choice((0, 10, 500)), most=rng.randrange(1, 6))
        assert all(a[1] < b[0] for a, b in zip(merged, merged[1:], strict=False))  # sorted, disjoint
        assert all(any(lo <= a and b <= hi for lo, hi in merged) for a, b in ranges)


def test_lower_makes_no_ascii_digit_or_punctuation_from_another_code_point() -> None:
    # The premise of the text guard (`explore_traces.text_predicate`), checked on the pinned DuckDB:
    # lower() maps every code point to one code point, and only an ASCII character that is not a
    # letter lowers to one (U+0130 and U+212A lower to ASCII, but to letters: 'i' and 'k').
    row = (
        duckdb.connect()
        .execute(
            "SELECT count(*) FILTER (WHERE length(lower(chr(cp::INT))) <> 1),"
            " list(lower(chr(cp::INT))) FILTER (WHERE cp >= 128 AND ascii(lower(chr(cp::INT))) < 128),"
            " count(*) FILTER (WHERE cp < 128 AND NOT (cp BETWEEN 65 AND 90 OR cp BETWEEN 97 AND 122)"
            "  AND lower(chr(cp::INT)) <> chr(cp::INT))"
            " FROM range(0, 1114112) t(cp) WHERE cp NOT BETWEEN 55296 AND 57343"
        )
        .fetchone()
    )
    assert row is not None and row[0] == 0 and row[2] == 0
    assert all(len(c) == 1 and c.isascii() and c.isalpha() for c in row[1]), row[1]


def test_the_text_guard_never_changes_a_match() -> None:
    # The guarded predicate against the plain one on hostile text: case pairs that leave ASCII, NUL,
    # quotes, LIKE wildcards, long runs of punctuation.
    rng = random.Random(7)
    alphabet = (
        "aAkK\u212a\u0130i\u0131Ss\u017f\u00df-_%'\\\"0123 9:/.()[]{}\n\u00e9\u00c9\u03a3\u03c3\u03c2\x00"
    )
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(400)]
    needles = ["-0", "12 ", "k-1", "\u0130-", "ss:9", "'%", "\\0", "a\x00b", "_ _", "() ", "--"]
    needles += [
        t[i : i + rng.randrange(1, 8)].lower() for t in texts[:150] for i in [rng.randrange(len(t) + 1)]
    ]
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE steps AS SELECT "
        + ", ".join(f"t AS {c}" for c in TEXT_COLUMNS)
        + " FROM unnest(?) u(t)",
        [texts],
    )
    plain = " OR ".join(f"contains(lower({c}), ?)" for c in TEXT_COLUMNS)
    guarded = 0
    for needle in {n for n in needles if n}:
        sql, params = text_predicate(needle)
        guarded += sql != plain
        got = con.execute(f"SELECT count(*) FILTER (WHERE {sql}) FROM steps", list(params)).fetchone()
        want = con.execute(f"SELECT count(*) FILTER (WHERE {plain}) FROM steps", [needle] * 6).fetchone()
        assert got == want, needle
    assert guarded > 10


def test_evidence_never_reads_the_derived_table() -> None:
    # Derived data, never evidence: the ledger, verify and exports read spans, steps and sealed rows only.
    for module in (ledger, verify, verify_derived, export_queries, export_nodes, lake_verify):
        assert "trace_commits" not in inspect.getsource(module), module.__name__


def test_a_trace_begun_before_the_window_is_not_judged_on_its_later_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OLD starts before the window; its later step (inside the window's times, holding the text) is
    # stored among the window's traces, so the scan of the rest reads that step without OLD's root.
    # Judged on that part alone OLD would seem to start in the window and match: it must not.
    second = 10**9
    window_start = BASE + 100 * second

    def trace(n: int) -> str:
        return f"{n + 1:08x}" + "ab" * 12

    def chain(text: str) -> dict[str, object]:
        return {"openinference.span.kind": "CHAIN", "input.value": text}

    old, new, last = trace(0), trace(7), trace(8)
    newer = [trace(n) for n in range(1, 7)]
    files = {
        "a": [_doc("billing", [_span(old, 0, "", BASE, chain("root"))])],
        "b": [
            _doc("billing", [_span(t, 0, "", window_start + (60 - i) * second, chain("x"))])
            for i, t in enumerate(newer)
        ]
        + [
            _doc("billing", [_span(new, 0, "", window_start + 20 * second, chain("needle-77"))]),
            _doc("billing", [_span(last, 0, "", window_start + 10 * second, chain("y"))]),
        ],
        "c": [_doc("billing", [_span(old, 1, "", window_start + 30 * second, chain("needle-77 again"))])],
        "d": [_doc("billing", [_span(last, 1, "", window_start + 11 * second, chain("z"))])],
    }
    settings = Settings(data_dir=tmp_path / "data")
    for name, docs in files.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(docs) + "\n")
        assert ingest_files(settings, [path]).rejected == 0
    monkeypatch.setattr(explore_walk, "FIRST_BATCH", 1)  # walk two traces, then scan the rest
    flt = TraceFilter(text="needle-77", start_ns=window_start)
    with Store(settings.db_path, read_only=True) as store:
        got = search_traces(store, flt, 1)
        assert [r.trace_id for r in got] == [new]
        assert _exact(got) == _exact(scan_traces(store, flt, 1))
        assert [r.trace_id for r in search_traces(store, flt, 5)] == [new]
