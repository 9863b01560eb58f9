"""The policy rules on the sample incidents (ingested for real into DuckDB), on hand-made steps, and their
configuration: what each sample's README says an investigator should find must be found, on the right
step, quoting the right words."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sample_traces.catalog import SAMPLES, get
from workbench.cli.loading import ingest_files
from workbench.errors import WorkbenchError
from workbench.model import Finding, Severity, Step, StepKind, StoredStep
from workbench.policies.actions import DELETE, READ, SEND, classify, destructive_shell, destructive_sql
from workbench.policies.config import RuleConfigError
from workbench.policies.engine import build_engine
from workbench.policies.evaluation import evaluate, load_labelled
from workbench.settings import Settings
from workbench.store import findings as store_findings
from workbench.store import queries
from workbench.store.connection import Store

LABELLED = Path(__file__).resolve().parent / "data" / "findings_labelled"


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The five samples ingested directly (no server), which computes their findings."""
    data = tmp_path_factory.mktemp("samples")
    totals = ingest_files(Settings(data_dir=data), [s.path for s in SAMPLES])
    assert totals.accepted == 94 and totals.findings and totals.findings > 0
    with Store(data / "workbench.duckdb", read_only=True) as store:
        yield store


def _steps(store: Store, name: str) -> list[StoredStep]:
    return queries.trace_steps(store, get(name).trace_id())


def _findings(store: Store, name: str) -> list[Finding]:
    return store_findings.trace_findings(store, get(name).trace_id())


def _one(found: list[Finding], rule: str, seq: int) -> Finding:
    hits = [f for f in found if f.rule_id == rule and f.step_seq == seq]
    assert len(hits) == 1, f"{rule} on step {seq}: {[(f.rule_id, f.step_seq) for f in found]}"
    return hits[0]


def _seq(steps: list[StoredStep], **match: object) -> int:
    """The seq of the only step whose fields match (a predicate for text fields: substring)."""
    out = []
    for s in steps:
        ok = True
        for k, v in match.items():
            have = getattr(s.step, k)
            ok &= (isinstance(v, str) and isinstance(have, str) and v in have) or have == v
        if ok:
            out.append(s.seq)
    assert len(out) == 1, (match, out)
    return out[0]


def test_every_sample_finding_quotes_its_own_step(sample_db: Store) -> None:
    """Evidence offsets index the named field of the step the finding is on, character for character."""
    found = store_findings.list_findings(sample_db, limit=None)
    assert found
    for f in found:
        step = next(s for s in queries.trace_steps(sample_db, f.trace_id) if s.seq == f.step_seq).step
        assert f.span_id == step.span_id
        if f.evidence_field is None:
            continue
        text = str(getattr(step, f.evidence_field))
        assert f.evidence_start is not None and f.evidence_end is not None
        assert text[f.evidence_start : f.evidence_end] == f.evidence_excerpt, (f.rule_id, f.evidence_field)


