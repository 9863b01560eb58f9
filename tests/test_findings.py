"""Findings in the store, on the command line, and kept current by the scanner inside `workbench serve`.

Everything runs on a real DuckDB file; the scanner tests use the real ingest pipeline (its writer thread
and commit listeners), and the served test posts a sample over a real OTLP/HTTP socket.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from collectors import decode
from collectors.files import read_requests
from collectors.pipeline import IngestPipeline
from sample_traces.catalog import SAMPLES, get
from tests.conftest import ServerProcess
from tests.polling import wait_for
from workbench.cli import cli
from workbench.model import Finding, Severity
from workbench.policies.engine import build_engine, catch_up
from workbench.policies.scanner import FindingsScanner
from workbench.store import findings as store_findings
from workbench.store.connection import Store


def _finding(trace: str, seq: int, rule: str = "r", severity: Severity = Severity.LOW) -> Finding:
    return Finding(
        trace_id=trace, step_seq=seq, span_id=f"{seq:016x}", rule_id=rule, severity=severity, title="t",
        explanation="e", evidence_field="tool_arguments", evidence_start=0, evidence_end=3,
        evidence_excerpt="abc", taint_chain=(1, seq), details={"k": [1, 2]},
    )  # fmt: skip


def test_migration_adds_the_scan_watermark(tmp_path: Path) -> None:
    with Store(tmp_path / "w.duckdb") as store:
        cols = [r[0] for r in store.cursor().execute("DESCRIBE findings_scan").fetchall()]
        assert cols == ["id", "scanned_seq", "rules_digest", "updated_at"]
        assert 10 in store.applied_migrations()
        assert store_findings.scan_watermark(store) == (0, "")


def test_replace_is_per_trace_and_moves_the_watermark(tmp_path: Path) -> None:
    with Store(tmp_path / "w.duckdb") as store:
        store_findings.replace_findings(
            store,
            {"a": [_finding("a", 1, severity=Severity.CRITICAL), _finding("a", 2)], "b": [_finding("b", 3)]},
            watermark=3,
            rules_digest="d1",
        )
        assert store_findings.scan_watermark(store) == (3, "d1")
        store_findings.replace_findings(store, {"a": [_finding("a", 2, "other", Severity.HIGH)]})
        got = store_findings.trace_findings(store, "a")
        assert [(f.step_seq, f.rule_id) for f in got] == [(2, "other")]
        assert got[0].taint_chain == (1, 2) and got[0].details == {"k": [1, 2]} and got[0].id is not None
        assert [f.step_seq for f in store_findings.trace_findings(store, "b")] == [3]  # untouched
        assert store_findings.counts_by_trace(store) == {"a": {"high": 1}, "b": {"low": 1}}
        assert store_findings.scan_watermark(store) == (3, "d1")  # no watermark given: unchanged
        high = store_findings.list_findings(store, min_severity=Severity.HIGH)
        assert [f.trace_id for f in high] == ["a"]
        assert [f.step_seq for f in store_findings.step_findings(store, "b", 3)] == [3]
        store_findings.replace_findings(store, {"a": []})
        assert store_findings.trace_findings(store, "a") == []


def test_replace_finds_old_findings_whoever_wrote_them(tmp_path: Path) -> None:
    """A scan looks up old findings only for traces the process knows to have some; the set is checked
    against the findings table's row count, so a finding written behind its back (SQL here, another
    process in life) is still found, kept when raised again and retired when not: never stored twice."""
    path = tmp_path / "w.duckdb"
    with Store(path) as store:
        store_findings.replace_findings(store, {"a": [_finding("a", 1)]})
        cur = store.cursor()
        cur.execute(  # another writer: the same row a scan would write for trace b
            "INSERT INTO findings BY NAME SELECT * FROM (SELECT 'b' AS trace_id, 2 AS step_seq,"
            " '0000000000000002' AS span_id, 'r' AS rule_id, 'low' AS severity, 't' AS title,"
            " 'e' AS explanation, 'tool_arguments' AS evidence_field, 0 AS evidence_start, 3 AS evidence_end,"
            " 'abc' AS evidence_excerpt, '[1, 2]' AS taint_chain, '{\"k\": [1, 2]}' AS details,"
            " now() AS created_at)"
        )
        (kept_id,) = cur.execute("SELECT id FROM findings WHERE trace_id = 'b'").fetchone()
        store_findings.replace_findings(store, {"b": [_finding("b", 2)]})
        assert [f.id for f in store_findings.trace_findings(store, "b")] == [kept_id]  # the same: kept
        store_findings.replace_findings(store, {"b": [], "c": [_finding("c", 3)]})
        assert store_findings.trace_findings(store, "b") == []
        retired = cur.execute("SELECT count(*) FROM findings_retired WHERE trace_id = 'b'").fetchone()
        assert retired == (1,)
        (c_id,) = [f.id for f in store_findings.trace_findings(store, "c")]
        store_findings.replace_findings(store, {"c": [_finding("c", 3)], "d": []})
        assert store_findings.counts_by_trace(store) == {"a": {"low": 1}, "c": {"low": 1}}
    with Store(path) as store:  # the file opened again: c is found, not inserted twice
        store_findings.replace_findings(store, {"c": [_finding("c", 3)]})
        assert [f.id for f in store_findings.trace_findings(store, "c")] == [c_id]


def _records(path: Path) -> list:
    out = []
    for _, req, _ in read_requests(path):
        out += decode.to_records(req, 1 << 20).records
    return out


def test_scanner_rescans_traces_touched_by_commits(tmp_path: Path) -> None:
    """Commit listener -> debounced scan on the scanner's thread; only the touched traces change."""
    with Store(tmp_path / "w.duckdb") as store:
        pipeline = IngestPipeline(store)
        scanner = FindingsScanner(store, build_engine(), pipeline, debounce_s=0.05)
        scanner.start()
        try:
            pipeline.ingest(_records(get("db_deletion").path), "test")
            wait_for(
                lambda: store_findings.trace_findings(store, get("db_deletion").trace_id()),
                20,
                what="findings of db_deletion",
            )
            first = {f.id for f in store_findings.trace_findings(store, get("db_deletion").trace_id())}
            pipeline.ingest(_records(get("prompt_injection").path), "test")
            wait_for(
                lambda: store_findings.trace_findings(store, get("prompt_injection").trace_id()),
                20,
                what="findings of prompt_injection",
            )
            # the first trace was not touched by the second commit, so its rows were not rewritten
            assert {
                f.id for f in store_findings.trace_findings(store, get("db_deletion").trace_id())
            } == first
            wait_for(
                lambda: store_findings.scan_watermark(store)[0] == store_findings.max_step_seq(store),
                20,
                what="the scan watermark to reach the last step",
            )
        finally:
            pipeline.close()
            scanner.stop()


