"""Lake mode end to end: nodes over one DuckLake (catalog in a real PostgreSQL, Parquet in a shared
directory), real `workbench serve` processes on real sockets, the real CLI reading from anywhere.

PostgreSQL comes from `tests/postgres.py` (Debian's binaries, installed by `make postgres`); without them
the fixture fails with the install command rather than skipping, so CI never silently skips these.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.request
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors import decode
from collectors.normalize import normalize
from collectors.pipeline import IngestPipeline
from tests.conftest import ServerProcess
from tests.otlp_payloads import Batch, agent_batch, tiny_batch
from workbench.cli import cli
from workbench.settings import Settings
from workbench.store import extensions, lake, queries
from workbench.store import writer as writer_module
from workbench.store.explore_scan import scan_traces
from workbench.store.explore_traces import TraceFilter, TraceRow, search_traces
from workbench.store.lake_verify import verify_lake
from workbench.store.writer import SpanWriter


def _settings(tmp_path: Path, dsn: str, node: str) -> Settings:
    return Settings(data_dir=tmp_path / node, lake=dsn, data_path=str(tmp_path / "lake-data"), node_id=node)


def _records(message: ExportTraceServiceRequest) -> list:  # type: ignore[type-arg]
    return list(decode.to_records(message, 1 << 20).records)


def _part(batch: Batch, indices: range) -> bytes:
    """An export request with only some of a batch's spans (one trace split between nodes)."""
    part = ExportTraceServiceRequest()
    part.CopyFrom(batch.message)
    spans = part.resource_spans[0].scope_spans[0].spans
    keep = [spans[i] for i in indices]
    del spans[:]
    spans.extend(keep)
    return part.SerializeToString()


