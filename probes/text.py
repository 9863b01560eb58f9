"""The text a step is read as: its context, reasoning and action in the model's chat template, with
every token mapped back to characters of the step's own text.

Why the chat template: an instruction-tuned model reads a conversation, not a bare string; feeding the
step the way the model was trained to see it makes the hidden states mean what they would mean at run
time. Why a separate `step_text`: the investigator highlights words of the step, not of template
markup, so char spans index `step_text` (the step's pieces joined by blank lines) and template tokens
map to None.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.model import StepKind, StoredStep

SYSTEM_PROMPT = "You are an AI agent. Think step by step, then act."
ACTION_PREFIX = "Action:\n"
SEPARATOR = "\n\n"
SEGMENTS = ("context", "reasoning", "action")
_MARK = {name: f"\x00{name.upper()}\x00" for name in SEGMENTS}


@dataclass(frozen=True, slots=True)
class StepInput:
    """The three parts of a step the model reads: what it saw, what it thought, what it did."""

    context: str
    reasoning: str
    action: str


@dataclass(frozen=True)
class StepText:
    """A step as tokens: the exact model input and the map from tokens to the step's characters."""

    text: str  # exactly what is tokenized and fed to the model
    step_text: str  # context, reasoning and action joined by blank lines: what the UI shows
    token_ids: list[int]
    tokens: list[str]
    char_spans: list[tuple[int, int] | None]  # per token, [start, end) in step_text; None for template
    segments: dict[str, tuple[int, int]]  # where each part lies in step_text
    segment_of: list[str | None]  # per token: "context" | "reasoning" | "action" | None
    action_position: int  # the position whose next-token prediction is the action's first token
    action_token: str  # "" when the step took no action
    action_token_id: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    def positions_in(self, *names: str) -> list[int]:
        """Token positions that fall in the named segments."""
        return [i for i, s in enumerate(self.segment_of) if s in names]

    def shared(self) -> dict[str, Any]:
        """The keys every probe_results.data carries (see probes/README.md)."""
        return {
            "text": self.text,
            "tokens": self.tokens,
            "char_spans": [list(s) if s is not None else None for s in self.char_spans],
            "step_text": self.step_text,
            "action_position": self.action_position,
            "action_token": self.action_token,
            "segments": {k: list(v) for k, v in self.segments.items()},
        }


def _render_template(tokenizer: Any) -> str:
    """The chat template rendered around markers, so we know where each segment lands in the text."""
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": _MARK["context"]},
        {"role": "assistant", "content": _MARK["reasoning"] + SEPARATOR + ACTION_PREFIX + _MARK["action"]},
    ]
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(messages, tokenize=False)
        assert isinstance(rendered, str)
        if all(rendered.count(m) == 1 for m in _MARK.values()):
            return rendered
    # No (usable) template: a plain transcript keeps the same three parts in the same order.
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages)


def build_step_text(tokenizer: Any, inp: StepInput) -> StepText:
    """Tokenize a step in the model's chat template and map each token to the step's characters."""
    template = _render_template(tokenizer)
    parts = {"context": inp.context, "reasoning": inp.reasoning, "action": inp.action}
    # step_text and the pieces of `text` that came from it, as (text_start, step_start, length)
    step_chunks: list[str] = []
    segments: dict[str, tuple[int, int]] = {}
    pieces: list[tuple[int, int, int, str]] = []
    out: list[str] = []
    cursor = 0
    pos = 0
    order = sorted(SEGMENTS, key=lambda n: template.index(_MARK[n]))
    for name in order:
        at = template.index(_MARK[name], cursor)
        out.append(template[cursor:at])
        pos += at - cursor
        value = parts[name]
        step_start = sum(len(c) for c in step_chunks)
        if step_chunks and value:
            step_start += len(SEPARATOR)
        if value:
            if step_chunks:
                step_chunks.append(SEPARATOR)
            step_chunks.append(value)
            segments[name] = (step_start, step_start + len(value))
            pieces.append((pos, step_start, len(value), name))
        out.append(value)
        pos += len(value)
        cursor = at + len(_MARK[name])
    out.append(template[cursor:])
    text = "".join(out)
    step_text = "".join(step_chunks)

    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = [tuple(o) for o in enc["offset_mapping"]]
    if not ids:
        raise WorkbenchError("the step has no text to read")
    tokens: list[str] = []
    spans: list[tuple[int, int] | None] = []
    seg_of: list[str | None] = []
    for tid, (s, e) in zip(ids, offsets, strict=True):
        tokens.append(text[s:e] if e > s else tokenizer.decode([tid]))
        span, seg = _map_span(s, e, pieces)
        spans.append(span)
        seg_of.append(seg)

    action_first = next((i for i, g in enumerate(seg_of) if g == "action"), None)
    if action_first is not None and action_first > 0:
        action_position, action_id = action_first - 1, ids[action_first]
        action_token = tokens[action_first]
    else:
        action_position, action_id, action_token = len(ids) - 1, None, ""
    return StepText(
        text=text,
        step_text=step_text,
        token_ids=ids,
        tokens=tokens,
        char_spans=spans,
        segments=segments,
        segment_of=seg_of,
        action_position=action_position,
        action_token=action_token,
        action_token_id=action_id,
    )


