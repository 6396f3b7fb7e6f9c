"""Fold the Kafka clients' repeated lines: while a broker is unreachable, librdkafka logs a
"Connect to … failed: Connection refused" per connection attempt and aiokafka one per
reconnect, hundreds a minute, burying the one line that says what is wrong.

`RepeatFold` lets the first line of a kind through, drops the same kind (the text with its
numbers — ports aside, timings, counters — blanked) for `window_s`, and then lets the next one
through with how many it folded. Only the Kafka clients' loggers are folded; the bridge's own
lines never are.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

FOLDED_LOGGERS = ("rdkafka", "aiokafka", "kafka")
_NUMBERS = re.compile(r"(?<![:#])\b\d+(\.\d+)?(ms|s)?\b")


def _kind(record: logging.LogRecord) -> str:
    return f"{record.name}|{record.levelno}|{_NUMBERS.sub('#', record.getMessage())}"


class RepeatFold(logging.Filter):
    """A handler filter: the first line of a kind in each `window_s`, with the count folded."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (window start, folded count)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(FOLDED_LOGGERS):
            return True
        kind = _kind(record)
        now = self.clock()
        with self._lock:
            seen = self._seen.get(kind)
            if seen is not None and now - seen[0] < self.window_s:
                self._seen[kind] = (seen[0], seen[1] + 1)
                return False
            self._seen[kind] = (now, 0)
            if len(self._seen) > 1000:  # kinds of a long-lived daemon: forget the oldest
                del self._seen[next(iter(self._seen))]
        if seen is not None and seen[1]:
            record.msg = f"{record.getMessage()} ({seen[1]} similar lines folded in the last "
            record.msg += f"{self.window_s:g} s)"
            record.args = None
        return True
