"""benchmarks/report.py puts each run under its topic, newest first, and a rerun replaces its own run;
tests/polling.py's wait_for returns what it waited for and names it when it times out."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import report
from tests.polling import wait_for

LAYOUT = f"""# Benchmark results

| what | latest | target | section |
|---|---|---|---|

## Ingest over OTLP/HTTP

Notes that stay above the runs.

{report.marker("ingest")}

### Ingest over OTLP/HTTP, 2026-11-25 23:02 UTC

old run

## Findings scan

{report.marker("findings")}

### Findings scan, 2026-11-26 00:13 UTC

findings run
"""


def _run(day: str) -> report.Run:
    from datetime import UTC, datetime

    machine = {
        "arch": "x86_64",
        "cpu": "Test CPU",
        "cores": 2,
        "memory_gib": 4.0,
        "python": "3.11",
        "workbench_commit": "abc1234",
        "workbench_uncommitted_files": 0,
    }
    return report.Run(datetime.fromisoformat(f"{day}+00:00").astimezone(UTC), [1.0, 2.0, 3.0], machine)


def test_a_run_goes_first_under_its_topic_and_a_rerun_replaces_it(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(LAYOUT)
    first = _run("2026-12-01T10:00").section("Ingest over OTLP/HTTP", "| a | 1 |", {"DuckDB": "2.0"})
    report.write_section("ingest", first, results)
    text = results.read_text()
    assert text.index("Notes that stay") < text.index("2026-12-01 10:00") < text.index("old run")
    assert text.index("old run") < text.index("## Findings scan")  # not appended at the end
    assert "Test CPU, x86_64, 2 cores, 4.0 GiB; Python 3.11, DuckDB 2.0; commit abc1234." in text
    assert "Load average (1/5/15 min): 1.0/2.0/3.0 at the start" in text

    again = _run("2026-12-01T10:00").section("Ingest over OTLP/HTTP", "| a | 2 |")
    report.write_section("ingest", again, results)
    text = results.read_text()
    assert text.count("### Ingest over OTLP/HTTP, 2026-12-01 10:00 UTC") == 1
    assert "| a | 2 |" in text and "| a | 1 |" not in text
    assert "old run" in text and "findings run" in text and "\n\n\n" not in text


def test_a_topic_not_in_the_file_yet_is_added_with_its_marker(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(LAYOUT)
    report.write_section("probes", _run("2026-12-02T08:00").section("Probes", "body"), results)
    text = results.read_text()
    assert text.index("findings run") < text.index(f"## {report.TOPICS['probes']}")
    assert text.index(report.marker("probes")) < text.index("### Probes, 2026-12-02 08:00 UTC")
    with pytest.raises(ValueError, match="unknown benchmark topic"):
        report.write_section("no-such-topic", "### x", results)


def test_wait_for_returns_the_value_and_names_what_it_waited_for() -> None:
    calls = iter([None, 0, "ready"])
    assert wait_for(lambda: next(calls), 5, 0.001, "the third call") == "ready"
    with pytest.raises(AssertionError, match=r"waiting for the impossible:\nwhy it never came"):
        wait_for(lambda: False, 0.01, 0.001, "the impossible", details=lambda: "why it never came")