def _map_span(
    start: int, end: int, pieces: Sequence[tuple[int, int, int, str]]
) -> tuple[tuple[int, int] | None, str | None]:
    """The part of text[start:end] that came from the step, in step_text coordinates."""
    for text_start, step_start, length, name in pieces:
        lo, hi = max(start, text_start), min(end, text_start + length)
        if lo < hi:
            return (step_start + lo - text_start, step_start + hi - text_start), name
    return None, None


def _clip_tail(text: str, limit: int) -> str:
    """Keep the end of a long context: what the model read last is what shaped the step most."""
    if limit <= 0 or len(text) <= limit:
        return text
    return "…" + text[len(text) - limit + 1 :]


def _clip_head(text: str, limit: int) -> str:
    if limit <= 0 or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


_ROLE_PREFIX = re.compile(r"^(?:assistant|model|ai):[ \t]*", re.MULTILINE)
_TOOL_CALL_LINE = re.compile(
    r"^\[tool call\][ \t]*(?P<name>[\w.\-]+)[ \t]*(?:\(id [^)]*\))?[ \t]*(?P<args>.*)$", re.MULTILINE
)


def action_text(output: str) -> str:
    """An LLM step's output as the action it took: the normalizer's "assistant: [tool call] NAME (id X)
    ARGS" becomes "NAME(ARGS)", the way tool calls read in the probe datasets, so the action's first
    token is the tool's name and not a role label."""
    text = _ROLE_PREFIX.sub("", output)
    return _TOOL_CALL_LINE.sub(lambda m: f"{m['name']}({m['args'].strip()})", text)


RESULT_PREFIX = "\nResult: "


def _tool_call(step: StoredStep, limit: int) -> str:
    """A tool step as what it did: the call, then its result (or error). The result is what makes the
    execution a different step from the LLM call that chose it, so it is part of the input."""
    s = step.step
    call = f"{s.tool_name}({s.tool_arguments or ''})" if s.tool_name else (s.input_text or "")
    outcome = s.output_text or ""
    if s.error:
        outcome = f"{outcome}\nerror: {s.error}" if outcome else f"error: {s.error}"
    return _clip_head(call, limit) + RESULT_PREFIX + _clip_head(outcome, limit // 2)


def step_input(steps: Sequence[StoredStep], seq: int, max_context_chars: int = 1500) -> StepInput:
    """What the model reads for the step `seq` of a trace (steps in start-time order); the rules per
    step kind are in probes/README.md ("What the model reads").

    An LLM or reasoning step brings its own input, scratchpad and output. A tool step has no
    scratchpad of its own, so it borrows the input and reasoning of the latest earlier step that had
    one (the thinking that chose this call), and its action is the call followed by its result: the
    LLM step that chose the call reads the call alone, so the two never get the same input.
    """
    index = next((i for i, s in enumerate(steps) if s.seq == seq), None)
    if index is None:
        raise WorkbenchError(f"no step with seq {seq} in this trace")
    target = steps[index]
    s = target.step
    if s.kind == StepKind.TOOL:
        action = _tool_call(target, max_context_chars)
        thinker = next((p for p in reversed(steps[:index]) if p.step.reasoning_text), None)
        context = thinker.step.input_text or "" if thinker else ""
        reasoning = thinker.step.reasoning_text or "" if thinker else ""
    else:
        context = s.input_text or ""
        reasoning = s.reasoning_text or ""
        action = action_text(s.output_text or "")
        if not reasoning and s.kind == StepKind.REASONING:
            reasoning, action = action, ""
    if not (context or reasoning or action):
        raise WorkbenchError(f"step seq {seq} ({s.kind}, {s.name!r}) has no text to read")
    return StepInput(
        context=_clip_tail(context, max_context_chars),
        reasoning=_clip_head(reasoning, 4 * max_context_chars),
        action=_clip_head(action, max_context_chars),
    )
