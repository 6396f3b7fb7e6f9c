"""A fixed pool of reader threads serving any number of shards, and the idle backoff.

One thread per shard does not scale to hundreds of tables: every thread polls on its own
clock, nothing caps how many AWS calls run at once, and memory grows with the shard count.
Here a shard is a task with a due time; `max_concurrent_requests` threads take the task that
is due soonest, run one step of it (one GetRecords page: read, publish, maybe checkpoint) and
put it back with the delay the step asked for. So at most that many calls, and pages of
records, are in flight at once, whatever the number of shards, and a shard waiting out its
idle backoff costs a heap entry, not a thread.

Delivery guarantee: none on its own; a task's steps run one at a time, in order, so a shard
is read and published in sequence order as with a thread of its own.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)


class IdleBackoff:
    """The pause before a shard's next GetRecords call.

    After a full page none (a backlog: read on at once); after any other page with records
    `first_s` (the shard is at its tip: the next records are still being written); after an
    empty page twice the last pause, from `first_s` up to `max_s`.
    """

    def __init__(self, first_s: float, max_s: float) -> None:
        self.first_s = first_s
        self.max_s = max(first_s, max_s)
        self.current_s = 0.0

    def after(self, records: int, full: bool = False) -> float:
        """The delay to wait after a page of `records` records (`full`: as many as asked)."""
        if full:
            self.current_s = 0.0
        elif records or self.current_s <= 0.0:
            self.current_s = self.first_s
        else:
            self.current_s = min(self.max_s, self.current_s * 2)
        return self.current_s


class Task(Protocol):
    """A unit of work the pool runs one step at a time."""

    name: str
    stop_requested: threading.Event

    def step(self) -> float | None:
        """Do one step; the seconds until the next one, or None when the task is finished.

        Must not raise: a task reports its own failures (see `ShardConsumer`)."""
        ...


class ReaderPool:
    """`threads` threads running due tasks, soonest first (FIFO among equally due ones)."""

    def __init__(self, threads: int, name: str = "stream-reader") -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Task]] = []
        # The heap entry (its order number) each waiting task currently counts by; an entry
        # whose number differs is stale (the task was woken early) and is skipped.
        self._entry: dict[int, int] = {}
        self._order = itertools.count()
        self._closing = False
        self.running = 0  # steps under way now: never above `threads`
        self.peak_running = 0
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def size(self) -> int:
        return len(self._threads)

    def submit(self, task: Task, delay_s: float = 0.0) -> None:
        with self._cond:
            self._push(task, delay_s)

    def wake(self, task: Task) -> None:
        """Run a waiting task's next step now (e.g. to stop it without waiting its delay)."""
        with self._cond:
            if id(task) in self._entry:
                self._push(task, 0.0)

    def _push(self, task: Task, delay_s: float) -> None:
        if task.stop_requested.is_set():
            delay_s = 0.0  # a stop asked for while the step ran must not wait a long backoff
        order = next(self._order)
        self._entry[id(task)] = order
        heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay_s), order, task))
        self._cond.notify()

    def _next(self) -> Task | None:
        with self._cond:
            while True:
                if self._closing:
                    return None
                while self._heap and self._entry.get(id(self._heap[0][2])) != self._heap[0][1]:
                    heapq.heappop(self._heap)  # stale entry of a task woken early
                if not self._heap:
                    self._cond.wait()
                    continue
                due, _order, task = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                del self._entry[id(task)]
                self.running += 1
                self.peak_running = max(self.peak_running, self.running)
                return task

    def _loop(self) -> None:
        while True:
            task = self._next()
            if task is None:
                return
            delay: float | None = None
            try:
                delay = task.step()
            except Exception:
                # Tasks handle their own errors; this is a bug, and the task ends here.
                log.error("reader task failed", extra={"task": task.name}, exc_info=True)
            finally:
                with self._cond:
                    self.running -= 1
            if delay is not None:
                self.submit(task, delay)

    def close(self) -> None:
        """Stop the threads (after their current step); waiting tasks are dropped."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()


__all__ = ["IdleBackoff", "ReaderPool", "Task"]
