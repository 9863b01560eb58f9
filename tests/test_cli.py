"""The CLI in-process with click's CliRunner, on real files and a real database."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from click.testing import CliRunner
from google.protobuf import json_format

from tests.sdk_spans import agent_run_request
from workbench.cli import cli
from workbench.settings import describe

README = Path(__file__).resolve().parent.parent / "README.md"


def _otlp_json(path: Path, tools: int = 3) -> Path:
    """An OTLP/JSON file as the spec writes it: hex ids, camelCase keys."""
    doc = json_format.MessageToDict(agent_run_request(tools))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        import base64

                        span[key] = base64.b64decode(span[key]).hex()
    path.write_text(json.dumps(doc))
    return path


def test_ingest_traces_replay_roundtrip(tmp_path: Path) -> None:
    runner = CliRunner()
    plain = _otlp_json(tmp_path / "run.json")
    zipped = tmp_path / "run2.pb.gz"
    zipped.write_bytes(gzip.compress(agent_run_request(2).SerializeToString()))
    result = runner.invoke(cli, ["ingest", str(plain), str(zipped)])
    assert result.exit_code == 0, result.output
    assert "ingested 12 spans from 2 file(s)" in result.output

    listed = runner.invoke(cli, ["traces", "--json"])
    traces = json.loads(listed.output)
    assert sorted(t["span_count"] for t in traces) == [5, 7]

    seven = next(t for t in traces if t["span_count"] == 7)
    text = runner.invoke(cli, ["replay", seven["trace_id"][:8]])
    assert text.exit_code == 0, text.output
    assert "TOOL" in text.output and 'run_sql({"query": "SELECT 1"})' in text.output
    assert "reasoning  think 2" in text.output
    assert "tokens     in 102, out 12" in text.output
    assert "error      permission denied" in text.output

    as_json = json.loads(runner.invoke(cli, ["replay", seven["trace_id"], "--json"]).output)
    kinds = [s["kind"] for s in as_json["steps"]]
    assert kinds.count("tool") == 3 and kinds.count("llm") == 3 and kinds[0] == "agent"


def test_ingest_reports_a_bad_file_and_keeps_the_good_one(tmp_path: Path) -> None:
    runner = CliRunner()
    good = _otlp_json(tmp_path / "good.json")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"resourceSpans": []}\n{"resourceSpans": [ broken\n')
    result = runner.invoke(cli, ["ingest", str(bad), str(good)])
    assert result.exit_code == 0
    assert "ingested 7 spans" in result.output
    assert "bad.jsonl:2: malformed JSON" in result.output


def test_read_commands_on_a_missing_database_say_so() -> None:
    result = CliRunner().invoke(cli, ["traces"])
    assert result.exit_code == 1
    assert "no workbench database" in result.output
    assert "Traceback" not in result.output


def test_renormalize_rederives_steps(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["ingest", str(_otlp_json(tmp_path / "run.json"))])
    result = runner.invoke(cli, ["renormalize"])
    assert result.exit_code == 0, result.output
    assert "renormalized 7 steps" in result.output


def test_readme_documents_every_setting_and_command() -> None:
    text = README.read_text()
    for variable, _, _ in describe():
        assert f"`{variable}`" in text, f"{variable} is missing from README.md"
    for name, command in cli.commands.items():
        assert f"`workbench {name}" in text, f"`workbench {name}` is missing from README.md"
        for sub in getattr(command, "commands", {}):
            assert f"`workbench {name} {sub}" in text
    assert re.search(r"make demo", text) and re.search(r"make test", text)
