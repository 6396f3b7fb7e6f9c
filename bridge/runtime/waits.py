"""The waits a daemon's loop is in on purpose, for `/livez` (bridge/runtime/metrics_server.py).

A loop that stops turning is either wedged or waiting for something it cannot do without: a
broker that is down (a full producer queue, a flush), a target that refuses writes (the
retry backoff). Code that waits like that says so with `with waiting("Kafka ..."):`; while any
such wait is in progress, a stalled loop still counts as alive, so a liveness probe does not
restart every pod of a fleet during a broker outage (readiness shows the outage instead).
Process-wide on purpose: one process runs one daemon, and the waits happen in its worker
threads (shard consumers, apply's sink thread), not in the loop that beats.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_ids = itertools.count()
_waits: dict[int, tuple[str, float]] = {}  # id -> (what is waited for, monotonic start)


@contextmanager
def waiting(on: str) -> Iterator[None]:
    """Mark the enclosed block as a legitimate wait for `on` (e.g. "Kafka")."""
    with _lock:
        key = next(_ids)
        _waits[key] = (on, time.monotonic())
    try:
        yield
    finally:
        with _lock:
            del _waits[key]


def waits_now() -> list[tuple[str, float]]:
    """The waits in progress, oldest first: (what for, seconds so far)."""
    now = time.monotonic()
    with _lock:
        found = sorted(_waits.values(), key=lambda w: w[1])
    return [(on, now - since) for on, since in found]
