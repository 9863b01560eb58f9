"""The one way tests (and benchmarks) wait for something another thread or process does: poll with a
deadline, sleeping between looks.

Why: on a shared 2-core machine a loop that retries at once starves the very server or child process
it waits for, and a loop without a deadline hangs the suite instead of failing it. The deadline is a
guard against hanging forever, never a performance limit: how fast something happens is measured in
benchmarks/, not asserted. A timeout fails with the name of what was awaited (and, when given, the
details that explain why, such as a server's log).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    interval: float = 0.05,
    what: str = "the condition",
    details: Callable[[], str] | None = None,
) -> T:
    """Call `predicate` every `interval` seconds until it returns something truthy, and return that.

    Raises AssertionError after `timeout` seconds naming `what` (plus `details()` when given). An
    exception from the predicate itself propagates at once: that is how a caller fails early, for
    example when the process it waits for has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:g} s waiting for {what}"
            if details is not None:
                message += ":\n" + details()
            raise AssertionError(message)
        time.sleep(interval)
