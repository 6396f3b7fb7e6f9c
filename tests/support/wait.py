"""One way to wait for a condition: poll it until it holds or the time is up, then say what."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], object],
    timeout_s: float,
    what: str,
    *,
    interval: float = 0.05,
    details: Callable[[], str] | None = None,
) -> None:
    """Return once `predicate()` is true; past `timeout_s` seconds, fail naming `what`.

    `details`, when given, is called on failure for what the message should add (a log's
    tail, a count seen so far). The predicate is checked once more at the deadline, so a
    condition that comes true during the last sleep is not reported as missed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    if predicate():
        return
    extra = f"\n{details()}" if details is not None else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{extra}")
