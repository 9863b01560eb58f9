"""The long-trace generator: exact size, reproducible, and readable by the collectors. How fast it writes
100,000 steps is measured by benchmarks/ingest.py, not asserted here: on a shared machine a time limit
fails for the load, not for the code."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from collectors import decode
from collectors.files import read_requests
from collectors.normalize import normalize
from sample_traces import long_trace
from tests.conftest import ServerProcess
from workbench.cli.loading import ingest_files
from workbench.settings import Settings
from workbench.store.connection import Store


def _spans(path: Path) -> int:
    return sum(decode.count_spans(req) for _, req, _ in read_requests(path))


def test_small_trace_normalizes_into_every_kind() -> None:
    records = decode.to_records(long_trace.build(steps=1_200), 1 << 20).records
    kinds = Counter(str(normalize(r).kind) for r in records)
    assert sum(kinds.values()) == 1_200
    assert set(kinds) == {"agent", "plan", "llm", "reasoning", "tool", "memory", "guardrail", "human"}
    assert kinds["agent"] == 1 and kinds["human"] == 2
    assert {normalize(r).convention for r in records} == {"sdk"}


@pytest.mark.parametrize("name", ["t.pb", "t.jsonl", "t.json.gz"])
def test_formats_are_reproducible_and_readable(tmp_path: Path, name: str) -> None:
    first, second = tmp_path / "a" / name, tmp_path / "b" / name
    long_trace.write(first, steps=6_000, seed=3)
    long_trace.write(second, steps=6_000, seed=3)
    assert first.read_bytes() == second.read_bytes()
    assert _spans(first) == 6_000
    if name.endswith(".jsonl"):
        assert len(first.read_text().splitlines()) == 2  # at most 5,000 spans a line


def test_100k_steps_by_default(tmp_path: Path) -> None:
    out = tmp_path / "long.pb"
    assert long_trace.main([str(out)]) == 0
    assert _spans(out) == 100_000


@pytest.mark.slow
def test_100k_steps_through_a_real_server(tmp_path: Path) -> None:
    out = tmp_path / "long.pb"
    long_trace.write(out)
    server = ServerProcess(tmp_path / "served").start()
    try:
        totals = ingest_files(Settings(data_dir=server.data_dir), [out])
    finally:
        assert server.stop() == 0, server.log()
    assert (totals.accepted, totals.rejected) == (100_000, 0)
    with Store(server.db_path, read_only=True) as store:
        rows = store.cursor().execute("SELECT count(*), count(DISTINCT trace_id) FROM steps").fetchall()
        orphans = store.cursor().execute(
            "SELECT count(*) FROM steps c WHERE c.parent_span_id <> '' AND NOT EXISTS "
            "(SELECT 1 FROM steps p WHERE p.span_id = c.parent_span_id)"
        )
        assert rows == [(100_000, 1)] and orphans.fetchone() == (0,)
