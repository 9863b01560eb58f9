"""Bundles carry the sealed GenAI log records their steps were joined with, so offline `workbench verify`
re-derives a step filled from events exactly as ingest did (collectors.events), and names a tampered
record by file and line.

The traces are captured event-mode fixtures (Google ADK EVENT_ONLY, logs first; OpenLLMetry event mode),
ingested from OTLP/JSON files as their exporters would have sent them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.fixture_otlp import logs_request, trace_id, traces_request
from workbench.cli import cli
from workbench.cli.loading import ingest_files
from workbench.export import signing
from workbench.export.bundle_files import varint
from workbench.export.verify_base import records
from workbench.settings import Settings

ADK = "adk_genai_event_only.json"
LOOP = "traceloop_event.json"


@pytest.fixture
def joined_db(tmp_path: Path) -> Settings:
    """Both fixtures ingested: ADK's logs before its spans, OpenLLMetry's spans before its logs."""
    files = tmp_path / "otlp"
    files.mkdir()
    (files / "1-adk-logs.json").write_bytes(logs_request(ADK))
    (files / "2-adk-traces.json").write_bytes(traces_request(ADK))
    (files / "3-loop-traces.json").write_bytes(traces_request(LOOP))
    (files / "4-loop-logs.json").write_bytes(logs_request(LOOP))
    settings = Settings(data_dir=tmp_path / "data")
    totals = ingest_files(settings, sorted(files.iterdir()))
    assert totals.rejected == 0, totals.errors
    return settings


def _export(settings: Settings, out: Path, *extra: str) -> None:
    args = ["--data-dir", str(settings.data_dir), "export", "--out", str(out), *extra]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output


def _verify(settings: Settings, bundle: Path) -> dict[str, object]:
    pinned = str(signing.public_key_path(settings.data_dir))
    res = CliRunner().invoke(cli, ["verify", str(bundle), "--json", "--pubkey", pinned])
    report: dict[str, object] = json.loads(res.output)
    assert (res.exit_code == 0) == report["ok"], res.output
    return report


def test_a_bundle_of_joined_steps_carries_its_log_records_and_verifies(
    joined_db: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    _export(joined_db, out, "--no-redact")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema_version"] == 3
    assert manifest["logs"]["records"] == 2 + 8 and manifest["logs"]["withheld"] == 0  # ADK 2, OpenLLMetry 8
    assert {"logs.pb", "logs.jsonl"} <= set(manifest["files"])
    lines = [json.loads(x) for x in (out / "logs.jsonl").read_text().splitlines()]
    assert {x["trace_id"] for x in lines} == {trace_id(ADK), trace_id(LOOP)}
    assert [x["seq"] for x in lines] == sorted(x["seq"] for x in lines)

    report = _verify(joined_db, out)
    assert report["ok"], report["problems"]
    checked = report["checked"]
    assert isinstance(checked, dict) and checked["logs"] == 10 and checked["steps"] == 9
    import pyarrow.parquet as pq

    joined = [r for r in pq.read_table(out / "steps.parquet").to_pylist() if r["event_fields"]]
    assert len(joined) >= 5  # the steps really were filled from events (and so re-derived with them)


def test_without_its_log_records_a_joined_step_would_not_re_derive(
    joined_db: Settings, tmp_path: Path
) -> None:
    """The records are what make the steps verifiable: drop them (and re-sign, as a forger could not
    without the key) and the joined steps are reported, by trace, step and field."""
    from collectors.normalize import NORMALIZER_VERSION, step_from_canonical
    from workbench.export import verify_bundle

    out = tmp_path / "bundle"
    _export(joined_db, out, "--no-redact", "--trace", trace_id(LOOP))
    (out / "logs.pb").unlink()
    (out / "logs.jsonl").unlink()
    result = verify_bundle(out, derive=step_from_canonical, normalizer_version=NORMALIZER_VERSION)
    said = [str(p) for p in result.problems]
    assert any("logs.pb" in p and "missing" in p for p in said), said
    assert any("steps.parquet" in p and "field input_text" in p for p in said), said


def test_a_tampered_log_record_is_named_by_file_and_line(joined_db: Settings, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    _export(joined_db, out, "--no-redact", "--trace", trace_id(LOOP))
    blob = (out / "logs.pb").read_bytes()
    recs = list(records(iter([blob])))
    assert len(recs) == 8
    # the third record (the first gen_ai.choice, holding the DROP TABLE tool call) says something else
    assert b"DROP TABLE users" in recs[2]
    recs[2] = recs[2].replace(b"DROP TABLE users", b"SELECT 1 FROM us")
    (out / "logs.pb").write_bytes(b"".join(varint(len(r)) + r for r in recs))

    report = _verify(joined_db, out)
    problems = report["problems"]
    assert isinstance(problems, list) and not report["ok"]
    named = [p for p in problems if p["file"] == "logs.pb" and p["line"] == 3]
    assert named and "does not hash to its ledger digest" in named[0]["problem"], problems
    assert any(p["file"] == "logs.pb" and "SHA-256/size differ" in p["problem"] for p in problems), problems


def test_redaction_withholds_only_records_with_something_to_mask(joined_db: Settings, tmp_path: Path) -> None:
    """Nothing in these records is sensitive, so a redacting export carries them all and verifies."""
    out = tmp_path / "bundle"
    _export(joined_db, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["redaction"]["enabled"] and manifest["logs"]["withheld"] == 0
    report = _verify(joined_db, out)
    assert report["ok"], report["problems"]


def test_a_record_with_something_to_mask_is_withheld_and_its_joined_steps_are_noted(tmp_path: Path) -> None:
    files = tmp_path / "otlp"
    files.mkdir()
    (files / "1-traces.json").write_bytes(traces_request(LOOP))
    doc = json.loads(logs_request(LOOP))
    leaked = dict(doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][1])  # a user message of the 1st call
    leaked["body"] = {
        "kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "mail bob@example.com"}}]}
    }
    doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"].append(leaked)
    (files / "2-logs.json").write_text(json.dumps(doc))
    settings = Settings(data_dir=tmp_path / "data")
    assert ingest_files(settings, sorted(files.iterdir())).rejected == 0

    out = tmp_path / "bundle"
    _export(settings, out)  # redaction on (the default)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["logs"]["records"] == 9 and manifest["logs"]["withheld"] == 1
    assert b"bob@example.com" not in (out / "logs.pb").read_bytes()
    lines = [json.loads(x) for x in (out / "logs.jsonl").read_text().splitlines()]
    assert [x["withheld"] for x in lines] == [False] * 8 + [True]
    report = _verify(settings, out)
    assert report["ok"], report["problems"]
    notes = report["notes"]
    assert isinstance(notes, list) and any("were not re-derived" in n and "withheld" in n for n in notes), (
        notes
    )
