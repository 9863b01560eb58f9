"""Runaway reasoning cost: an agent that keeps re-checking a one-number answer and never gives it.

Asked for a default timeout, the research agent finds two sources that seem to disagree (the 3.x docs
say 30 s, the 3.2 changelog mentions 60 s for streaming) and loops: search, reason at length, decide
to verify once more. Each turn spends 30 to 80 times more reasoning tokens than visible output, and
the prompt grows every time. The loop is bounded by the agent's own max-iterations guard, which stops
the run without an answer; the stop is recorded as a guardrail decision and as the run's error.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from sample_traces.recording import Price, Session
from sample_traces.sandbox import Document, VectorStore

SERVICE = "research-agent"
START = datetime(2025, 11, 6, 16, 5, 0, tzinfo=UTC)
MODEL = "deepseek-reasoner"
PRICE = Price(input=0.55, output=2.19)
MAX_ITERATIONS = 8

TASK = (
    "What is the default request timeout of the acme-http client in version 3? "
    "Answer with a number of seconds."
)
SYSTEM = (
    "You are research-agent. Use search_docs(query) to find evidence and cite it. Be certain before you "
    "answer: verify claims against a second source."
)
DOCS = [
    Document(
        "docs-v3-config",
        "acme-http 3 configuration reference (3.0 to 3.4): timeout (float, default 30.0) is the number of "
        "seconds to wait for the server to send response headers before raising TimeoutError.",
    ),
    Document(
        "changelog-3.2",
        "acme-http 3.2.0 changelog: the default read timeout for streaming requests changed from 30 "
        "seconds to 60 seconds; non-streaming requests are unchanged.",
    ),
    Document(
        "issue-881",
        "Issue 881: after upgrading to acme-http 3.2 my requests time out after 60 seconds instead of "
        "30. Is the default timeout 60 now? (closed: working as intended for streaming requests)",
    ),
    Document(
        "docs-v2-config",
        "acme-http 2.x (end of life since March 2023) configuration reference: timeout (float, default "
        "10.0) in seconds; retries (int, default 0); pool_size (int, default 10); proxies (dict, default "
        "none); verify (bool, default true).",
    ),
]
QUERIES = [
    "acme-http 3 default timeout seconds",
    "acme-http 3.2 changelog default timeout",
    "acme-http default timeout 30 or 60",
    "acme-http 3 default timeout seconds",
]
REASONING = [
    "The 3.x configuration reference says timeout defaults to 30.0 seconds. But I should verify against a "
    "second source as instructed. The changelog for 3.2 mentions 60 seconds for streaming requests. Is the "
    "question about streaming? It says 'request timeout', which could include streaming requests. If 3.2 "
    "changed the default then version 3 has two defaults depending on the minor version. Let me search the "
    "changelog directly to be sure which default applies to 'version 3'.",
    "The changelog says the streaming read timeout went from 30 to 60 in 3.2.0 and non-streaming requests "
    "are unchanged. So non-streaming is 30. But the issue report says requests time out after 60 seconds "
    "after upgrading, and it was closed as working as intended. That suggests 60 for some requests. The "
    "user asked for one number. Maybe the docs page is outdated and was not updated for 3.2. I should check "
    "whether the docs mention 3.2 specifically before answering.",
    "Docs say 30.0 for 3.x. Changelog says 60 for streaming since 3.2. Issue 881 says 60 after upgrade. "
    "Two sources say 60 in some form, one says 30. But the docs are the reference and the changelog limits "
    "the change to streaming. Then again, if most users of 3.2+ see 60 in practice, answering 30 could be "
    "wrong for them. I need to be certain before answering; search once more with a different query.",
    "I keep finding the same three documents. The reference says 30.0. The changelog says 60 for "
    "streaming. The issue says 60. Version 3 covers 3.0 to 3.4, so the default depends on the minor version "
    "and on streaming. The instructions say to verify claims against a second source; I have not yet found "
    "a second source that confirms 30 for non-streaming in 3.2 or later. Search again.",
]
REASONING_TOKENS = [6_912, 9_344, 11_776, 12_608, 14_080, 15_360, 16_128, 16_384]
VISIBLE_TOKENS = [212, 188, 240, 201, 226, 195, 233, 210]


def run(s: Session) -> None:
    docs = VectorStore(DOCS)

    def llm(**kwargs: Any) -> str | None:
        return s.llm(MODEL, provider="deepseek", price=PRICE, system=SYSTEM, **kwargs)

    with s.rec.agent_run(
        SERVICE, task=TASK, agent_id="research-agent-3", model=MODEL, provider="deepseek"
    ) as agent:
        messages: Any = TASK
        spent = 0
        for iteration in itertools.count(1):
            if iteration > MAX_ITERATIONS:
                with s.rec.guardrail(
                    "max-iterations",
                    checked=(
                        f"iteration {iteration} of at most {MAX_ITERATIONS}; {spent:,} reasoning tokens "
                        "spent; no final answer yet"
                    ),
                ) as guard:
                    guard.decide("stop", f"max_iterations={MAX_ITERATIONS} reached without a final answer")
                agent.fail(
                    f"stopped by the max-iterations guard after {MAX_ITERATIONS} iterations, no answer",
                    error_type="MaxIterationsExceeded",
                )
                return
            query = QUERIES[(iteration - 1) % len(QUERIES)]
            reasoning_tokens = REASONING_TOKENS[iteration - 1]
            spent += reasoning_tokens
            llm(
                messages=messages,
                reasoning=REASONING[(iteration - 1) % len(REASONING)],
                answer=f"I need to verify this once more before answering (check {iteration}).",
                tool=("search_docs", {"query": query}),
                input_tokens=1_650 + 2_300 * (iteration - 1),
                output_tokens=reasoning_tokens + VISIBLE_TOKENS[iteration - 1],
                reasoning_tokens=reasoning_tokens,
                seconds=round(reasoning_tokens / 180, 1),
            )
            with s.rec.memory_read(query, store="acme-docs", top_k=3) as memory:
                s.pause(0.4)
                found = docs.query(query, top_k=3)
                memory.documents(found)
            messages = [{"role": "tool", "parts": [{"type": "tool_call_response", "response": found}]}]
