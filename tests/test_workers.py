"""Decoding in worker processes: the same rows as decoding in the server, and a pool that survives its
workers dying and never outlives its server."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import textwrap
import types
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import duckdb
import httpx
import psutil
import pytest

from collectors import decode
from collectors.normalize import normalize
from collectors.workers import DecodePool, Limits, Prepared, Refused, prepare_body
from tests.conftest import ServerProcess
from tests.otlp_payloads import PROTOBUF, agent_batch, gzip_bomb, to_otlp_json
from tests.polling import wait_for
from workbench.settings import Settings
from workbench.store.batch import SPAN_SCHEMA, STEP_SCHEMA, Batch

LIMITS = Limits.of(Settings())


def _batch(n: int = 7) -> Batch:
    records = decode.to_records(agent_batch("workers", 0, n).message, 1 << 20).records
    return Batch.of(records, [normalize(r) for r in records])


def test_a_batch_crosses_processes_as_arrow_ipc_unchanged() -> None:
    batch = _batch()
    again = pickle.loads(pickle.dumps(batch))
    assert len(again) == len(batch) == 7
    assert again.spans.equals(batch.spans) and again.steps.equals(batch.steps)
    assert again.digests == batch.digests and all(len(d) == 32 for d in again.digests)
    assert again.spans.schema.equals(SPAN_SCHEMA) and again.steps.schema.equals(STEP_SCHEMA)


def test_prepare_body_answers_with_values() -> None:
    body = agent_batch("workers", 1, 4).protobuf()
    prepared = prepare_body(body, PROTOBUF, None, LIMITS)
    assert isinstance(prepared, Prepared) and prepared.batch is not None
    assert len(prepared.batch) == 4 and prepared.errors == []
    refused = prepare_body(body, "text/plain", None, LIMITS)
    assert isinstance(refused, Refused) and refused.status == 415
    bomb = prepare_body(gzip_bomb(256 << 20), PROTOBUF, "gzip", LIMITS)
    assert isinstance(bomb, Refused) and bomb.status == 413 and "DECOMPRESSED" in bomb.message
    malformed = prepare_body(b"\xff" * 40, PROTOBUF, None, LIMITS)
    assert isinstance(malformed, Refused) and malformed.status == 400
    req = agent_batch("workers", 2, 3).message
    req.resource_spans[0].scope_spans[0].spans[1].span_id = b""
    partial = prepare_body(req.SerializeToString(), PROTOBUF, None, LIMITS)
    assert isinstance(partial, Prepared) and partial.batch is not None and len(partial.batch) == 2
    assert len(partial.errors) == 1 and "spans[1]" in partial.errors[0]
    empty = prepare_body(b"", PROTOBUF, None, LIMITS)
    assert isinstance(empty, Prepared) and empty.batch is None and empty.errors == []


def test_pool_prepares_what_the_server_would_and_recovers_from_a_dead_worker() -> None:
    body = agent_batch("workers", 3, 6).protobuf()
    here = prepare_body(body, PROTOBUF, None, LIMITS)
    assert isinstance(here, Prepared) and here.batch is not None
    pool = DecodePool(1, Settings())
    try:
        there = pool.submit(body, PROTOBUF, None).result(60)
        assert isinstance(there, Prepared) and there.batch is not None
        assert there.batch.spans.equals(here.batch.spans) and there.batch.steps.equals(here.batch.steps)
        assert there.batch.digests == here.batch.digests
        assert pool.submit(b"{", "application/json", None).result(60) == Refused(
            400, "malformed JSON at line 1 column 2: Expecting property name enclosed in double quotes"
        )
        (worker,) = _workers()
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        try:
            again = pool.submit(body, PROTOBUF, None).result(60)
        except BrokenProcessPool:  # submitted before the pool noticed the death: the client retries
            again = pool.submit(body, PROTOBUF, None).result(60)
        assert isinstance(again, Prepared) and again.batch is not None and len(again.batch) == 6
    finally:
        pool.close()
    assert not _workers()


def _workers() -> list[psutil.Process]:
    """This process's pool workers (multiprocessing's resource tracker is a child too, for good)."""
    return [c for c in psutil.Process().children() if "resource_tracker" not in " ".join(c.cmdline())]


def test_workers_never_run_the_parents_main_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit (the UI inside `workbench serve`, and AppTest in tests) leaves its last page as
    `__main__`; a spawned worker that re-ran it opened the database and held its lock."""
    marker = tmp_path / "main-ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit('a page ran in a worker')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    pool = DecodePool(1, Settings())
    try:
        there = pool.submit(agent_batch("main", 0, 3).protobuf(), PROTOBUF, None).result(60)
    finally:
        pool.close()
    assert isinstance(there, Prepared) and there.batch is not None and len(there.batch) == 3
    assert not marker.exists()
    assert sys.modules["__main__"] is fake_main  # put back after each start


def test_workers_exit_when_their_server_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from collectors.workers import DecodePool
        from workbench.settings import Settings
        pool = DecodePool(2, Settings())
        pool.submit(b"", "application/x-protobuf", None).result(60)
        import psutil
        print(" ".join(str(c.pid) for c in psutil.Process().children()), flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=Path.cwd()
    )
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) >= 2, out.stdout + out.stderr  # the two workers (and the resource tracker)
    wait_for(
        lambda: not [p for p in pids if psutil.pid_exists(p) and _running(p)],
        10,
        0.1,
        f"the workers {pids} to die with their killed server",
        details=lambda: f"still running: {[p for p in pids if psutil.pid_exists(p) and _running(p)]}",
    )


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("body_kind", ["protobuf", "json"])
def test_in_process_and_worker_decoding_store_the_same_rows(tmp_path: Path, body_kind: str) -> None:
    batch = agent_batch("same", 0, 12)
    req = batch.message
    req.resource_spans[0].scope_spans[0].spans[3].trace_id = b"\x00" * 16  # one span refused
    if body_kind == "json":
        body, ctype = to_otlp_json(batch), "application/json"
    else:
        body, ctype = req.SerializeToString(), PROTOBUF
    tables: dict[str, list[list[tuple[object, ...]]]] = {}
    for workers in ("0", "1"):
        server = ServerProcess(tmp_path / f"w{workers}", env={"WORKBENCH_DECODE_WORKERS": workers}).start()
        try:
            resp = httpx.post(server.traces_url, content=body, headers={"content-type": ctype}, timeout=60)
        finally:
            server.stop()
        assert resp.status_code == 200, resp.text
        assert "spans[3]" in resp.content.decode(errors="replace")
        con = duckdb.connect(str(server.db_path), read_only=True)
        try:
            tables[workers] = [
                con.execute(f"SELECT {columns} FROM {t} ORDER BY seq").fetchall()
                for t, columns in (("spans", "* EXCLUDE (received_at)"), ("steps", "*"), ("ledger", "*"))
            ]
        finally:
            con.close()
    assert len(tables["0"][0]) == 11
    assert tables["0"] == tables["1"]
