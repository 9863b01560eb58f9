"""Issue #18, item 4 on real framework captures: two steps get the same probe input only when the text
the probe reads of them (probes/README.md, "What the model reads, per step kind") is the same, and the
tool step that ran a call never reads as the LLM step that chose it (steps 10 and 12 of the database
sample used to; tests/test_probes.py covers that sample). Steps come from the spans each library emitted
(tests/fixtures/conventions), normalized by the real normalizer; pure functions, no model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pytest

from collectors.normalize import normalize
from probes.text import StepInput, step_input
from tests.conventions_fixture import fixture_files, fixture_spans
from workbench.errors import WorkbenchError
from workbench.model import StepKind, StoredStep


def _traces(name: str) -> list[list[StoredStep]]:
    """The fixture's steps per trace, in start-time order (ties by span order), as the store reads them."""
    by_trace: dict[str, list[StoredStep]] = defaultdict(list)
    for i, span in enumerate(fixture_spans(name)):
        step = normalize(span)
        by_trace[step.trace_id].append(StoredStep(seq=i + 1, step=step))
    return [sorted(g, key=lambda s: (s.step.start_time_ns, s.seq)) for g in by_trace.values()]


def _read_text(steps: Sequence[StoredStep], index: int) -> tuple[str | None, ...]:
    """The step's own text that its kind's row of the README table names, unclipped: a tool step's call,
    result and error and the input and scratchpad of the latest earlier step with one; any other step's
    input, scratchpad and output."""
    s = steps[index].step
    if s.kind == StepKind.TOOL:
        thinker = next((p.step for p in reversed(steps[:index]) if p.step.reasoning_text), None)
        call = (s.tool_name, s.tool_arguments) if s.tool_name else (None, s.input_text)
        borrowed = (thinker.input_text, thinker.reasoning_text) if thinker else (None, None)
        return ("tool", *call, s.output_text, s.error, *borrowed)
    return ("own", s.input_text, s.reasoning_text, s.output_text)


def _inputs(steps: Sequence[StoredStep]) -> dict[int, StepInput]:
    out: dict[int, StepInput] = {}
    for st in steps:
        try:
            out[st.seq] = step_input(steps, st.seq)
        except WorkbenchError:  # a step with no text at all cannot be probed and says so
            continue
    return out


@pytest.mark.parametrize("name", fixture_files())
def test_steps_of_a_framework_capture_share_an_input_only_when_their_text_is_the_same(name: str) -> None:
    read = 0
    for steps in _traces(name):
        inputs = _inputs(steps)
        read += len(inputs)
        index = {st.seq: i for i, st in enumerate(steps)}
        first_with: dict[StepInput, int] = {}
        for seq, inp in inputs.items():
            other = first_with.setdefault(inp, seq)
            if other != seq:
                assert _read_text(steps, index[other]) == _read_text(steps, index[seq]), (
                    f"{name}: steps seq {other} and {seq} read the same input from different text"
                )
        # The call an LLM step chose and the tool step that ran it: never the same input.
        llm = {inp for seq, inp in inputs.items() if steps[index[seq]].step.kind == StepKind.LLM}
        tools = {inp for seq, inp in inputs.items() if steps[index[seq]].step.kind == StepKind.TOOL}
        assert not llm & tools, f"{name}: an LLM step and a tool step read the same input"
    assert read > 0, f"{name}: no step of the capture could be probed"


def test_the_captures_hold_tool_steps_that_borrow_the_reasoning_that_chose_them() -> None:
    """The case the rule is for occurs in the captures: a tool step after a step with a scratchpad reads
    that scratchpad and the call its LLM step chose, plus its own result, so the two differ."""
    borrowed = 0
    for name in fixture_files():
        for steps in _traces(name):
            inputs = _inputs(steps)
            for i, st in enumerate(steps):
                if st.step.kind != StepKind.TOOL or st.seq not in inputs or not st.step.tool_name:
                    continue
                thinker = next((p for p in reversed(steps[:i]) if p.step.reasoning_text), None)
                if thinker is None or thinker.seq not in inputs:
                    continue
                mine, theirs = inputs[st.seq], inputs[thinker.seq]
                assert mine.reasoning == theirs.reasoning and mine != theirs
                assert mine.action.startswith(f"{st.step.tool_name}(") and "\nResult: " in mine.action
                borrowed += 1
    assert borrowed >= 3
