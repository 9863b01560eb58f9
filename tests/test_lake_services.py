"""Lake mode with every service of `workbench serve` on: the findings scanner and the probe worker on each
node, under their leases, writing findings, probe results and the per-node second chain into one lake.

Real parts only: two `workbench serve` processes over a real PostgreSQL catalog and a shared data
directory, the real CLI in a third process's role, the tiny TransformerLens model in the worker's child.
The expected findings are not written down here: they are what the embedded single-file workbench finds
in the same sample (the peer), so the lake must agree with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import ServerProcess
from tests.polling import wait_for
from tests.test_lake import _settings, _tamper
from tests.test_probes_worker import DB_SAMPLE, DB_TRACE, GATED_TINY
from workbench.cli import cli
from workbench.cli.loading import ingest_files
from workbench.settings import Settings
from workbench.store import findings as store_findings
from workbench.store import lake, queries
from workbench.store.connection import Store

pytestmark = pytest.mark.slow


def _embedded_findings(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(rule, span id, severity) of every finding the single-file workbench raises on the sample."""
    settings = Settings(data_dir=tmp_path / "peer")
    ingest_files(settings, [DB_SAMPLE])
    with Store(settings.db_path, read_only=True) as store:
        return sorted((f.rule_id, f.span_id, str(f.severity)) for f in store_findings.list_findings(store))


def _lake_findings(tmp_path: Path, dsn: str) -> list[tuple[str, str, str]]:
    with lake.open_lake(_settings(tmp_path, dsn, "reader"), read_only=True) as store:
        return sorted((f.rule_id, f.span_id, str(f.severity)) for f in store_findings.list_findings(store))


def test_findings_and_probe_runs_on_a_lake_run_once(tmp_path: Path, postgres_dsn: str) -> None:
    expected = _embedded_findings(tmp_path)
    assert expected  # the destructive incident raises findings in a single file
    env = {
        "WORKBENCH_LAKE": postgres_dsn,
        "WORKBENCH_DATA_PATH": str(tmp_path / "lake-data"),
        "WORKBENCH_DECODE_WORKERS": "0",
        "WORKBENCH_PROBE_MODEL": GATED_TINY,
        "WORKBENCH_PROBE_CONTEXT_CHARS": "300",
    }
    nodes = [ServerProcess(tmp_path / n, env={**env, "WORKBENCH_NODE_ID": n}).start() for n in ("n1", "n2")]
    reader = {**env, "WORKBENCH_DATA_DIR": str(tmp_path / "reader")}  # a third process, no node
    runner = CliRunner()
    try:
        with httpx.Client(timeout=60) as client:
            sent = client.post(
                nodes[0].traces_url,
                content=DB_SAMPLE.read_bytes(),
                headers={"Content-Type": "application/json"},
            )
            assert sent.status_code == 200, sent.text
            wait_for(lambda: _lake_findings(tmp_path, postgres_dsn) == expected, 120, 0.2, "n1's findings")

            # Node 2 never saw the trace, yet reads it and its findings from the lake.
            listed = client.get(f"{nodes[1].http_url}/api/v1/traces").json()["traces"]
            assert [t["trace_id"][:8] for t in listed] == [DB_TRACE]
            as_n2 = {**env, "WORKBENCH_DATA_DIR": str(tmp_path / "n2"), "WORKBENCH_NODE_ID": "n2"}
            on_n2 = runner.invoke(cli, ["findings", "--json"], env=as_n2)
            assert on_n2.exit_code == 0, on_n2.output
            assert len(json.loads(on_n2.output)) == len(expected)

            # A probe run queued through node 2 runs exactly once, on whichever node leased it.
            api = f"{nodes[1].http_url}/api/v1"
            queued = client.post(
                f"{api}/probe-runs", json={"trace_id": DB_TRACE, "step": 6, "analyses": ["logit_lens"]}
            )
            assert queued.status_code == 201, queued.text
            run_id = int(queued.json()["id"])
            assert lake.split_seq(run_id)[0] == 2  # its id comes from node 2's slice

            def finished() -> dict[str, Any] | None:
                run = client.get(f"{api}/probe-runs/{run_id}").json()
                return run if run["status"] in ("done", "failed") else None

            run = wait_for(
                finished, 300, 0.2, "the probe run", details=lambda: nodes[0].log() + nodes[1].log()
            )
            assert run["status"] == "done", run
            assert [r["analysis"] for r in run["results"]] == ["logit_lens"]

        found = runner.invoke(cli, ["findings", "--json"], env=reader)
        assert found.exit_code == 0, found.output
        rows = json.loads(found.output)
        assert sorted((f["rule_id"], f["span_id"], f["severity"]) for f in rows) == expected  # once each
        assert len({f["id"] for f in rows}) == len(rows)

        with lake.open_lake(_settings(tmp_path, postgres_dsn, "reader"), read_only=True) as store:
            cur = store.cursor()
            sealed = cur.execute(
                "SELECT node_id, count(*) FROM ledger_entries WHERE kind = 'probe-result' GROUP BY node_id"
            ).fetchall()
            assert [n for _, n in sealed] == [1], sealed  # one node ran it and sealed it once
            by_node = dict(
                cur.execute(
                    "SELECT node_id, count(*) FROM ledger_entries WHERE kind = 'finding' GROUP BY 1"
                ).fetchall()
            )
            assert by_node == {"n1": len(expected)}  # n1 got the trace, so n1 scanned it
            trace = queries.resolve_trace_id(store, DB_TRACE)
            finding_id = store_findings.trace_findings(store, trace)[0].id

        verified = runner.invoke(cli, ["ledger", "verify"], env=reader)
        assert verified.exit_code == 0, verified.output
        # A bundle from the lake carries the findings and probe results with their per-node entries,
        # and verifies offline against each node's signed heads.
        exported = runner.invoke(
            cli, ["export", "--no-redact", "--out", str(tmp_path / "bundle.zip")], env=reader
        )
        assert exported.exit_code == 0, exported.output
        checked = runner.invoke(cli, ["verify", "--trust-bundle-key", "--json", str(tmp_path / "bundle.zip")])
        assert checked.exit_code == 0, checked.output
        # every finding and the probe result, each against the entry of the node that sealed it
        assert json.loads(checked.output)["checked"]["entries"] == len(expected) + 1

        # An edit of a finding behind the workbench's back is named with the node that sealed it.
        _tamper(postgres_dsn, f"UPDATE findings SET severity = 'low' WHERE id = {finding_id}")
        broken = runner.invoke(cli, ["ledger", "verify"], env=reader)
        assert broken.exit_code != 0
        assert f"node n1, finding {finding_id}: field(s) severity edited" in broken.output, broken.output
    finally:
        for n in nodes:
            n.stop()
