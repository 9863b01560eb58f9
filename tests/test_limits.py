"""Requests in flight are capped, so memory held by request bodies is bounded by settings, not clients."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.conftest import ServerProcess
from tests.polling import wait_for
from tests.sdk_spans import agent_run_request


def test_requests_beyond_the_cap_get_503_and_the_server_recovers(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "served", env={"WORKBENCH_MAX_CONCURRENT_REQUESTS": "2"}).start()
    stalled: list[socket.socket] = []
    try:
        # Two clients start an upload and stall half-way: both requests are in flight.
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", server.http_port))
            s.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                b"Content-Length: 100000\r\n\r\n" + b"\x00" * 10
            )
            stalled.append(s)
        body = agent_run_request(1).SerializeToString()
        headers = {"content-type": "application/x-protobuf"}
        refused = httpx.post(server.traces_url, content=body, headers=headers, timeout=30)
        assert refused.status_code == 503
        for s in stalled:
            s.close()
        # Once the stalled uploads are gone, the same request is taken (the server notices the closed
        # sockets on its own time: retry, with a pause, until it does).
        wait_for(
            lambda: (
                httpx.post(server.traces_url, content=body, headers=headers, timeout=30).status_code == 200
            ),
            30,
            0.1,
            "the request to be taken once the stalled uploads closed",
            details=server.log,
        )
        assert server.alive()
    finally:
        for s in stalled:
            s.close()
        server.stop()
