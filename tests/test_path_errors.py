"""Issue #14: every path a person gets wrong is one clear line and exit code 2, never a traceback, and
nothing is overwritten or half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from workbench.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_traces" / "weekly_report.json"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with one ingested trace, and a plain file `afile` beside it."""
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "ingest", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    (tmp_path / "afile").write_text("keep me\n")
    return tmp_path


CASES = {
    "export --out at an existing file": (["export", "--out", "{tmp}/afile"], "already exists"),
    "export --out at /dev/null": (["export", "--out", "/dev/null"], "already exists"),
    "export --out under a file": (["export", "--out", "{tmp}/afile/sub"], "is a file, not a directory"),
    "export --out zip under a file": (["export", "--out", "{tmp}/afile/b.zip"], "is a file, not a directory"),
    "ledger checkpoint --out under a file": (
        ["ledger", "checkpoint", "--out", "{tmp}/afile/head"],
        "is a file, not a directory",
    ),
    "export --out where no directory can be made": (["export", "--out", "/proc/nowhere/b"], "/proc"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_unusable_output_path_is_one_line_exit_2(data: Path, case: str) -> None:
    args, said = CASES[case]
    result = CliRunner().invoke(cli, ["--data-dir", str(data / "data"), *[a.format(tmp=data) for a in args]])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.output.startswith("Error: ") and said in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert (data / "afile").read_text() == "keep me\n"  # nothing overwritten


@pytest.mark.parametrize("command", [["traces"], ["ingest", str(SAMPLE)], ["ledger", "verify"]])
def test_a_data_dir_that_is_a_file_is_one_line_exit_2(tmp_path: Path, command: list[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    result = CliRunner().invoke(cli, ["--data-dir", str(afile), *command])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"Error: --data-dir {afile}: is a file, not a directory (give a directory; it is created if missing)"
    )
    assert afile.read_text() == "keep me\n"