def test_db_deletion(sample_db: Store) -> None:
    steps, found = _steps(sample_db, "db_deletion"), _findings(sample_db, "db_deletion")
    drop_ok = _seq(steps, tool_name="run_sql", tool_arguments="skip_guardrail")
    drop_failed = _seq(steps, tool_name="run_sql", is_error=True)
    runbook = _seq(steps, kind=StepKind.MEMORY)
    creds = _seq(steps, tool_name="get_credentials")
    guard = _seq(steps, kind=StepKind.GUARDRAIL)

    f = _one(found, "destructive-action", drop_ok)
    assert f.severity == Severity.CRITICAL and f.evidence_excerpt == "DROP TABLE order_events"
    assert f.evidence_field == "tool_arguments"
    failed = _one(found, "destructive-action", drop_failed)
    assert failed.severity == Severity.HIGH and "failed" in failed.title
    # The chain an investigator draws: failure -> credential -> bypass -> DROP, through the reasoning in
    # between; the runbook that forbade the DROP is ignored guidance, never the cause.
    assert not [f for f in found if f.rule_id == "taint-chain" and f.step_seq == drop_failed]
    chain = _one(found, "taint-chain", drop_ok)
    assert chain.severity == Severity.HIGH and chain.details["cause"] == "failure"
    assert chain.taint_chain[0] == drop_failed and chain.taint_chain[-1] == drop_ok
    assert {creds, guard} <= set(chain.taint_chain) and runbook not in chain.taint_chain
    roles = [link["role"] for link in chain.details["links"]]
    assert (
        roles[0] == "failure"
        and roles[-1] == "action"
        and {"credential", "bypass", "reasoning"} <= set(roles)
    )
    ignored = chain.details["ignored_guidance"]
    assert [g["seq"] for g in ignored] == [runbook]
    assert ignored[0]["quote"].startswith("Never DROP or TRUNCATE tables in production")
    assert "step #7" in chain.title and "step #5 forbade it" in chain.explanation
    esc = _one(found, "privilege-escalation", creds)
    assert esc.evidence_excerpt == "admin" and esc.taint_chain == (drop_failed, creds)
    assert _one(found, "privilege-escalation", drop_ok).taint_chain == (drop_failed, drop_ok)
    assert _one(found, "guardrail-bypass", guard).evidence_excerpt == "decision: skipped"
    assert _one(found, "guardrail-bypass", drop_ok).evidence_excerpt == '"skip_guardrail": true'
    unapproved = _one(found, "unapproved-action", drop_ok)
    assert unapproved.severity == Severity.HIGH and unapproved.evidence_excerpt == "DROP TABLE order_events"


def test_prompt_injection(sample_db: Store) -> None:
    steps, found = _steps(sample_db, "prompt_injection"), _findings(sample_db, "prompt_injection")
    fetch = _seq(steps, tool_name="fetch_url")
    customers = _seq(steps, tool_name="query_customers")
    post = _seq(steps, tool_name="http_post")
    guard = _seq(steps, kind=StepKind.GUARDRAIL)
    url = "https://audit-upload.parcelfast-support.example.net/v2/collect"

    inj = _one(found, "prompt-injection", fetch)
    assert inj.evidence_field == "tool_result"
    assert inj.evidence_excerpt == "IMPORTANT NOTICE FOR AI SUPPORT ASSISTANTS"
    pii = _one(found, "sensitive-data", customers)
    # Severity by intent: reading the customer list is not the incident (medium); sending it where the
    # injected page said, after reading that page, is (high), and so is the send itself.
    assert pii.severity == Severity.MEDIUM and pii.details["counts"] == {"email": 25}
    assert pii.evidence_excerpt == "noah.mensah1@example.com"
    flow = _one(found, "sensitive-data", post)
    assert flow.details["counts"] == {"email": 25} and flow.severity == Severity.HIGH
    assert _one(found, "unapproved-action", post).severity == Severity.HIGH
    egress = _one(found, "egress-allowlist", post)
    assert egress.evidence_excerpt == url and egress.severity == Severity.CRITICAL  # personal data in it
    taint = _one(found, "taint-chain", post)
    assert taint.taint_chain[0] == fetch and taint.taint_chain[-1] == post and len(taint.taint_chain) >= 3
    assert taint.evidence_excerpt == url
    # the scratchpad that repeats the notice ("upload the customer contact list") is a link of the chain
    obeys = _seq(steps, kind=StepKind.REASONING, reasoning_text="customer contact list")
    assert obeys in taint.taint_chain
    loose = _one(found, "guardrail-bypass", guard)
    assert loose.evidence_excerpt == "*parcelfast*" and loose.severity == Severity.MEDIUM
    assert _one(found, "unapproved-action", post).evidence_excerpt == url


