"""Export and verify throughput for a 100,000-span range, against `sha256sum` over the same files.

The data: `python -m sample_traces.long_trace` writes one 100,000-step trace, loaded into a fresh data
directory with `workbench ingest` (direct, no server). Timed, each in this process: `export` without
redaction, `export` with the default redaction, and `verify` of the unredacted bundle. The limit is
`sha256sum` over exactly the bundle's files, run in the same session: a verifier must at least read and
hash every byte once. The section goes under "Export and verify" in benchmarks/RESULTS.md
(benchmarks/report.py).

    python benchmarks/export.py [--steps 100000] [--no-write] [--results FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from collectors.integrity import step_deriver, stored_columns_check  # noqa: E402
from collectors.normalize import NORMALIZER_VERSION, step_from_canonical  # noqa: E402
from workbench.cli.loading import ingest_files  # noqa: E402
from workbench.export import ExportOptions, export_bundle, verify_bundle  # noqa: E402
from workbench.export.redact import parse_kinds  # noqa: E402
from workbench.settings import Settings  # noqa: E402
from workbench.store.connection import Store  # noqa: E402


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
    ap.add_argument("--keep", type=Path, help="reuse (or create) this data directory instead of a temp one")
    report.add_output_args(ap)
    args = ap.parse_args()
    run = report.Run()

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
                return export_bundle(
                    store,
                    data,
                    ExportOptions(
                        out=out,
                        redact_kinds=kinds,
                        row_check=check,
                        derive=step_deriver(store),
                        normalizer_version=NORMALIZER_VERSION,
                    ),
                )

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
        # The steps re-derived from their spans: its own figure (the crypto checks above do not include it).
        derived = verify_bundle(
            plain, jobs=jobs, derive=step_from_canonical, normalizer_version=NORMALIZER_VERSION
        )
        assert derived.ok, [str(p) for p in derived.problems[:5]]
        t_steps, t_crypto_all = derived.seconds["steps"], derived.seconds["crypto"]
        runs += [sha256sum(files) for _ in range(3)]
        t_sha, c_sha = min(r[0] for r in runs), min(r[1] for r in runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = size / 1e6
    body = "\n".join(
        [
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
            f"| step re-derivation, --jobs {jobs} (wall, beside crypto {t_crypto_all:.1f} s in the same run) "
            f"| {t_steps:.1f} s | | {spans / t_steps:,.0f} (wall) | | | |",
            f"| limit: sha256sum over the same files | {t_sha:.2f} s | {c_sha:.2f} s | {spans / c_sha:,.0f} "
            f"| {mb / c_sha:.1f} | 1.000x | 1.000x |",
            "",
        ]
    )
    report.publish(args, "export", run.section("Export and verify", body))


if __name__ == "__main__":
    main()
