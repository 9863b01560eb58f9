"""`workbench demo-cluster` end to end, as a user runs it: real PostgreSQL, real `workbench serve --lake`
nodes, the sample incidents over OTLP/HTTP. The verdict line is checked against what the lake holds
(read here, independently), and Ctrl-C must stop the nodes and PostgreSQL and print nothing after it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors import decode
from collectors.files import read_requests
from sample_traces.catalog import SAMPLES
from workbench.settings import Settings
from workbench.store import lake

pytestmark = pytest.mark.slow

VERDICT = re.compile(r"^cluster: (\d+) nodes, (\d+) spans, all queryable: (.+), ledger verify: (\S+)$")


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """Under the system temp dir, not pytest's (0700, closed to the user PostgreSQL runs as when root)."""
    root = Path(tempfile.mkdtemp(prefix="workbench-cluster-"))
    root.chmod(0o755)  # mkdtemp makes it 0700; the PostgreSQL user must reach DIR/pg below it
    try:
        yield root / "cluster"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _sample_spans() -> int:
    return sum(decode.count_spans(req) for s in SAMPLES for _, req, _ in read_requests(s.path))


# The watchdog below (540 s) is the limit for a slow start beside other test workers; pytest's default
# of 300 s must not cut it short and hide its message.
@pytest.mark.timeout(600)
def test_demo_cluster_reports_what_the_lake_holds_and_stops_on_ctrl_c(cluster_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update({"WORKBENCH_DECODE_WORKERS": "0", "WORKBENCH_DATA_DIR": str(cluster_dir.parent / "wb")})
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "demo-cluster", "--dir", str(cluster_dir), "--keep-running"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[str] = []
    drain = threading.Thread(target=lambda: errors.extend(proc.stderr or []), daemon=True)
    drain.start()
    lines: list[str] = []
    watchdog = threading.Timer(540, proc.kill)  # a hung start fails the test instead of hanging it
    watchdog.start()
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if VERDICT.match(lines[-1]):
                break
        verdict = VERDICT.match(lines[-1]) if lines else None
        assert verdict, f"no verdict line; stdout:\n{chr(10).join(lines)}\nstderr:\n{''.join(errors)}"
        nodes, spans, seen, verified = verdict.groups()
        assert (nodes, seen, verified) == ("2", "yes", "ok"), lines

        dsn = next(line.split(": ", 1)[1] for line in lines if line.startswith("catalog: "))
        reader = Settings(
            data_dir=cluster_dir.parent / "test-reader", lake=dsn, data_path=str(cluster_dir / "data")
        )
        with lake.open_lake(reader, read_only=True) as store:
            cur = store.cursor()
            held = cur.execute("SELECT count(*) FROM spans").fetchone()
            assert held is not None
            assert int(spans) == held[0] == _sample_spans()
            # every trace was dealt to both nodes: each trace's seqs come from both nodes' slices
            seqs = cur.execute("SELECT trace_id, list(seq) FROM spans GROUP BY trace_id").fetchall()
        assert len(seqs) == len(SAMPLES)
        for trace_id, trace_seqs in seqs:
            assert {lake.split_seq(s)[0] for s in trace_seqs} == {1, 2}, trace_id

        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        assert proc.wait(120) == 0, "".join(errors)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rest.strip() == "", f"printed after the verdict: {rest!r}"
    assert not (cluster_dir / "pg" / "data" / "postmaster.pid").exists()  # PostgreSQL stopped
    logs = [(cluster_dir / "nodes" / n / "serve.log").read_text() for n in ("n1", "n2")]
    assert all(re.search(r"^stopped$", log, re.MULTILINE) for log in logs)  # each node shut down cleanly
