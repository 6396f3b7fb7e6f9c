"""When is a source position safe to checkpoint? When every record before it is acknowledged.

Records are acknowledged by the broker out of order across partitions. The tracker keeps
the records and position marks of one source part (a shard, a scan segment, an export file)
in the order they were produced, and releases the position of the longest fully acknowledged
prefix. A failed delivery blocks the prefix for good: its position is never released.

Records produced together (a stream page) can be registered as one group (`add_many`): one
entry and one position for the group, released once every record of it and everything before
it is acknowledged. That costs one entry per page instead of one per record; a restart then
re-publishes at most the unacknowledged page, as it would re-publish any unacknowledged record.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Generic, TypeVar

P = TypeVar("P")


class AckTracker(Generic[P]):
    """Thread-safe: librdkafka delivery callbacks run on whichever thread calls poll/flush."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        # Entries in production order: [records not yet acknowledged, position-or-None,
        # a delivery failed]. A mark is an entry with nothing to acknowledge.
        self._pending: deque[list[Any]] = deque()
        self._index: dict[int, list[Any]] = {}
        self._safe: P | None = None
        self._failed: str | None = None
        self._in_flight = 0
        self.acked = 0

    def add(self, position: P | None = None) -> int:
        """Register one produced record; `position` is where the source stands after it."""
        return self.add_many(1, position)

    def add_many(self, count: int, position: P | None = None) -> int:
        """Register `count` records produced together; each is acknowledged with
        `ack(seq)` of the one sequence returned, and `position` (where the source stands
        after the last of them) is safe once all of them and all before are acknowledged."""
        if count < 1:
            raise ValueError(f"a group has at least one record, not {count}")
        with self._lock:
            seq = self._next
            self._next += 1
            entry: list[Any] = [count, position, False]
            self._pending.append(entry)
            self._index[seq] = entry
            self._in_flight += count
            return seq

    def mark(self, position: P) -> None:
        """A position reached without producing a record (an empty page, a closed shard)."""
        with self._lock:
            if not self._pending:
                self._safe = position
                return
            self._next += 1
            self._pending.append([0, position, False])

    def ack(self, seq: int, error: str | None = None) -> None:
        """One record of `seq` is delivered (or failed, with `error`)."""
        with self._lock:
            entry = self._index.get(seq)
            if entry is None:
                return
            self._in_flight -= 1
            entry[0] -= 1
            if not entry[0]:
                del self._index[seq]
            if error is not None:
                if self._failed is None:
                    self._failed = error
                entry[2] = True  # the prefix stops here for good
                return
            self.acked += 1
            if entry[0] or entry[2]:
                return
            pending = self._pending
            while pending and not pending[0][0] and not pending[0][2]:
                done = pending.popleft()
                if done[1] is not None:
                    self._safe = done[1]

    def safe_position(self) -> P | None:
        """The furthest position all of whose records are acknowledged (None: nothing yet)."""
        with self._lock:
            return self._safe

    @property
    def in_flight(self) -> int:
        """Records produced and not yet acknowledged (a failed one is no longer in flight)."""
        with self._lock:
            return self._in_flight

    @property
    def failure(self) -> str | None:
        with self._lock:
            return self._failed

    def all_acked(self) -> bool:
        with self._lock:
            return not self._pending
