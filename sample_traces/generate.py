"""Regenerate the sample traces, check them, or run the scripted agents live against a workbench.

    python -m sample_traces.generate                  # rewrite sample_traces/*.json
    python -m sample_traces.generate --check          # exit 1 if a committed file differs
    python -m sample_traces.generate --out DIR        # write elsewhere (the tests do)
    python -m sample_traces.generate --live http://127.0.0.1:4318 [--pace 0.1]

The files are reproducible byte for byte (scripted clock, seeded ids), so a diff in review is a change
in what the scenarios do, never noise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from sample_traces.catalog import SAMPLES, SAMPLES_DIR, Sample
from sample_traces.recording import record_file, record_live


def generate(out_dir: Path, samples: Iterable[Sample] = SAMPLES) -> list[Path]:
    """Write each sample's OTLP JSON file into out_dir; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in samples:
        target = out_dir / sample.file
        target.write_bytes(record_file(sample.name, sample.scenario))
        written.append(target)
    return written


def stale(samples: Iterable[Sample] = SAMPLES) -> list[str]:
    """Names of the samples whose committed file differs from what their scenario produces now."""
    return [
        s.name
        for s in samples
        if not s.path.exists() or s.path.read_bytes() != record_file(s.name, s.scenario)
    ]


def run_live(
    endpoint: str,
    *,
    pace: float = 0.1,
    headers: dict[str, str] | None = None,
    samples: Iterable[Sample] = SAMPLES,
    progress: Callable[[Sample], None] | None = None,
) -> None:
    """Run every scripted agent now, exporting over OTLP/HTTP to a running `workbench serve`."""
    for sample in samples:
        if progress is not None:
            progress(sample)
        record_live(sample.scenario, endpoint, pace=pace, headers=headers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sample_traces.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR, help="folder to write the files to")
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead")
    parser.add_argument("--live", metavar="URL", help="send the runs to a workbench's OTLP/HTTP endpoint")
    parser.add_argument("--pace", type=float, default=0.1, help="live: real seconds per scripted second")
    parser.add_argument("names", nargs="*", help="only these samples (default: all)")
    args = parser.parse_args(argv)
    chosen = [s for s in SAMPLES if not args.names or s.name in args.names]
    if args.check:
        different = stale(chosen)
        for name in different:
            print(f"{name}: committed file differs from the scenario; run python -m sample_traces.generate")
        return 1 if different else 0
    if args.live:
        run_live(args.live, pace=args.pace, samples=chosen, progress=lambda s: print(f"running {s.name}"))
        return 0
    for path in generate(args.out, chosen):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
