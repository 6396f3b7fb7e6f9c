"""When is a source position safe to checkpoint? When every record before it is acknowledged.

Records are acknowledged by the broker out of order across partitions. The tracker keeps
the records and position marks of one source part (a shard, a scan segment, an export file)
in the order they were produced, and releases the position of the longest fully acknowledged
prefix. A failed delivery blocks the prefix for good: its position is never released.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

P = TypeVar("P")


class AckTracker(Generic[P]):
    """Thread-safe: librdkafka delivery callbacks run on whichever thread calls poll/flush."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        # Entries in production order: [seq, position-or-None, acked]
        self._pending: deque[list[object]] = deque()
        self._index: dict[int, list[object]] = {}
        self._safe: P | None = None
        self._failed: str | None = None
        self.acked = 0

    def add(self, position: P | None = None) -> int:
        """Register one produced record; `position` is where the source stands after it."""
        with self._lock:
            seq = self._next
            self._next += 1
            entry: list[object] = [seq, position, False]
            self._pending.append(entry)
            self._index[seq] = entry
            return seq

    def mark(self, position: P) -> None:
        """A position reached without producing a record (an empty page, a closed shard)."""
        with self._lock:
            if not self._pending:
                self._safe = position
                return
            seq = self._next
            self._next += 1
            self._pending.append([seq, position, True])

    def ack(self, seq: int, error: str | None = None) -> None:
        with self._lock:
            entry = self._index.pop(seq, None)
            if entry is None:
                return
            if error is not None:
                if self._failed is None:
                    self._failed = error
                return  # stays unacknowledged: the prefix stops here
            entry[2] = True
            self.acked += 1
            while self._pending and self._pending[0][2]:
                done = self._pending.popleft()
                if done[1] is not None:
                    self._safe = done[1]  # type: ignore[assignment]

    def safe_position(self) -> P | None:
        """The furthest position all of whose records are acknowledged (None: nothing yet)."""
        with self._lock:
            return self._safe

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._index)

    @property
    def failure(self) -> str | None:
        with self._lock:
            return self._failed

    def all_acked(self) -> bool:
        with self._lock:
            return not self._pending