def test_commit_listeners_are_told_the_traces_the_range_holds(tmp_path: Path) -> None:
    """The scanner takes the writer's trace ids instead of looking each range up in the store: they must
    be the traces `traces_in_range` finds, redeliveries (nothing stored) and rewritten versions included."""
    told: list[tuple[int, int, frozenset[str]]] = []
    with Store(tmp_path / "w.duckdb") as store:
        pipeline = IngestPipeline(store)
        pipeline.add_commit_listener(lambda first, last, traces: told.append((first, last, traces)))
        try:
            both = _records(get("db_deletion").path) + _records(get("prompt_injection").path)
            pipeline.ingest(both, "test")
            pipeline.ingest(_records(get("db_deletion").path), "test")  # a redelivery: nothing new
            changed = _records(get("weekly_report").path)
            pipeline.ingest(changed, "test")
            _, req, _ = next(iter(read_requests(get("weekly_report").path)))
            req.resource_spans[0].scope_spans[0].spans[0].name += " (edited)"
            rewritten = decode.to_records(req, 1 << 20).records
            pipeline.ingest(rewritten, "test")  # same ids, one with other bytes: a version, no step
        finally:
            pipeline.close()
        assert len(told) == 3 and all(traces for _, _, traces in told)
        assert told[2][0] == told[2][1]  # the one changed span, alone

        assert told[0][2] == {get("db_deletion").trace_id(), get("prompt_injection").trace_id()}
        assert told[1][2] == told[2][2] == {get("weekly_report").trace_id()}
        for first, last, traces in told:
            assert traces == set(store_findings.traces_in_range(store, first, last))


def test_scanner_catches_up_from_the_watermark_on_start(tmp_path: Path) -> None:
    with Store(tmp_path / "w.duckdb") as store:
        pipeline = IngestPipeline(store)
        for sample in SAMPLES[:2]:
            pipeline.ingest(_records(sample.path), "test")
        pipeline.close()
        assert store_findings.list_findings(store) == []  # nothing scanned them yet
        scanner = FindingsScanner(store, build_engine(), None)
        scanner.start()
        wait_for(
            lambda: scanner.idle.is_set() and store_findings.scan_watermark(store)[0] > 0,
            20,
            what="the scanner to catch up and go idle",
        )
        scanner.stop()
        assert {f.trace_id for f in store_findings.list_findings(store)} == {
            s.trace_id() for s in SAMPLES[:2]
        }
        # a second catch-up with the same rules finds nothing new to do
        assert catch_up(store, build_engine()).traces == 0


