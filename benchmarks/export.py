"""Export and verify throughput for a 100,000-span range, against `sha256sum` over the same files.

The data: `python -m sample_traces.long_trace` writes one 100,000-step trace, loaded into a fresh data
directory with `workbench ingest` (direct, no server). Timed, each in this process: `export` without
redaction, `export` with the default redaction, and `verify` of the unredacted bundle. The limit is
`sha256sum` over exactly the bundle's files, run in the same session: a verifier must at least read and
hash every byte once. Results are appended to benchmarks/RESULTS.md with the machine and date.

    python benchmarks/export.py [--steps 100000] [--no-write] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.integrity import stored_columns_check  # noqa: E402
from workbench.cli.loading import ingest_files  # noqa: E402
from workbench.export import ExportOptions, export_bundle, verify_bundle  # noqa: E402
from workbench.export.redact import parse_kinds  # noqa: E402
from workbench.settings import Settings  # noqa: E402
from workbench.store.connection import Store  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def timed(fn: object) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result): CPU shows what a busy shared machine hides."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()  # type: ignore[operator]
    return time.perf_counter() - w, time.process_time() - c, out


def sha256sum(files: list[Path]) -> tuple[float, float]:
    """(wall, CPU) seconds of `sha256sum` over the files."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["sha256sum", *map(str, files)], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--keep", type=Path, help="reuse (or create) this data directory instead of a temp one")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="wb-export-bench-"))
    data = args.keep or work / "data"
    settings = Settings.from_env({}, data_dir=data)
    try:
        if not settings.db_path.exists():
            trace = work / "long.pb"
            subprocess.run(
                [sys.executable, "-m", "sample_traces.long_trace", str(trace), "--steps", str(args.steps)],
                check=True,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            ingest_files(settings, [trace])
        Store(settings.db_path).close()  # migrate once, read-write
        check = stored_columns_check()

        def export(out: Path, kinds: tuple[str, ...]) -> object:
            with Store(settings.db_path, read_only=True) as store:
                return export_bundle(store, data, ExportOptions(out=out, redact_kinds=kinds, row_check=check))

        plain, redacted = work / "plain", work / "redacted"
        t_exp, c_exp, res = timed(lambda: export(plain, ()))
        spans = res.counts["spans"]  # type: ignore[attr-defined]
        t_red, c_red, res_red = timed(lambda: export(redacted, parse_kinds("all")))
        files = sorted(p for p in plain.iterdir() if p.is_file())
        size = sum(p.stat().st_size for p in files)
        runs = [sha256sum(files) for _ in range(3)]
        t_ver, c_ver, result = timed(lambda: verify_bundle(plain, jobs=1))
        assert result.ok, [str(p) for p in result.problems[:5]]  # type: ignore[attr-defined]
        jobs = os.cpu_count() or 1
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t_par, c_par, result = timed(lambda: verify_bundle(plain, jobs=jobs))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert result.ok, [str(p) for p in result.problems[:5]]  # type: ignore[attr-defined]
        c_workers = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        runs += [sha256sum(files) for _ in range(3)]
        t_sha, c_sha = min(r[0] for r in runs), min(r[1] for r in runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = size / 1e6
    now = datetime.now(UTC)
    report = "\n".join(
        [
            f"### Export and verify, {now:%Y-%m-%d %H:%M} UTC",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
            f"{spans:,} spans (one long trace), bundle {mb:.0f} MB unredacted "
            f"({res_red.counts['redactions']:,} values masked in the redacted one). "  # type: ignore[attr-defined]
            "Wall time on a machine shared with other work, so CPU time (this process; sha256sum's own) "
            "is the fairer ratio.",
            "",
            "| measure | wall | CPU | spans/s (CPU) | MB/s (CPU) | vs sha256sum (wall) | vs sha256sum "
            "(CPU) |",
            "|---|---|---|---|---|---|---|",
            f"| export, no redaction | {t_exp:.1f} s | {c_exp:.1f} s | {spans / c_exp:,.0f} | "
            f"{mb / c_exp:.1f} | | |",
            f"| export, redaction on | {t_red:.1f} s | {c_red:.1f} s | {spans / c_red:,.0f} | | | |",
            f"| verify --jobs {jobs} | {t_par:.1f} s | {c_par:.1f} s + workers {c_workers:.1f} s "
            f"| | | {t_sha / t_par:.3f}x | main process {c_sha / c_par:.3f}x |",
            f"| verify (unredacted bundle), one process | {t_ver:.1f} s | {c_ver:.1f} s | "
            f"{spans / c_ver:,.0f} "
            f"| {mb / c_ver:.1f} | {t_sha / t_ver:.3f}x | {c_sha / c_ver:.3f}x |",
            f"| limit: sha256sum over the same files | {t_sha:.2f} s | {c_sha:.2f} s | {spans / c_sha:,.0f} "
            f"| {mb / c_sha:.1f} | 1.000x | 1.000x |",
            "",
        ]
    )
    print(report)
    if not args.no_write:
        existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
        RESULTS.write_text(existing.rstrip("\n") + "\n\n" + report)


if __name__ == "__main__":
    main()
