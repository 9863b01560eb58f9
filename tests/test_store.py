"""The store: migrations, one transaction per batch, named queries, and the ledger's tamper detection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from collectors import decode
from collectors.integrity import stored_columns_check
from collectors.pipeline import IngestPipeline
from tests.sdk_spans import agent_run_request
from workbench.errors import DatabaseBusy, DatabaseCorrupt
from workbench.model import StepKind
from workbench.store import queries
from workbench.store.connection import Store, migrations
from workbench.store.verify import verify_ledger

SPAN_COLUMNS = [
    "seq",
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_time_ns",
    "end_time_ns",
    "status_code",
    "status_message",
    "trace_state",
    "flags",
    "service_name",
    "resource",
    "resource_schema_url",
    "scope_name",
    "scope_version",
    "scope_attributes",
    "scope_schema_url",
    "attributes",
    "events",
    "links",
    "dropped_attributes_count",
    "dropped_events_count",
    "dropped_links_count",
    "truncations",
    "canonical",
    "source",
    "batch_id",
    "received_at",
    "version_of",  # 0011: the first span with this id, for a conflicting redelivery
]


def _columns(store: Store, table: str) -> list[str]:
    rows = (
        store.cursor()
        .execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        )
        .fetchall()
    )
    return [r[0] for r in rows]


def test_blank_database_migrates_to_the_exact_schema(tmp_path: Path) -> None:
    with Store(tmp_path / "w.duckdb") as store:
        assert store.applied_migrations() == [v for v, _, _ in migrations()]
        assert _columns(store, "spans") == SPAN_COLUMNS
        assert _columns(store, "ledger") == ["seq", "digest", "chain"]
        assert "reasoning_text" in _columns(store, "steps")
        assert store.migrate() == []  # idempotent


def _filled(tmp_path: Path, runs: int = 2, checkpoint_interval: int = 4) -> Path:
    path = tmp_path / "w.duckdb"
    with Store(path) as store:
        pipeline = IngestPipeline(store, checkpoint_interval=checkpoint_interval)
        for _ in range(runs):
            records = decode.to_records(agent_run_request(), 1 << 20).records
            pipeline.ingest(records, "test")
        pipeline.close()
    return path


def test_batches_get_gapless_sequence_numbers_and_steps(tmp_path: Path) -> None:
    path = _filled(tmp_path)
    with Store(path, read_only=True) as store:
        c = queries.counts(store)
        assert c["spans"] == c["steps"] == c["ledger"] == 14
        assert c["traces"] == 2
        seqs = [r[0] for r in store.cursor().execute("SELECT seq FROM spans ORDER BY seq").fetchall()]
        assert seqs == list(range(1, 15))
        trace = queries.list_traces(store)[0]
        assert trace.span_count == 7 and trace.tool_calls == 3 and trace.error_count == 1
        assert trace.root_name == "invoke_agent cleaner" and trace.service_name == "ops-agent"
        steps = queries.trace_steps(store, trace.trace_id)
        assert steps[0].step.kind is StepKind.AGENT
        tools = [s.step for s in steps if s.step.kind is StepKind.TOOL]
        assert [t.tool_name for t in tools] == ["run_sql"] * 3
        assert tools[-1].is_error


def _verify(path: Path) -> list[tuple[int, str]]:
    with Store(path, read_only=True) as store:
        return verify_ledger(store, stored_columns_check()).problems


def _tamper(path: Path, *sql: str) -> None:
    con = duckdb.connect(str(path))
    for statement in sql:
        con.execute(statement)
    con.close()


def test_intact_ledger_verifies(tmp_path: Path) -> None:
    path = _filled(tmp_path)
    assert _verify(path) == []


@pytest.mark.parametrize(
    ("sql", "first_bad", "words"),
    [
        # an edited column an investigator reads
        (["UPDATE spans SET name = 'harmless' WHERE seq = 5"], 5, "name differ"),
        (["UPDATE spans SET attributes = '{}' WHERE seq = 6"], 6, "attributes"),
        # edited raw bytes
        (["UPDATE spans SET canonical = canonical || '\\x00'::BLOB WHERE seq = 3"], 3, "canonical bytes"),
        # deletion of a span and of a span with its ledger entry
        (["DELETE FROM spans WHERE seq = 4"], 4, "span deleted"),
        (["DELETE FROM spans WHERE seq = 4", "DELETE FROM ledger WHERE seq = 4"], 4, "missing from both"),
        # insertion of a span that was never ingested
        (["INSERT INTO spans SELECT * REPLACE (15 AS seq) FROM spans WHERE seq = 2"], 15, "no ledger entry"),
        # reordering: two spans swap places, each keeping its own ledger entry
        (
            [
                "UPDATE spans SET seq = -7 WHERE seq = 7",
                "UPDATE spans SET seq = 7 WHERE seq = 8",
                "UPDATE spans SET seq = 8 WHERE seq = -7",
            ],
            7,
            "span modified",
        ),
        # reordering spans and ledger together: the chain breaks
        (
            [
                "UPDATE spans SET seq = -7 WHERE seq = 7",
                "UPDATE spans SET seq = 7 WHERE seq = 8",
                "UPDATE spans SET seq = 8 WHERE seq = -7",
                "UPDATE ledger SET seq = -7 WHERE seq = 7",
                "UPDATE ledger SET seq = 7 WHERE seq = 8",
                "UPDATE ledger SET seq = 8 WHERE seq = -7",
            ],
            7,
            "chain breaks",
        ),
        # a forged digest that matches forged bytes still breaks the chain
        (
            [
                "UPDATE spans SET canonical = canonical || '\\x00'::BLOB WHERE seq = 9",
                "UPDATE ledger SET digest = sha256((SELECT canonical FROM spans WHERE seq = 9))::BLOB"
                " WHERE seq = 9",
            ],
            9,
            "",
        ),
        # deleting the tail is caught by the checkpoint that covered it
        (["DELETE FROM spans WHERE seq > 12", "DELETE FROM ledger WHERE seq > 12"], 13, "tail deleted"),
    ],
)
def test_tampering_is_detected_at_the_first_bad_sequence(
    tmp_path: Path, sql: list[str], first_bad: int, words: str
) -> None:
    path = _filled(tmp_path)
    _tamper(path, *sql)
    problems = _verify(path)
    assert problems, "tampering went unnoticed"
    assert problems[0][0] == first_bad, problems
    assert words in problems[0][1]


def test_cli_verify_exit_codes(tmp_path: Path) -> None:
    path = _filled(tmp_path)
    cmd = [sys.executable, "-m", "workbench.cli", "--db", str(path), "ledger", "verify"]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "ledger OK: 14 spans" in ok.stdout
    _tamper(path, "UPDATE spans SET name = 'x' WHERE seq = 2")
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "first bad sequence number 2" in bad.stderr


def test_second_writer_gets_a_clear_error(tmp_path: Path) -> None:
    path = _filled(tmp_path)
    script = (
        f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DatabaseBusy, match="held by another process"):
            Store(path)
        with pytest.raises(DatabaseBusy):
            Store(path, read_only=True)
    finally:
        holder.kill()
        holder.wait()


def test_corrupted_file_is_named_not_crashed(tmp_path: Path) -> None:
    path = tmp_path / "broken.duckdb"
    path.write_bytes(b"this is not a database" * 1000)
    with pytest.raises(DatabaseCorrupt, match="broken.duckdb"):
        Store(path)


def test_an_out_of_range_count_does_not_cost_the_batch(tmp_path: Path) -> None:
    """A token count of "1e30" fits no BIGINT: the step says 'unknown', the span and its batch stay."""
    req = agent_run_request(1)
    chat = next(s for s in req.resource_spans[0].scope_spans[0].spans if s.name == "chat gpt-test")
    for kv in chat.attributes:
        if kv.key == "gen_ai.usage.input_tokens":
            kv.value.string_value = "1e30"
    with Store(tmp_path / "w.duckdb") as store:
        pipeline = IngestPipeline(store)
        result = pipeline.ingest(decode.to_records(req, 1 << 20).records, "test")
        pipeline.close()
        assert result.accepted == 3
        steps = queries.trace_steps(store, queries.list_traces(store)[0].trace_id)
    llm = next(s.step for s in steps if s.step.kind is StepKind.LLM)
    assert llm.tokens_in is None and llm.tokens_out == 10


def test_verify_uses_the_limit_in_force_at_ingest(tmp_path: Path) -> None:
    """Values cut at ingest under a small WORKBENCH_MAX_ATTRIBUTE_LENGTH verify under any later setting;
    editing the cut value or the truncation record is still caught."""
    req = agent_run_request(1)
    kv = req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="big")
    kv.value.string_value = "x" * 500
    path = tmp_path / "w.duckdb"
    with Store(path) as store:
        pipeline = IngestPipeline(store)
        pipeline.ingest(decode.to_records(req, 100).records, "test")
        pipeline.close()
    assert _verify(path) == []
    _tamper(path, "UPDATE spans SET truncations = '[]' WHERE seq = 1")
    problems = _verify(path)
    assert problems and problems[0][0] == 1 and "span modified" in problems[0][1]


def test_a_crash_right_after_the_first_migration_leaves_a_database_that_opens(tmp_path: Path) -> None:
    """DuckDB 1.5.5 cannot replay a WAL holding our migrations' ALTER TABLEs; the store checkpoints after
    migrating so that a process killed at once (no clean close, no checkpoint at exit) leaves a file
    that opens."""
    db = tmp_path / "crashed.duckdb"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import os; from workbench.store.connection import Store; s = Store({str(db)!r}); os._exit(9)",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == 9, killed.stderr
    with Store(db) as store:
        assert store.applied_migrations() == [v for v, _, _ in migrations()]
