"""Nodes that start at the same moment over an empty catalog all join the lake (real PostgreSQL).

DuckLake creates its own catalog tables at the first ATTACH; when two processes do that at once, one of
them loses PostgreSQL's race with a duplicate-key error. A node must then attach again, not die."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from workbench.settings import Settings
from workbench.store import lake

_OPEN = """
import sys
from pathlib import Path
from workbench.settings import Settings
from workbench.store import lake
root, dsn, node = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
s = Settings(data_dir=root / node, lake=dsn, data_path=str(root / "lake-data"), node_id=node)
with lake.open_lake(s) as store:
    print(store.node_index)
"""


def test_nodes_attaching_an_empty_catalog_at_once_all_join(tmp_path: Path, postgres_dsn: str) -> None:
    nodes = [f"n{i}" for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, str(tmp_path), postgres_dsn, node],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in nodes
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-2000:]
    indexes = sorted(int(out.strip()) for out, _ in results)
    assert len(set(indexes)) == len(nodes)  # each node its own slice of seqs
    reader = Settings(data_dir=tmp_path / "reader", lake=postgres_dsn, data_path=str(tmp_path / "lake-data"))
    with lake.open_lake(reader, read_only=True) as store:
        registered = {r[0] for r in store.cursor().execute("SELECT node_id FROM lake_nodes").fetchall()}
    assert set(nodes) <= registered