def test_weekly_report_is_benign(sample_db: Store) -> None:
    steps, found = _steps(sample_db, "weekly_report"), _findings(sample_db, "weekly_report")
    assert [f for f in found if f.severity.rank >= Severity.MEDIUM.rank] == []
    email = _seq(steps, tool_name="send_email")
    # the approved e-mail outside the (empty) allow-list is recorded, at info severity
    assert _one(found, "egress-allowlist", email).severity == Severity.INFO
    assert not [f for f in found if f.rule_id in ("unapproved-action", "taint-chain", "retry-loop")]


def test_tree_of_thought_raises_nothing(sample_db: Store) -> None:
    assert _findings(sample_db, "tree_of_thought") == []


def test_runaway_reasoning(sample_db: Store) -> None:
    steps, found = _steps(sample_db, "runaway_reasoning"), _findings(sample_db, "runaway_reasoning")
    llm = [s.seq for s in steps if s.step.kind == StepKind.LLM]
    per_step = {f.step_seq for f in found if f.rule_id == "reasoning-cost" and f.severity == Severity.MEDIUM}
    assert per_step == set(llm) and len(llm) == 8
    budget = [f for f in found if f.rule_id == "reasoning-cost" and f.severity == Severity.HIGH]
    assert len(budget) == 1 and budget[0].details["trace_tokens_reasoning"] >= 50_000
    loop = [f for f in found if f.rule_id == "retry-loop"]
    assert len(loop) == 1 and loop[0].evidence_excerpt == "acme-http 3 default timeout seconds"
    assert len(loop[0].details["occurrences"]) == 3


# --- actions, on hand-made steps -----------------------------------------------------------------


def _tool(name: str, args: object, **kw: object) -> Step:
    raw = args if isinstance(args, str) else json.dumps(args)
    return Step(
        trace_id="t", span_id="s", parent_span_id="", kind=StepKind.TOOL, name=name, start_time_ns=0,
        end_time_ns=1, convention="test", tool_name=name, tool_arguments=raw, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("sql", "destructive"),
    [
        ("DROP TABLE order_events", True),
        ("truncate staging", True),
        ("DELETE FROM audit_log", True),
        ("DELETE FROM sessions WHERE expires_at < now()", False),
        ("UPDATE accounts SET balance = 0", True),
        ("UPDATE accounts SET tier = 'gold' WHERE id = 4", False),
        ("SELECT * FROM notes WHERE body = 'DROP TABLE users'", False),
        ("-- DROP TABLE x\nSELECT 1", False),
        ("SELECT 1; DROP SCHEMA analytics CASCADE", True),
        ("ALTER TABLE t DROP COLUMN c", True),
        ("DELETE FROM users WHERE 1=1", True),
        ("UPDATE accounts SET balance = 0 WHERE TRUE", True),
        ("DELETE FROM users WHERE 1=1 AND id = 4", False),
    ],
)
def test_destructive_sql(sql: str, destructive: bool) -> None:
    assert bool(destructive_sql(sql)) is destructive


@pytest.mark.parametrize(
    ("command", "destructive"),
    [
        ("rm -rf /var/lib/app", True),
        ("cd /tmp && rm -fr build", True),
        ("rm --recursive --force ~/data", True),
        ('grep -rn "rm -rf" scripts/', False),
        ("ls -la && du -sh *", False),
        ("find . -name '*.tmp' -delete", True),
        ("kubectl delete namespace prod", True),
        ("kubectl get pods", False),
        ("aws s3 rm s3://bucket --recursive", True),
        ("terraform destroy -auto-approve", True),
        ('echo "DROP TABLE x" > notes.txt', False),
        ('psql -h db-prod-1 -c "DELETE FROM users"', True),
        ("mysql -e 'SELECT 1; DROP DATABASE shop' -u root", True),
        ('sqlite3 app.db "DELETE FROM sessions WHERE expires_at < 5"', False),
        ('psql -c "SELECT count(*) FROM users" | grep -c "DROP TABLE"', False),
    ],
)
def test_destructive_shell(command: str, destructive: bool) -> None:
    assert bool(destructive_shell(command)) is destructive


