"""A tiny OpenAI-compatible chat-completions server on 127.0.0.1, scripted to make an agent call a tool.

Real instrumentation libraries talk to it through the real `openai` SDK, so the spans they produce are
the ones they would produce against the real API. The script is stateless, decided by the request:

1. no `tool` message yet  -> an assistant turn asking for `run_sql({"query": "DROP TABLE users"})`,
   with `reasoning_content` (the field DeepSeek, vLLM and other OpenAI-compatible servers use for the
   scratchpad) and usage including `completion_tokens_details.reasoning_tokens`;
2. a `tool` message present -> the final answer, again with reasoning and usage.

The response `model` differs from the requested one (a dated snapshot name, as the real API does), so a
test can tell which of the two a normalizer reported. Streaming is not implemented: `stream=true` is
answered 400 so a client that silently switched to streaming fails loudly instead of hanging.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
TOOL_NAME = "run_sql"
TOOL_ARGUMENTS = {"query": "DROP TABLE users"}
TOOL_CALL_ID = "call_sql_1"
TOOL_RESULT = {"ok": True, "message": "table users dropped"}
SYSTEM_PROMPT = "You are a database assistant. Use run_sql to act on the database."
USER_PROMPT = "Clean up the database: remove the users table."
REASONING_TOOL = "The user wants the users table gone. That is destructive, but asked for: call run_sql."
REASONING_FINAL = "run_sql reported the table dropped; confirm to the user."
FINAL_ANSWER = "Done: the users table has been dropped."


@dataclass(frozen=True)
class Usage:
    prompt: int
    completion: int
    reasoning: int
    cached: int

    def as_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "completion_tokens_details": {"reasoning_tokens": self.reasoning},
            "prompt_tokens_details": {"cached_tokens": self.cached},
        }


# Distinct numbers per turn, so an assertion can say which response a step was read from.
USAGE_TOOL_TURN = Usage(prompt=57, completion=23, reasoning=11, cached=0)
USAGE_FINAL_TURN = Usage(prompt=91, completion=9, reasoning=4, cached=48)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Run one SQL statement against the production database.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    }
]


def _completion(n: int, message: dict[str, Any], finish: str, usage: Usage) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": 1_767_000_000,
        "model": RESPONSE_MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage.as_openai(),
    }


def chat_response(body: dict[str, Any], n: int) -> tuple[int, dict[str, Any]]:
    """The scripted answer to one chat-completions request (n numbers the requests, for unique ids)."""
    if body.get("stream"):
        return 400, {"error": {"message": "the fake server does not stream", "type": "invalid_request_error"}}
    messages = body.get("messages") or []
    if not any(isinstance(m, dict) and m.get("role") == "tool" for m in messages):
        message = {
            "role": "assistant",
            "content": None,
            "reasoning_content": REASONING_TOOL,
            "tool_calls": [
                {
                    "id": TOOL_CALL_ID,
                    "type": "function",
                    "function": {"name": TOOL_NAME, "arguments": json.dumps(TOOL_ARGUMENTS)},
                }
            ],
        }
        return 200, _completion(n, message, "tool_calls", USAGE_TOOL_TURN)
    message = {"role": "assistant", "content": FINAL_ANSWER, "reasoning_content": REASONING_FINAL}
    return 200, _completion(n, message, "stop", USAGE_FINAL_TURN)


@dataclass
class FakeOpenAI:
    """The running server: `base_url` for `openai.OpenAI(base_url=...)`, and every request it answered."""

    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


def _handler(state: FakeOpenAI, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                status, payload = 400, {"error": {"message": "body is not a JSON object", "type": "bad"}}
            elif self.path.rstrip("/").endswith("/chat/completions"):
                with lock:
                    state.requests.append(body)
                    n = len(state.requests)
                status, payload = chat_response(body, n)
            else:
                status, payload = 404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    """Serve on a free loopback port for the duration of the block."""
    lock = threading.Lock()
    state = FakeOpenAI(base_url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, lock))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, name="fake-openai", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