def _post(node: ServerProcess, body: bytes) -> int:
    request = urllib.request.Request(
        node.traces_url, data=body, headers={"Content-Type": "application/x-protobuf"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return int(answer.status)


def _tamper(dsn: str, sql: str) -> None:
    """Edit the lake behind the workbench's back, as an attacker with catalog access would."""
    con = duckdb.connect(config=dict(extensions.config()))
    extensions.load(con, "ducklake", "postgres")
    con.execute(f"ATTACH 'ducklake:postgres:{dsn}' AS lake")
    con.execute(f"USE lake; {sql}")
    con.close()


def test_two_nodes_get_their_own_slices_and_a_restart_rejoins(tmp_path: Path, postgres_dsn: str) -> None:
    one = lake.open_lake(_settings(tmp_path, postgres_dsn, "n1"))
    two = lake.open_lake(_settings(tmp_path, postgres_dsn, "n2"))
    try:
        assert {one.node_index, two.node_index} == {1, 2}
        assert one.seq_range != two.seq_range
        pipe = IngestPipeline(one)
        first = pipe.ingest(_records(tiny_batch("rejoin", 1, 3).message), "test")
        pipe.close()
        assert lake.split_seq(first.first_seq or 0) == (one.node_index, 1)
    finally:
        one.close()
        two.close()
    again = lake.open_lake(_settings(tmp_path, postgres_dsn, "n1"))  # the same node, restarted
    try:
        pipe = IngestPipeline(again)
        more = pipe.ingest(_records(tiny_batch("rejoin", 2, 2).message), "test")
        pipe.close()
        assert again.node_index == 1
        assert lake.split_seq(more.first_seq or 0) == (1, 4)  # its chain goes on after seq 3
        report, per_node = verify_lake(again)
        assert report.ok, report.all_problems
        assert [(name, r.checked) for name, r in per_node] == [("n1", 5), ("n2", 0)]
    finally:
        again.close()


def test_concurrent_nodes_lose_nothing_and_store_a_redelivery_once(tmp_path: Path, postgres_dsn: str) -> None:
    """Two nodes commit at once (catalog conflicts, retried) and both receive the same request: each
    span is stored exactly once, whichever node stored it, and every chain verifies."""
    stores = [lake.open_lake(_settings(tmp_path, postgres_dsn, f"n{i}")) for i in (1, 2)]
    shared = _records(agent_batch("both", 0, 4).message)
    results: dict[int, list[int]] = {0: [], 1: []}

    def node(i: int) -> None:
        pipe = IngestPipeline(stores[i])
        try:
            for request in range(1, 6):
                results[i].append(
                    pipe.ingest(_records(tiny_batch(f"node{i}", request, 3).message), "t").accepted
                )
                if request == 3:
                    results[i].append(pipe.ingest(shared, "t").accepted)
        finally:
            pipe.close()

    threads = [threading.Thread(target=node, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    try:
        assert results == {0: [3, 3, 3, 4, 3, 3], 1: [3, 3, 3, 4, 3, 3]}  # all acknowledged
        cur = stores[0].cursor()
        total, distinct = cur.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans"
        ).fetchone()
        assert (total, distinct) == (2 * 15 + 4, 2 * 15 + 4)  # the shared 4 once
        assert cur.execute("SELECT sum(duplicate_spans) FROM delivery_stats").fetchone() == (4,)
        report, _ = verify_lake(stores[0])
        assert report.ok, report.all_problems
    finally:
        for s in stores:
            s.close()


def test_served_nodes_share_one_lake(tmp_path: Path, postgres_dsn: str) -> None:
    data = tmp_path / "lake-data"
    env = {"WORKBENCH_LAKE": postgres_dsn, "WORKBENCH_DATA_PATH": str(data), "WORKBENCH_DECODE_WORKERS": "0"}
    nodes = [ServerProcess(tmp_path / n, env={**env, "WORKBENCH_NODE_ID": n}).start() for n in ("n1", "n2")]
    runner = CliRunner()
    reader = {**env, "WORKBENCH_DATA_DIR": str(tmp_path / "reader")}  # a machine that is no node
    try:
        split = agent_batch("split", 1, 6)
        assert _post(nodes[0], _part(split, range(0, 3))) == 200
        assert _post(nodes[1], _part(split, range(3, 6))) == 200
        # Redelivery of the whole request to the other node: acknowledged, nothing stored twice.
        assert _post(nodes[1], split.protobuf()) == 200
        assert _post(nodes[0], agent_batch("solo", 2, 2).protobuf()) == 200

        listed = runner.invoke(cli, ["traces", "--json"], env=reader)
        assert listed.exit_code == 0, listed.output
        trace = split.message.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
        counts = {t["trace_id"]: t["span_count"] for t in json.loads(listed.output)}
        assert counts[trace] == 6

        with lake.open_lake(_settings(tmp_path, postgres_dsn, "reader"), read_only=True) as store:
            steps = queries.trace_steps(store, trace)
            assert len(steps) == 6  # one trace, though two nodes wrote it
            times = [s.step.start_time_ns for s in steps]
            assert times == sorted(times)  # by time, not by seq: n2's seqs are all above n1's
            owners = {lake.split_seq(s.seq)[0] for s in steps}
            assert len(owners) == 2

        verified = runner.invoke(cli, ["ledger", "verify"], env=reader)
        assert verified.exit_code == 0, verified.output
        assert "ledger OK: 8 spans" in verified.output

        # An edit behind the workbench's back is named by node and node-local seq.
        n2_second = (2 << lake.SEQ_BITS) | 2
        _tamper(
            postgres_dsn, f"UPDATE spans SET canonical = canonical || '\\x00'::BLOB WHERE seq = {n2_second}"
        )
        broken = runner.invoke(cli, ["ledger", "verify"], env=reader)
        assert broken.exit_code != 0
        assert "node n2, seq 2: span modified" in broken.output
    finally:
        for n in nodes:
            n.stop()
    # A lake keeps no full-text side index: no node wrote one beside a "file" named after the catalog.
    dbname = dict(part.split("=", 1) for part in postgres_dsn.split())["dbname"]
    assert not list(Path.cwd().glob(f"*{dbname}*"))


def test_kill_9_of_a_node_under_load_loses_no_acknowledged_span(tmp_path: Path, postgres_dsn: str) -> None:
    data = tmp_path / "lake-data"
    env = {
        "WORKBENCH_LAKE": postgres_dsn,
        "WORKBENCH_DATA_PATH": str(data),
        "WORKBENCH_DECODE_WORKERS": "0",
        "WORKBENCH_NODE_ID": "n1",
    }
    node = ServerProcess(tmp_path / "n1", env=env).start()
    acked: set[tuple[str, str]] = set()
    stop = threading.Event()

    def load() -> None:
        request = 0
        while not stop.is_set():
            request += 1
            batch = tiny_batch("load", request, 5)
            try:
                if _post(node, batch.protobuf()) == 200:
                    acked.update(batch.keys)
            except OSError:
                return  # the node died mid-request: that request was never acknowledged

    sender = threading.Thread(target=load)
    sender.start()
    try:
        while len(acked) < 50 and sender.is_alive():
            stop.wait(0.05)
        node.kill()
    finally:
        stop.set()
        sender.join(60)
    assert len(acked) >= 50
    node.start()  # the same node id: it rejoins and goes on with its chain
    try:
        assert _post(node, tiny_batch("after", 1, 3).protobuf()) == 200
        with lake.open_lake(_settings(tmp_path, postgres_dsn, "reader"), read_only=True) as store:
            stored = set(store.cursor().execute("SELECT trace_id, span_id FROM spans").fetchall())
            assert acked <= stored
            report, per_node = verify_lake(store)
            assert report.ok, report.all_problems
            assert [name for name, _ in per_node] == ["n1"]
            assert per_node[0][1].checked == len(stored)
    finally:
        node.stop()


def test_the_trace_list_reads_trace_commits_and_an_older_lake_gets_it_filled(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Both nodes' commits append `trace_commits` rows in their own transactions, so the list read through
    it answers what the scan of every step answers; a lake made before the table (schema version 1) has
    it filled from the steps when a node opens it."""

    def _exact(rows: list[TraceRow]) -> list[TraceRow]:  # a sum of doubles depends on the order added
        return [dataclasses.replace(r, cost_usd=round(r.cost_usd, 12)) for r in rows]

    stores = [lake.open_lake(_settings(tmp_path, postgres_dsn, f"n{i}")) for i in (1, 2)]
    try:
        split = agent_batch("split", 0, 6)
        for i, store in enumerate(stores):
            pipe = IngestPipeline(store)
            pipe.ingest(_records(tiny_batch(f"node{i}", 1, 4).message), "t")
            pipe.ingest(_records(agent_batch(f"agents{i}", i, 3).message), "t")
            pipe.ingest(
                decode.to_records(
                    ExportTraceServiceRequest.FromString(_part(split, range(i, 6, 2))), 1 << 20
                ).records,
                "t",
            )
            pipe.close()
        listed = search_traces(stores[0], TraceFilter(), 100)
        assert len(listed) >= 5 and _exact(listed) == _exact(scan_traces(stores[0], TraceFilter(), 100))
        flt = TraceFilter(has_errors=False)
        assert _exact(search_traces(stores[1], flt, 3, 1)) == _exact(scan_traces(stores[1], flt, 3, 1))
    finally:
        for s in stores:
            s.close()
    _tamper(postgres_dsn, "DELETE FROM trace_commits; UPDATE lake_meta SET schema_version = 1")
    again = lake.open_lake(_settings(tmp_path, postgres_dsn, "n1"))
    try:
        (rows,) = again.cursor().execute("SELECT count(DISTINCT trace_id) FROM trace_commits").fetchone() or (
            0,
        )
        assert rows == len(listed)
        assert _exact(search_traces(again, TraceFilter(), 100)) == _exact(listed)
    finally:
        again.close()


def test_a_redelivery_committed_by_another_node_during_the_lookup_is_stored_once(
    tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race behind a flaky `test_concurrent_nodes_lose_nothing_and_store_a_redelivery_once`, made
    deterministic: node 2 looks its request's spans up, node 1 commits the same request, then node 2
    commits. The lookup must belong to node 2's transaction, so that node 1's commit conflicts with it
    and node 2 redoes the lookup; a lookup before the transaction began found nothing and stored the
    spans twice."""
    stores = [lake.open_lake(_settings(tmp_path, postgres_dsn, f"n{i}")) for i in (1, 2)]
    writers = [SpanWriter(s) for s in stores]
    records = _records(agent_batch("both", 0, 4).message)
    steps = [normalize(r) for r in records]
    real_known = writer_module._known
    calls = 0

    def known_then_node1_commits(cur: duckdb.DuckDBPyConnection, span_ids: list[str]) -> object:
        nonlocal calls
        found = real_known(cur, span_ids)
        calls += 1
        if calls == 1:  # node 2's first lookup: node 1 stores the same spans right after it
            done = threading.Thread(target=writers[0].write, args=(records, steps, "n1"))
            done.start()
            done.join(60)
        return found

    try:
        monkeypatch.setattr(writer_module, "_known", known_then_node1_commits)
        writers[1].write(records, steps, "n2")
        cur = stores[0].cursor()
        total, distinct = cur.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans"
        ).fetchone()
        assert (total, distinct) == (4, 4)
        assert cur.execute("SELECT sum(duplicate_spans) FROM delivery_stats").fetchone() == (4,)
        assert calls >= 3  # node 2, node 1, node 2 again after its commit lost the race
    finally:
        for s in stores:
            s.close()


def test_verify_names_a_redelivery_two_nodes_stored(
    tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lake written before the redelivery lookup moved into the commit's transaction may hold the same
    spans from two nodes: `verify_lake` counts the copies across nodes and names each seq with its node,
    and the copies' steps fail the step check under that cause, not as conflicting versions."""
    from collectors.integrity import step_deriver
    from collectors.normalize import NORMALIZER_VERSION

    stores = [lake.open_lake(_settings(tmp_path, postgres_dsn, f"n{i}")) for i in (1, 2)]
    try:
        records = _records(agent_batch("two-nodes", 0, 4).message)
        steps = [normalize(r) for r in records]
        SpanWriter(stores[0], normalizer_version=NORMALIZER_VERSION).write(records, steps, "n1")
        monkeypatch.setattr(writer_module, "_known", lambda cur, span_ids: {})  # the lookup that missed
        SpanWriter(stores[1], normalizer_version=NORMALIZER_VERSION).write(records, steps, "n2")
        report, _ = verify_lake(
            stores[0], derive=step_deriver(stores[0]), normalizer_version=NORMALIZER_VERSION
        )
        assert report.problems == [] and report.stored_twice == 4
        assert len(report.stored_twice_examples) == 4
        assert sorted(e.rsplit("seqs ", 1)[1] for e in report.stored_twice_examples) == [
            f"{k} (node n1), {k} (node n2)" for k in range(1, 5)
        ]
        assert len(report.step_problems) == 4
        assert all(
            "node n2" in p and "a redelivery stored again with the same bytes" in p
            for _, p in report.step_problems
        )
    finally:
        for s in stores:
            s.close()
