"""The one writer of benchmarks/RESULTS.md: every benchmark hands its section here.

Why one writer: a figure means little without the conditions it was measured in, and on a shared
2-core machine those conditions change by the minute. So every section carries the same facts (CPU
model, cores, memory, load average at the start and the end, the git commit and whether the working
tree had uncommitted files, the date), written the same way, and lands under its topic instead of at
the end of the file, newest run first, so a reader finds the latest ingest figure under "Ingest" and
the history beneath it.

The file's layout: a headline table on top (kept by hand: it judges each figure against its target),
then one `## ` heading per topic. Each topic holds its notes, then the marker line
`<!-- runs: KEY, newest first -->`, then its runs as `### TITLE, YYYY-MM-DD HH:MM UTC` sub-sections.
A new run goes right below the marker; a run with the same heading (a rerun in the same minute)
replaces the old one. A topic not in the file yet is added at the end, with its marker.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"

# Topic key -> its `## ` heading, in the order the file lists them.
TOPICS: dict[str, str] = {
    "ingest": "Ingest over OTLP/HTTP",
    "growth": "Growth: ingest and reads as the store grows",
    "phoenix": "Workbench vs Arize Phoenix",
    "findings": "Findings scan",
    "replay": "Replay and the UI",
    "export": "Export and verify",
    "probes": "Probes: full suite vs a forward pass",
    "probe-worker": "Probe worker: serve during a probe job, stop mid-job",
    "event-join": "GenAI event join",
    "lake": "Lake mode: nodes over one DuckLake, and where it stops scaling",
    "listing": "Listing and search at scale",
}


def marker(topic: str) -> str:
    return f"<!-- runs: {topic}, newest first -->"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def cpu_model() -> str:
    """The CPU's marketing name: /proc/cpuinfo on Linux (platform.processor() is empty there)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info() -> dict[str, Any]:
    """The machine and code a figure was measured on (also stored in raw result files)."""
    return {
        "arch": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "workbench_commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        # Benchmarks run the working tree: uncommitted changes count too.
        "workbench_uncommitted_files": len(_git("status", "--porcelain").splitlines()),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class Run:
    """Made at the start of a benchmark: the start time and load, which the section reports with the end."""

    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_start: list[float] = field(default_factory=loadavg)
    machine: dict[str, Any] = field(default_factory=machine_info)

    def conditions(
        self, versions: Mapping[str, str] | None = None, load_end: list[float] | None = None
    ) -> str:
        """The "Machine:" paragraph every section starts with."""
        m = self.machine
        end = load_end if load_end is not None else loadavg()
        libs = "".join(f", {name} {version}" for name, version in (versions or {}).items())
        dirty = m["workbench_uncommitted_files"]
        tree = f" + {dirty} uncommitted file(s)" if dirty else ""
        return (
            f"Machine: {m['cpu']}, {m['arch']}, {m['cores']} cores, {m['memory_gib']} GiB; "
            f"Python {m['python']}{libs}; commit {m['workbench_commit']}{tree}. "
            f"Load average (1/5/15 min): {'/'.join(map(str, self.load_start))} at the start, "
            f"{'/'.join(map(str, end))} at the end."
        )

    def section(self, title: str, body: str, versions: Mapping[str, str] | None = None) -> str:
        """`### TITLE, date UTC`, the conditions, then the benchmark's own text."""
        return (
            f"### {title}, {self.started:%Y-%m-%d %H:%M} UTC\n\n"
            f"{self.conditions(versions)}\n\n{body.strip(chr(10))}\n"
        )


def insert_section(text: str, topic: str, section: str) -> str:
    """`text` with `section` placed first under `topic`'s marker (replacing a run of the same heading)."""
    heading = section.splitlines()[0]
    lines = text.rstrip("\n").split("\n") if text.strip() else ["# Benchmark results"]
    # A rerun in the same minute replaces the old run: drop it (up to the next heading of level <= 3).
    if heading in lines:
        start = lines.index(heading)
        end = start + 1
        while end < len(lines) and not lines[end].startswith(("# ", "## ", "### ", "<!-- runs:")):
            end += 1
        del lines[start:end]
    mark = marker(topic)
    if mark not in lines:
        lines += ["", f"## {TOPICS.get(topic, topic)}", "", mark]
    at = lines.index(mark) + 1
    new = ["", *section.rstrip("\n").split("\n")]
    lines[at:at] = new
    return "\n".join(lines) + "\n"


def write_section(topic: str, section: str, path: Path = RESULTS) -> None:
    """Put `section` under `topic` in the results file (see the module's docstring for the layout)."""
    if topic not in TOPICS:
        raise ValueError(f"unknown benchmark topic {topic!r}; add it to benchmarks/report.py TOPICS")
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(insert_section(existing, topic, section), encoding="utf-8")


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark shares: print only, or write to another results file."""
    parser.add_argument(
        "--no-write", "--no-append", action="store_true", help="print only; leave RESULTS.md alone"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results file to write")


def publish(args: argparse.Namespace, topic: str, section: str) -> None:
    """Print the section, and write it unless --no-write."""
    print(section)
    if not args.no_write:
        write_section(topic, section, args.results)
        print(f"written under '{TOPICS[topic]}' in {args.results}")
