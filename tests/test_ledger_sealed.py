"""Issue #13, the ledger side: each insider edit of the issue is caught and named, redelivery never
duplicates, a rewritten span is kept and flagged, and a signed tree head catches a cut tail.

Real DuckDB files, real ingest through the pipeline, real rules; the tampering is plain SQL on the
stopped database, as the issue's reporter did it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors import decode
from collectors.integrity import step_deriver, stored_columns_check
from collectors.normalize import NORMALIZER_VERSION
from collectors.pipeline import IngestPipeline
from tests.sdk_spans import agent_run_request
from workbench.errors import WorkbenchError
from workbench.model import ProbeResult
from workbench.policies.engine import build_engine, catch_up
from workbench.store import annotations, findings, probes, queries, treehead
from workbench.store.connection import Store
from workbench.store.verify import VerifyReport, verify_ledger


def _verify(path: Path) -> VerifyReport:
    with Store(path, read_only=True) as store:
        return verify_ledger(
            store, stored_columns_check(), derive=step_deriver(), normalizer_version=NORMALIZER_VERSION
        )


def _all_problems(report: VerifyReport) -> list[str]:
    return [p for _, p in report.problems + report.step_problems + report.entry_problems]


def _ingest(path: Path, requests: list[ExportTraceServiceRequest]) -> None:
    with Store(path) as store:
        pipeline = IngestPipeline(store, checkpoint_interval=4)
        for req in requests:
            pipeline.ingest(decode.to_records(req, 1 << 20).records, "test")
        pipeline.close()
        catch_up(store, build_engine())


def _destructive(tools: int = 3) -> ExportTraceServiceRequest:
    """The agent run with destructive SQL in its tool calls, so the rules raise findings on it."""
    req = agent_run_request(tools=tools)
    for span in req.resource_spans[0].scope_spans[0].spans:
        for kv in span.attributes:
            if kv.key == "gen_ai.tool.call.arguments":
                kv.value.string_value = '{"query": "DROP TABLE users"}'
    return req


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    _ingest(path, [_destructive()])
    with Store(path) as store:
        trace = queries.list_traces(store)[0].trace_id
        steps = queries.trace_steps(store, trace)
        annotations.add_annotation(store, trace, steps[1].seq, "ana", "looks like a cleanup")
        probes.write_result(
            store, ProbeResult(run_id=1, analysis="logit_lens", summary={"a": 1}, data={"m": [1]})
        )
    return path


def _sql(path: Path, sql: str, params: list[object] | None = None) -> None:
    with Store(path) as store:
        store.cursor().execute(sql, params or [])


def test_untouched_database_verifies_with_every_derived_row_sealed(db: Path) -> None:
    report = _verify(db)
    assert report.ok, _all_problems(report)
    # one finding entry per finding, plus the annotation and the probe result
    with Store(db, read_only=True) as store:
        n_findings = len(findings.list_findings(store))
    assert report.entries == n_findings + 2


def test_edited_step_field_is_named_by_trace_step_and_field(db: Path) -> None:
    """Catches: UPDATE steps SET tool_arguments = 'SELECT 1' (the issue's first report)."""
    with Store(db, read_only=True) as store:
        trace = queries.list_traces(store)[0].trace_id
        tool = next((i, s) for i, s in enumerate(queries.trace_steps(store, trace)) if s.step.tool_name)
    _sql(db, 'UPDATE steps SET tool_arguments = \'{"query": "SELECT 1"}\' WHERE seq = ?', [tool[1].seq])
    problems = _all_problems(_verify(db))
    assert problems == [
        f"trace {trace} step {tool[0] + 1} (seq {tool[1].seq}): field tool_arguments differs from the step"
        " re-derived from its span"
    ]


def test_deleted_step_is_caught(db: Path) -> None:
    """Catches: DELETE FROM steps (the replay would silently skip the step)."""
    _sql(db, "DELETE FROM steps WHERE seq = 3")
    problems = _all_problems(_verify(db))
    assert len(problems) == 1 and "(seq 3): step deleted" in problems[0]


def test_deleted_and_edited_findings_are_named(db: Path) -> None:
    """Catches: DELETE FROM findings (the issue's second report), and an edited severity."""
    with Store(db, read_only=True) as store:
        ids = [f.id for f in findings.list_findings(store)]
    assert len(ids) >= 2
    _sql(db, "DELETE FROM findings WHERE id = ?", [ids[0]])
    _sql(db, "UPDATE findings SET severity = 'info' WHERE id = ?", [ids[1]])
    problems = _all_problems(_verify(db))
    assert any(p.startswith(f"finding {ids[0]}: deleted") for p in problems), problems
    assert any(p.startswith(f"finding {ids[1]}: field(s) severity edited") for p in problems), problems


def test_rescan_supersedes_findings_by_appending_never_deleting(db: Path) -> None:
    """Catches: a rescan that drops a finding must leave it retired and sealed, and verify still holds."""
    with Store(db) as store:
        trace = queries.list_traces(store)[0].trace_id
        before = findings.trace_findings(store, trace)
        findings.replace_findings(store, {trace: before[1:]})  # the rules no longer raise the first
        kinds = [
            k for (k,) in store.cursor().execute("SELECT kind FROM ledger_entries ORDER BY seq").fetchall()
        ]
        retired = store.cursor().execute("SELECT id FROM findings_retired").fetchall()
    assert kinds[-1] == "finding-retired" and retired == [(before[0].id,)]
    assert _verify(db).ok


def test_annotation_edit_appends_and_history_is_kept(db: Path) -> None:
    with Store(db) as store:
        trace = queries.list_traces(store)[0].trace_id
        (note,) = annotations.list_annotations(store, trace)
        assert note.id is not None
        edited = annotations.edit_annotation(store, note.id, "ana", "not a cleanup: data loss")
        assert [a.text for a in annotations.list_annotations(store, trace)] == ["not a cleanup: data loss"]
        assert edited.id is not None
        history = annotations.annotation_history(store, edited.id)
        assert [a.text for a in history] == ["looks like a cleanup", "not a cleanup: data loss"]
    assert _verify(db).ok


def test_edited_or_deleted_annotation_is_named(db: Path) -> None:
    """Catches: rewriting an investigator's note in place, or deleting it."""
    _sql(db, "UPDATE annotations SET text = 'nothing to see' WHERE id = 1")
    assert any(p.startswith("annotation 1: field(s) text edited") for p in _all_problems(_verify(db)))
    _sql(db, "DELETE FROM annotations WHERE id = 1")
    assert any(p.startswith("annotation 1: deleted") for p in _all_problems(_verify(db)))


def test_edited_probe_result_is_named(db: Path) -> None:
    """Catches: changing a probe's verdict in probe_results."""
    _sql(db, "UPDATE probe_results SET summary = '{\"a\": 0}' WHERE run_id = 1")
    problems = _all_problems(_verify(db))
    assert any(p.startswith("probe result 1/logit_lens: field(s) summary edited") for p in problems), problems


def test_redelivery_of_a_batch_is_acknowledged_once_stored_once(tmp_path: Path) -> None:
    """Catches: 4 deliveries of a 3-span batch leaving 12 spans and transport-made retry-loop findings."""
    full = agent_run_request(tools=3)
    three = ExportTraceServiceRequest()
    three.CopyFrom(full)
    spans = three.resource_spans[0].scope_spans[0].spans
    tools = [s for s in spans if s.name.startswith("execute_tool")]
    del spans[:]
    spans.extend(tools)
    assert len(spans) == 3
    path = tmp_path / "w.duckdb"
    with Store(path) as store:
        pipeline = IngestPipeline(store)
        records = decode.to_records(three, 1 << 20).records
        results = [pipeline.ingest(records, "test") for _ in range(4)]
        # and inside one batch: the same spans twice
        results.append(pipeline.ingest(list(records) + list(records), "test"))
        pipeline.close()
        catch_up(store, build_engine())
        counted = queries.counts(store)
        rules = {f.rule_id for f in findings.list_findings(store)}
        listed = queries.list_traces(store)  # what `workbench traces --json` prints
    assert [(t.duplicates, t.versions) for t in listed] == [(15, 0)]
    assert [r.accepted for r in results] == [3, 3, 3, 3, 6]
    assert [r.duplicates for r in results] == [0, 3, 3, 3, 6]
    assert counted["spans"] == counted["steps"] == counted["ledger"] == 3
    assert counted["duplicates"] == 15 and counted["versions"] == 0
    assert "retry-loop" not in rules
    assert _verify(path).ok


def test_rewritten_span_is_kept_sealed_flagged_and_not_double_counted(tmp_path: Path) -> None:
    """Catches: a changed copy with the same span id stored beside the original as a second step."""
    original = agent_run_request(tools=1)
    rewritten = ExportTraceServiceRequest()
    rewritten.CopyFrom(original)
    span = next(
        s for s in rewritten.resource_spans[0].scope_spans[0].spans if s.name.startswith("execute_tool")
    )
    for kv in span.attributes:
        if kv.key == "gen_ai.tool.call.arguments":
            kv.value.string_value = '{"query": "SELECT 1"}'
    path = tmp_path / "w.duckdb"
    _ingest(path, [original, rewritten])
    with Store(path, read_only=True) as store:
        counted = queries.counts(store)
        flagged = findings.list_findings(store, rule_id="span-rewritten")
        trace = queries.list_traces(store)[0]
    n = len(original.resource_spans[0].scope_spans[0].spans)
    assert counted["spans"] == counted["ledger"] == n + 1 and counted["steps"] == n
    assert counted["versions"] == 1 and trace.span_count == n and trace.tool_calls == 1
    assert (trace.duplicates, trace.versions) == (n - 1, 1)  # the unchanged spans came again too
    (finding,) = flagged
    assert finding.severity == "high" and finding.span_id == span.span_id.hex()
    assert finding.details["first_digest"] != finding.details["version_digest"]
    assert _verify(path).ok


def _key_and_head(path: Path) -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    with Store(path, read_only=True) as store:
        return key, treehead.sign(treehead.current(store), key)


@pytest.mark.parametrize("cut", [3, 5])
def test_tail_truncation_is_caught_against_a_signed_tree_head(tmp_path: Path, cut: int) -> None:
    """Catches: deleting the last spans with their ledger rows and checkpoints (the issue's third report),
    which the database alone cannot show."""
    path = tmp_path / "w.duckdb"
    _ingest(path, [agent_run_request(tools=3), agent_run_request(tools=3)])
    key, note = _key_and_head(path)
    with Store(path) as store:
        top = queries.counts(store)["spans"]
        cur = store.cursor()
        for table in ("steps", "spans", "ledger"):
            cur.execute(f"DELETE FROM {table} WHERE seq > ?", [top - cut])
        cur.execute("DELETE FROM ledger_checkpoints WHERE tree_size > ?", [top - cut])
        cur.execute("DELETE FROM findings WHERE step_seq > ?", [top - cut])
    with Store(path, read_only=True) as store:
        heads = treehead.parse_log(note, key.public_key(), "head.txt")
        problems = treehead.check_extends(store, heads)
    assert problems[0].startswith(f"span ledger seq {top - cut + 1}..{top}: signed at ")
    assert problems[0].endswith("but missing (tail truncated)")


def test_signed_tree_head_holds_for_a_grown_ledger_and_refuses_an_edited_note(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    _ingest(path, [agent_run_request(tools=2)])
    key, note = _key_and_head(path)
    _ingest(path, [agent_run_request(tools=2)])
    with Store(path, read_only=True) as store:
        heads = treehead.parse_log(note + "\n" + note, key.public_key(), "log")
        assert len(heads) == 2 and treehead.check_extends(store, heads) == []
    forged = note.replace(f"\n{heads[0].size}\n", f"\n{heads[0].size - 1}\n", 1)
    with pytest.raises(WorkbenchError, match="signature does not hold"):
        treehead.parse_log(forged, key.public_key(), "log")


def test_checkpoint_log_service_appends_heads_that_verify(tmp_path: Path) -> None:
    """The serve-side log: heads appended outside the data directory hold against the ledger."""
    from workbench.store.checkpoint_log import CheckpointLogService

    path = tmp_path / "w.duckdb"
    _ingest(path, [agent_run_request(tools=1)])
    key, out = Ed25519PrivateKey.generate(), tmp_path / "outside" / "heads.log"
    out.parent.mkdir()
    with Store(path) as store:
        service = CheckpointLogService(store, key, out, "1", poll_s=0.05)
        service.start()
        service.stop()
        service.write_now()  # same size: not written twice
        heads = treehead.parse_log(out.read_text(), key.public_key(), str(out))
        assert [h.size for h in heads] == [queries.counts(store)["ledger"]]
        assert treehead.check_extends(store, heads) == []


def test_entries_chain_from_the_true_head_after_a_rollback_and_a_write_from_elsewhere(tmp_path: Path) -> None:
    """`entries.append` looks for the head from the last seq this process appended: an append rolled
    back, and entries appended through another connection, must still leave one gapless chain."""
    from workbench.store import entries

    def append(store: Store, ref: str, commit: bool = True) -> None:
        cur = store.cursor()
        cur.execute("BEGIN TRANSACTION")
        entries.append(cur, [(entries.ANNOTATION, ref, '{"a": 1}')], store)
        cur.execute("COMMIT" if commit else "ROLLBACK")

    path = tmp_path / "w.duckdb"
    with Store(path) as store:
        append(store, "1")
        append(store, "2")
        append(store, "rolled back", commit=False)  # the process remembers seq 3, which is not there
        append(store, "3")
    with Store(path) as other:  # another connection to the same file appends past what this one saw
        append(other, "4")
        append(other, "5")
    with Store(path) as store:
        append(store, "6")
        rows = store.cursor().execute("SELECT seq, ref FROM ledger_entries ORDER BY seq").fetchall()
        assert rows == [(i, str(i)) for i in range(1, 7)]
        from workbench.store.verify_derived import verify_entries

        count, _head, problems = verify_entries(store, 20)
        assert count == 6
        # The chain holds; the entries seal annotations that were never stored, and only that is said.
        assert [p for _, p in problems] == [
            f"annotation {i}: deleted (sealed by entry {i})" for i in range(1, 7)
        ]