def test_cli_findings_rescan_and_eval(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", *[str(s.path) for s in SAMPLES]])
    assert result.exit_code == 0, result.output
    assert "findings: " in result.output
    out = runner.invoke(cli, ["findings", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert {r["rule_id"] for r in rows} >= {"destructive-action", "taint-chain", "prompt-injection"}
    critical = json.loads(runner.invoke(cli, ["findings", "--json", "--min-severity", "critical"]).output)
    assert critical and all(r["severity"] == "critical" for r in critical)
    text = runner.invoke(cli, ["findings", "--trace", get("db_deletion").trace_id()[:6]]).output
    assert "destructive-action" in text and "evidence tool_arguments" in text and "chain " in text

    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  destructive-action:\n    enabled: false\n")
    rescan = runner.invoke(cli, ["rescan"], env={"WORKBENCH_RULES_FILE": str(rules)})
    assert rescan.exit_code == 0 and "rescanned 5 trace(s)" in rescan.output, rescan.output
    after = json.loads(runner.invoke(cli, ["findings", "--json"]).output)
    assert "destructive-action" not in {r["rule_id"] for r in after}

    rules.write_text("version: 1\nrules:\n  destructive-action:\n    enabld: false\n")
    bad = runner.invoke(cli, ["rescan"], env={"WORKBENCH_RULES_FILE": str(rules)})
    assert bad.exit_code == 1 and f"{rules}:4:5: unknown key 'enabld'" in bad.output

    listed = json.loads(runner.invoke(cli, ["findings", "rules", "--json"]).output)
    assert {r["id"] for r in listed["rules"]} >= {"taint-chain", "scratchpad-mismatch", "reasoning-cost"}
    assert all(r["description"] and r["rationale"] for r in listed["rules"])

    table = runner.invoke(cli, ["findings", "eval"])
    assert table.exit_code == 0, table.output
    assert "precision" in table.output and "taint-chain" in table.output and "all (micro)" in table.output


@pytest.mark.slow
def test_served_findings_follow_otlp_ingest(tmp_path: Path) -> None:
    """A sample posted over OTLP/HTTP to `workbench serve` gets its findings from the in-process scanner."""
    server = ServerProcess(tmp_path / "served", env={"WORKBENCH_UI_PORT": "0"}).start()
    try:
        sample = get("prompt_injection")
        req = urllib.request.Request(
            server.traces_url, data=sample.path.read_bytes(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
    finally:
        # The server holds the file, so look after it stops; a graceful stop scans what is pending.
        assert server.stop() == 0, server.log()
    with Store(server.db_path, read_only=True) as store:
        found = store_findings.trace_findings(store, sample.trace_id())
        assert {"prompt-injection", "taint-chain", "egress-allowlist"} <= {f.rule_id for f in found}
        assert store_findings.scan_watermark(store)[0] == store_findings.max_step_seq(store)


def test_ingest_with_a_bad_rules_file_keeps_the_spans_and_says_why(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  no-such-rule: {}\n")
    result = CliRunner().invoke(
        cli, ["ingest", str(get("db_deletion").path)], env={"WORKBENCH_RULES_FILE": str(rules)}
    )
    assert result.exit_code == 0, result.output
    assert "ingested 15 spans" in result.output
    assert f"findings not computed: {rules}:3:3: unknown rule id 'no-such-rule'" in result.output
    # fixed rules file: the next run catches up on what was not scanned
    rules.write_text("version: 1\n")
    again = CliRunner().invoke(cli, ["rescan"], env={"WORKBENCH_RULES_FILE": str(rules)})
    assert again.exit_code == 0 and "rescanned 1 trace(s)" in again.output


def test_serve_refuses_a_bad_rules_file_at_start(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  taint-chain:\n    window_steps: many\n")
    result = CliRunner().invoke(
        cli,
        ["serve", "--http-port", "0", "--grpc-port", "0"],
        env={"WORKBENCH_RULES_FILE": str(rules), "WORKBENCH_UI_PORT": "0"},
    )
    assert result.exit_code == 1
    assert f"{rules}:4:19: taint-chain.window_steps must be int" in result.output