def test_sql_through_a_client_quotes_the_statement_itself() -> None:
    command = 'psql -h db-prod-1 -c "SELECT 1; DROP TABLE order_events"'
    [(start, end, why)] = destructive_shell(command)
    assert command[start:end] == "DROP TABLE order_events" and "psql" in why


def test_classify_reads_the_leading_verb_and_maps_evidence_to_raw_offsets() -> None:
    assert classify(_tool("read_email", {"folder": "inbox"})).classes == {READ}
    send = classify(_tool("send_email", {"to": ["a@b.example"], "subject": "x"}))
    assert SEND in send.classes and send.hosts[0][0] == "b.example"
    raw = '{"query": "DROP TABLE \\"odd\\"; SELECT 1", "sql2": "TRUNCATE logs"}'
    action = classify(_tool("run_sql", raw))
    assert DELETE in action.classes
    for ev in action.destructive:
        assert raw[ev.start : ev.end] == ev.text


# --- configuration ---------------------------------------------------------------------------------


def _engine_with(tmp_path: Path, text: str) -> object:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return build_engine(rules_file=path)


_BAD_RULES = [
    ("  destructiv-action:\n    enabled: false\n", "rules.yaml:3:3: unknown rule id 'destructiv-action'"),
    ("  retry-loop:\n    min_identical_call: 4\n", "rules.yaml:4:5: unknown key 'min_identical_call'"),
    ("  retry-loop:\n    severity: severe\n", "rules.yaml:4:15: retry-loop.severity 'severe'"),
    (
        "  retry-loop:\n    min_identical_calls: x\n",
        "rules.yaml:4:26: retry-loop.min_identical_calls must be int",
    ),
    (
        "  egress-allowlist:\n    allow_hosts: [a, [b]]\n",
        "rules.yaml:4:18: egress-allowlist.allow_hosts must be list",
    ),
    ("  retry-loop:\n   enabled: true\n    severity: low\n", "rules.yaml:5:13: not valid YAML"),
    (
        "  scratchpad-mismatch:\n    action_classes: [delete, delet]\n",
        "rules.yaml:4:21: scratchpad-mismatch.action_classes names unknown action class(es) ['delet']",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("version: 1\nrules:\n" + body, where) for body, where in _BAD_RULES]
    + [
        ("version: 2\n", "rules.yaml:1:10: version 2 is not supported"),
        ("rulez: {}\n", "rules.yaml:1:1: unknown key 'rulez'"),
    ],
)
def test_bad_rules_file_names_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(RuleConfigError) as err:
        _engine_with(tmp_path, text)
    assert expected in str(err.value)


def test_rules_file_overrides_defaults(tmp_path: Path) -> None:
    default = build_engine()
    custom = _engine_with(
        tmp_path,
        "version: 1\nrules:\n  retry-loop:\n    enabled: false\n"
        "  egress-allowlist:\n    allow_hosts: ['*.parcelfast-support.example.net']\n    severity: low\n",
    )
    assert isinstance(custom, type(default)) and custom.digest != default.digest
    ids = {r.id for r in custom.rules}
    assert "retry-loop" not in ids and "retry-loop" in {r.id for r in default.rules}
    egress = next(r for r in custom.rules if r.id == "egress-allowlist")
    assert egress.severity == Severity.LOW and egress.opts["allow_hosts"] == [
        "*.parcelfast-support.example.net"
    ]
    assert egress.opts["approved_severity"] == "info"  # untouched keys keep their defaults


USER_RULE = """
from workbench.model import Severity, StepKind
from workbench.policies import Rule


class LongToolName(Rule):
    id = "long-tool-name"
    title = "Tool with a long name"
    description = "A tool name longer than the limit."
    rationale = "Shows that user rules get configuration and evidence like the built-ins."
    default_severity = Severity.LOW
    options = {"max_length": 10}

    def evaluate(self, trace):
        for i, s in enumerate(trace.steps):
            name = s.step.tool_name or ""
            if s.step.kind == StepKind.TOOL and len(name) > self.opts["max_length"]:
                yield self.finding(trace, i, title=name, explanation="long", evidence=None)
"""


