"""The CLI in-process with click's CliRunner, on real files and a real database."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

import click
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


def _readme_rows(text: str) -> dict[tuple[str, ...], str]:
    """Each CLI reference row by the command path its first cell names: `workbench findings eval [DIR]`
    is ("findings", "eval")."""
    rows: dict[tuple[str, ...], str] = {}
    for line in text.splitlines():
        found = re.match(r"\| `workbench ([^`]*)`", line)
        if not found:
            continue
        path: list[str] = []
        command: click.Command = cli
        for word in found.group(1).split():
            sub = command.commands.get(word) if isinstance(command, click.Group) else None
            if sub is None:
                break
            path.append(word)
            command = sub
        rows[tuple(path)] = rows.get(tuple(path), "") + line
    return rows


def _command_tree(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _command_tree(command, (*path, name))


def _flags(command: click.Command) -> list[str]:
    return [
        flag
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden
        for flag in (*param.opts, *param.secondary_opts)
        if flag != "--help"
    ]


def test_readme_documents_every_setting_command_and_option() -> None:
    """Walks the whole click tree: every command and subcommand has a row in the CLI reference, and every
    option of each appears in its row (the global ones in the line that gives them)."""
    text = README.read_text()
    for variable, _, _ in describe():
        assert f"`{variable}`" in text, f"{variable} is missing from README.md"
    rows = _readme_rows(text)
    missing = []
    for path, command in _command_tree(cli):
        name = " ".join(path)
        if isinstance(command, click.Group) and not command.invoke_without_command and not _flags(command):
            continue  # `workbench ledger` alone only lists its subcommands
        if path not in rows:
            missing.append(f"`workbench {name}` has no row")
            continue
        missing += [f"`workbench {name}` lacks {flag}" for flag in _flags(command) if flag not in rows[path]]
    global_line = next(line for line in text.splitlines() if line.startswith("Global options"))
    missing += [f"global option {flag}" for flag in _flags(cli) if flag not in global_line]
    assert not missing, "README.md's CLI reference is missing:\n" + "\n".join(missing)
    assert re.search(r"make demo", text) and re.search(r"make test", text)
