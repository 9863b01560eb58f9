"""Network hygiene of a real `workbench serve`: only its own host names, a quiet /health without the
token, and a UI that trades `?token=` for a session cookie that is not the token."""

from __future__ import annotations

import functools
from pathlib import Path

import httpx
import pytest

from collectors.hosts import allowed_hosts, host_name
from tests.conftest import ServerProcess
from workbench.settings import Settings

EVIL = {"Host": "rebind.attacker.example"}


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:4318", "127.0.0.1"),
        ("LocalHost.", "localhost"),
        ("[::1]:8501", "::1"),
        ("[::1]", "::1"),
        ("evil.example:80", "evil.example"),
        ("", ""),
    ],
)
def test_host_name_drops_the_port_and_normalizes(header: str, name: str) -> None:
    assert host_name(header) == name


def test_allowed_hosts_are_loopback_the_bind_address_and_the_setting() -> None:
    assert allowed_hosts(Settings()) == {"localhost", "127.0.0.1", "::1"}
    wide = allowed_hosts(Settings(host="0.0.0.0", allowed_hosts=" Audit.Corp.example , [fd00::5]"))
    assert wide == {"localhost", "127.0.0.1", "::1", "audit.corp.example", "fd00::5"}
    assert "10.1.2.3" in allowed_hosts(Settings(host="10.1.2.3"))


def test_a_foreign_host_is_refused_by_the_receiver_the_api_and_the_ui(serve_process: ServerProcess) -> None:
    ui = f"http://127.0.0.1:{serve_process.ui_port}"
    for method, url in [
        ("POST", serve_process.traces_url),
        ("GET", f"{serve_process.http_url}/api/v1/traces"),
        ("GET", f"{serve_process.http_url}/health"),
        ("GET", f"{ui}/_stcore/health"),
        ("GET", f"{ui}/replay"),
    ]:
        refused = httpx.request(method, url, headers=EVIL, content=b"{}", timeout=30)
        assert refused.status_code == 421, (url, refused.text)
        assert "rebind.attacker.example" in refused.text and "WORKBENCH_ALLOWED_HOSTS" in refused.text
    # The same requests under the server's own names still work.
    for host in ("127.0.0.1", "localhost"):
        headers = {"Host": f"{host}:{serve_process.http_port}"}
        assert httpx.get(f"{serve_process.http_url}/api/v1/traces", headers=headers).status_code == 200
        assert httpx.get(f"{ui}/_stcore/health", headers={"Host": host}, timeout=60).status_code == 200


def test_ui_pages_carry_a_same_origin_content_security_policy(serve_process: ServerProcess) -> None:
    page = httpx.get(f"http://127.0.0.1:{serve_process.ui_port}/", timeout=60)
    assert page.status_code == 200
    csp = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";") if part
    )
    assert csp["default-src"] == "'self'" and csp["img-src"] == "'self' data:"
    assert csp["connect-src"] == "'self'" and csp["object-src"] == "'none'"


def test_health_without_the_token_says_only_alive_and_the_ui_trades_the_token(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "auth", env={"WORKBENCH_AUTH_TOKEN": "s3cret"}).start()
    try:
        assert httpx.get(f"{server.http_url}/health").json() == {"status": "ok"}
        wrong = httpx.get(f"{server.http_url}/health", headers={"Authorization": "Bearer nope"})
        assert wrong.json() == {"status": "ok"}
        full = httpx.get(f"{server.http_url}/health", headers={"Authorization": "Bearer s3cret"}).json()
        assert full["status"] == "ok" and "last_seq" in full and "queued_spans" in full

        base = f"http://127.0.0.1:{server.ui_port}"
        # Streamlit answers its first request only once its script runner is up: minutes on a loaded machine.
        ui = functools.partial(httpx.get, timeout=120)  # a fresh request each time: no cookie jar
        assert ui(f"{base}/_stcore/health").status_code == 401
        traded = ui(f"{base}/replay?trace=abc&token=s3cret&step=3")
        assert traded.status_code == 303
        assert traded.headers["location"] == "/replay?trace=abc&step=3"
        cookie = traded.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret" not in cookie
        session = traded.cookies["workbench_session"]
        assert session and session != "s3cret"
        assert ui(f"{base}/_stcore/health", cookies={"workbench_session": session}).status_code == 200
        # The token itself is no cookie, and a forged or empty one opens nothing.
        for forged in ("s3cret", "", session[:-1] + ("1" if session.endswith("0") else "0")):
            jar = {"workbench_session": forged, "workbench_token": "s3cret"}
            assert ui(f"{base}/_stcore/health", cookies=jar).status_code == 401
        assert ui(f"{base}/?token=s3cret").headers["location"] == "/"
        assert ui(f"{base}//evil.example/?token=s3cret").headers["location"].startswith("/evil")
        assert ui(f"{base}/_stcore/health?token=wrong").status_code == 401
        bearer = {"Authorization": "Bearer s3cret"}
        assert ui(f"{base}/_stcore/health", headers=bearer).status_code == 200
    finally:
        assert server.stop() == 0