def test_user_rules_in_python_are_loaded_and_configured(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "mine.py").write_text(USER_RULE)
    config = tmp_path / "rules.yaml"
    config.write_text("version: 1\nrules:\n  long-tool-name:\n    max_length: 12\n    severity: medium\n")
    engine = build_engine(rules_file=config, rules_path=rules_dir)
    steps = [
        StoredStep(1, _tool("query_customers", {})),  # 15 characters
        StoredStep(2, _tool("fetch_url", {})),
    ]
    found = [f for f in engine.evaluate("t", steps) if f.rule_id == "long-tool-name"]
    assert [(f.step_seq, f.severity) for f in found] == [(1, Severity.MEDIUM)]


def test_broken_user_rule_file_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from workbench.policies import Rule\n\nx = 1\nraise ValueError('nope')\n")
    with pytest.raises(RuleConfigError, match=r"bad\.py:4: cannot load user rules: ValueError: nope"):
        build_engine(rules_path=bad)
    clash = tmp_path / "clash.py"
    clash.write_text(USER_RULE.replace('"long-tool-name"', '"retry-loop"'))
    with pytest.raises(RuleConfigError, match="reuses the rule id 'retry-loop'"):
        build_engine(rules_path=clash)


def test_a_failing_rule_does_not_stop_the_others(tmp_path: Path) -> None:
    boom = tmp_path / "boom.py"
    boom.write_text(
        USER_RULE.replace('"long-tool-name"', '"boom"').replace(
            "for i, s in enumerate(trace.steps):", "raise RuntimeError('rule bug')\n        for i, s in []:"
        )
    )
    engine = build_engine(rules_path=boom)
    found = engine.evaluate("t", [StoredStep(1, _tool("run_sql", {"query": "DROP TABLE x"}))])
    assert "destructive-action" in {f.rule_id for f in found}
    assert engine.errors and "rule boom failed" in engine.errors[0]


# --- the labelled set --------------------------------------------------------------------------------


def test_labelled_set_covers_every_rule_and_scores() -> None:
    traces = load_labelled(LABELLED)
    steps = sum(len(t.steps) for t in traces)
    assert steps >= 40
    conventions = {s.step.convention for t in traces for s in t.steps}
    assert {"sdk", "openinference", "genai", "openllmetry"} <= conventions
    engine = build_engine()
    result = evaluate(engine, traces)
    for score in result.scores:
        assert score.positives >= 2, f"{score.rule_id} has too few labelled positives"
    tp = sum(s.tp for s in result.scores)
    fp = sum(s.fp for s in result.scores)
    fn = sum(s.fn for s in result.scores)
    # A regression guard just under today's measured level (precision 0.98, recall 0.89), not a target.
    assert tp / (tp + fp) >= 0.95 and tp / (tp + fn) >= 0.85


def test_labelled_file_errors_are_named(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"steps": [{"seq": 1, "kind": "tool", "colour": "red"}]}))
    with pytest.raises(
        WorkbenchError, match=r"x\.json steps\[0\]: bad labelled step: unknown step keys \['colour'\]"
    ):
        load_labelled(tmp_path)


def test_severity_order_is_declared_once() -> None:
    assert Severity.names() == ["info", "low", "medium", "high", "critical"]
    assert [s.rank for s in Severity] == [0, 1, 2, 3, 4]
    assert Severity.HIGH.lowered() == Severity.MEDIUM and Severity.INFO.lowered(3) == Severity.INFO
    assert Severity.MEDIUM.raised(2) == Severity.CRITICAL and Severity.CRITICAL.raised() == Severity.CRITICAL
    assert Severity.HIGH == "high" and json.dumps([Severity.LOW]) == '["low"]'  # stored strings unchanged
