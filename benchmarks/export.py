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
    ap.add_argument("--skip-redacted", action="store_true", help="do not time the redacted export")
    report.add_output_args(ap)
    args = ap.parse_args()
    run = report.Run()

    work = Path(tempfile.mkdtemp(prefix="wb-export-bench-"))
    data = args.keep or work / "data"
    settings = Settings.from_env({}, data_dir=data)
    jobs = os.cpu_count() or 1
    t_ing = c_ing = None
    try:
        if not settings.db_path.exists():
            trace = work / "long.pb"
            subprocess.run(
                [sys.executable, "-m", "sample_traces.long_trace", str(trace), "--steps", str(args.steps)],
                check=True,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            t_ing, c_ing, _ = timed(lambda: ingest_files(settings, [trace]))
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
        t_red = c_red = None
        if not args.skip_redacted:
            t_red, c_red, _ = timed(lambda: export(redacted, parse_kinds("all")))
        files = sorted(p for p in plain.iterdir() if p.is_file())
        size = sum(p.stat().st_size for p in files)
        pb_mb = (plain / "spans.pb").stat().st_size / 1e6
        runs = [sha256sum(files) for _ in range(3)]
        # One process, no normalizer: the cryptographic checks, then the JSON lines against spans.pb.
        t_ver, c_ver, single = timed(lambda: verify_bundle(plain, jobs=1))
        assert single.ok, [str(p) for p in single.problems[:5]]  # type: ignore[attr-defined]
        crypto_wall, crypto_cpu = single.seconds["crypto"], single.cpu_seconds["crypto"]  # type: ignore[attr-defined]
        lines_1 = single.seconds["derive"]  # type: ignore[attr-defined]
        # Every core: JSON lines and steps re-derived from the sealed bytes (its own figure).
        derived = verify_bundle(
            plain, jobs=jobs, derive=step_from_canonical, normalizer_version=NORMALIZER_VERSION
        )
        assert derived.ok, [str(p) for p in derived.problems[:5]]
        t_derive = derived.seconds["derive"]
        runs += [sha256sum(files) for _ in range(3)]
        t_sha, c_sha = min(r[0] for r in runs), min(r[1] for r in runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = size / 1e6
    ingest_row = (
        f"| ingest of the same spans (`workbench ingest`, direct) | {t_ing:.1f} s | {c_ing:.1f} s | "
        f"{spans / t_ing:,.0f} (wall) | | | |"
        if t_ing is not None and c_ing is not None
        else "| ingest of the same spans | (data directory reused: not timed) | | | | | |"
    )
    red_row = (
        f"| export, redaction on | {t_red:.1f} s | {c_red:.1f} s | {spans / c_red:,.0f} | | | |"
        if t_red is not None and c_red is not None
        else "| export, redaction on | (not run: --skip-redacted) | | | | | |"
    )
    body = "\n".join(
        [
            f"{spans:,} spans (one long trace), bundle {mb:.0f} MB unredacted, of which spans.pb (the "
            f"canonical bytes) {pb_mb:.0f} MB. Wall time on a machine shared with other work, so CPU time "
            "(this process; sha256sum's own) is the fairer ratio.",
            "",
            "| measure | wall | CPU | spans/s | MB/s (CPU) | vs sha256sum (wall) | vs sha256sum (CPU) |",
            "|---|---|---|---|---|---|---|",
            f"| export, no redaction | {t_exp:.1f} s | {c_exp:.1f} s | {spans / c_exp:,.0f} (CPU) | "
            f"{mb / c_exp:.1f} | | |",
            red_row,
            f"| verify: cryptographic checks (signature, file hashes, span digests, chain, proofs), one "
            f"process | {crypto_wall:.2f} s | {crypto_cpu:.2f} s | {spans / crypto_cpu:,.0f} (CPU) | "
            f"{mb / crypto_cpu:.1f} | {t_sha / crypto_wall:.3f}x | {c_sha / crypto_cpu:.3f}x |",
            f"| verify: JSON lines proven equal to spans.pb, one process | {lines_1:.1f} s | | "
            f"{spans / lines_1:,.0f} (wall) | | | |",
            f"| verify, whole call, one process, no normalizer | {t_ver:.1f} s | {c_ver:.1f} s | | | | |",
            f"| verify: re-derivation (JSON lines + steps), --jobs {jobs} | {t_derive:.1f} s | | "
            f"{spans / t_derive:,.0f} (wall) | | | |",
            ingest_row,
            f"| limit: sha256sum over the same files | {t_sha:.2f} s | {c_sha:.2f} s | "
            f"{spans / c_sha:,.0f} (CPU) | {mb / c_sha:.1f} | 1.000x | 1.000x |",
            "",
        ]
    )
    report.publish(args, "export", run.section("Export and verify", body))


if __name__ == "__main__":
    main()
