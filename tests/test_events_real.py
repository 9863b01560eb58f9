"""openai-v2 in EVENT_ONLY mode: spans and GenAI log records over real OTLP/HTTP into `workbench serve`.

The spans carry no content; the messages and the tool call live only in the log records. Whichever
signal arrives first, the chat steps must end up with the content (and say it came from events), the
destructive tool call must raise a high finding, and `ledger verify` must hold.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, ServerProcess
from tests.fake_openai import FINAL_ANSWER, fake_openai
from tests.test_real_clients import _clean_env, workbench
from workbench.store.connection import Store

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("order", ["logs-first", "spans-first"])
def test_openai_v2_event_only_joins_and_flags(serve_process: ServerProcess, order: str) -> None:
    with fake_openai() as fake:
        cmd = [sys.executable, "-m", "tests.drive_events", "--http", serve_process.http_url]
        cmd += ["--fake-openai", fake.base_url, "--order", order]
        proc = subprocess.run(cmd, cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=120)
    # exit 0: every traces and every logs export was acknowledged
    assert proc.returncode == 0, f"driver failed:\n{proc.stdout}\n{proc.stderr}\n{serve_process.log()}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["answer"] == FINAL_ANSWER and report["logs"] >= 2
    assert serve_process.stop() == 0, serve_process.log()

    with Store(serve_process.db_path, read_only=True) as store:
        cur = store.cursor()
        (stored_logs,) = cur.execute(
            "SELECT count(*) FROM logs WHERE trace_id = ?", [report["trace_id"]]
        ).fetchone() or (0,)
        span_attrs = " ".join(r[0] for r in cur.execute("SELECT attributes FROM spans").fetchall())
    assert stored_logs == report["logs"]
    assert "DROP TABLE" not in span_attrs  # event-only: the spans really carry no content

    replayed = json.loads(workbench(serve_process.data_dir, "replay", report["trace_id"], "--json"))
    llm = sorted((s for s in replayed["steps"] if s["kind"] == "llm"), key=lambda s: s["start_time_ns"])
    assert len(llm) == 2
    assert "DROP TABLE" in (llm[0]["output_text"] or "")
    assert llm[0]["input_text"] and "input_text" in json.loads(llm[0]["event_fields"])

    findings = json.loads(
        workbench(serve_process.data_dir, "findings", "--trace", report["trace_id"], "--json")
    )
    rows = findings if isinstance(findings, list) else findings.get("findings", [])
    assert any(
        f["severity"] in ("high", "critical") and f["rule_id"] == "destructive-action" for f in rows
    ), rows

    verified = json.loads(workbench(serve_process.data_dir, "ledger", "verify", "--json"))
    assert verified["ok"], verified
