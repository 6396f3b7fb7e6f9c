"""The one retry policy: exponential, capped, jittered, bounded, stoppable.

Every retry loop of the project (apply's sink writes and broker reads, the AWS calls of the
sources, the Kafka bookkeeping reads, the Alternator sink's BatchGetItem) takes its pauses
from a `Backoff` and waits them on a `Stop`, so a daemon's shutdown ends any wait at once.

The policy is data (a frozen `Backoff`); the count of one loop's failures is an `Attempts`
from `Backoff.start()`, so one policy can serve many loops at the same time.

Jitter, after the AWS architecture blog's "Exponential Backoff and Jitter":
- "full": a pause anywhere in [0, ceiling]: spreads many clients' retries the most;
- "equal": half the ceiling fixed, half random: never hammers a recovering target at once;
- "decorrelated": [base, 3 x the previous pause], capped: grows without a retry count;
- "none": the ceiling itself (only for reads that poll a broker settling within seconds).

Bounds: `max_retries` (failures after which the caller gives up; None = no bound) and
`max_elapsed_s` (give up when the next pause would end past it). Neither set means "until
stopped", which only a loop holding a `Stop` may use.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Jitter = Literal["full", "equal", "decorrelated", "none"]


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.1
    cap_s: float = 10.0
    jitter: Jitter = "full"
    max_retries: int | None = None
    max_elapsed_s: float | None = None
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.base_s <= self.cap_s:
            raise ValueError(f"backoff: need 0 <= base_s <= cap_s, got {self.base_s}, {self.cap_s}")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError(f"backoff: max_retries must be >= 0, got {self.max_retries}")
        if self.max_elapsed_s is not None and self.max_elapsed_s < 0:
            raise ValueError(f"backoff: max_elapsed_s must be >= 0, got {self.max_elapsed_s}")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered pause after failure number `attempt` (1-based)."""
        # 2.0, not 2: typeshed types int ** int as Any; the exponent is clamped so it stays finite.
        return min(self.cap_s, self.base_s * 2.0 ** min(max(attempt - 1, 0), 60))

    def delay(self, attempt: int, previous: float | None = None) -> float:
        """The pause after failure number `attempt`, in seconds; `previous` is the pause
        before it (decorrelated jitter grows from it)."""
        ceiling = self.ceiling(attempt)
        if self.jitter == "full":
            return self.rng.uniform(0.0, ceiling)
        if self.jitter == "equal":
            return ceiling / 2 + self.rng.uniform(0.0, ceiling / 2)
        if self.jitter == "decorrelated":
            last = self.base_s if previous is None else previous
            return min(self.cap_s, self.rng.uniform(self.base_s, max(self.base_s, last * 3)))
        return ceiling

    def exhausted(self, failures: int) -> bool:
        """True when `failures` failures used up the bound on retries."""
        return self.max_retries is not None and failures > self.max_retries

    def start(self) -> Attempts:
        return Attempts(self)


class Attempts:
    """One loop's failures under a `Backoff`: `failed()` gives the next pause, or None when
    the policy gives up; `reset()` after a success starts the count (and the clock) again."""

    def __init__(self, policy: Backoff) -> None:
        self.policy = policy
        self.failures = 0
        self._previous: float | None = None
        self._started: float | None = None

    def failed(self) -> float | None:
        policy = self.policy
        now = policy.clock()
        if self._started is None:
            self._started = now
        self.failures += 1
        if policy.exhausted(self.failures):
            return None
        delay = policy.delay(self.failures, self._previous)
        if policy.max_elapsed_s is not None and now - self._started + delay > policy.max_elapsed_s:
            return None
        self._previous = delay
        return delay

    def reset(self) -> None:
        self.failures = 0
        self._previous = None
        self._started = None


class Stop(threading.Event):
    """A stop request that every wait notices at once: threads through `wait`, coroutines
    through `wait_async` (woken from whichever thread calls `set`)."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiters_lock = threading.Lock()

    def set(self) -> None:
        super().set()
        with self._waiters_lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, future)

    async def wait_async(self, seconds: float) -> bool:
        """Wait up to `seconds` without blocking the event loop; True if stopped meanwhile."""
        if self.is_set():
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._waiters_lock:
            self._waiters.append((loop, future))
        if self.is_set():  # set between the check and the registration
            _settle(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=max(0.0, seconds))
        except TimeoutError:
            pass
        finally:
            with self._waiters_lock:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))
        return self.is_set()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
