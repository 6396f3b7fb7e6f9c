"""Backoff with jitter for transient sink errors.

"Equal jitter": half the capped exponential delay is fixed, half random. The fixed half keeps
a retry storm from hammering a recovering target; the random half spreads many workers'
retries apart so they do not return in lockstep.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base_ms: int = 200
    max_ms: int = 30_000
    max_retries: int = 0  # 0 = forever
    rng: random.Random = field(default_factory=random.Random)

    def delay_s(self, attempt: int) -> float:
        """The pause before retry number `attempt` (1-based), in seconds."""
        # 2.0, not 2: typeshed types int ** int as Any (a negative exponent gives a float).
        cap = min(self.max_ms, self.base_ms * 2.0 ** min(attempt - 1, 30))
        return (cap / 2 + self.rng.uniform(0, cap / 2)) / 1000.0

    def exhausted(self, attempt: int) -> bool:
        return self.max_retries > 0 and attempt > self.max_retries


class Stopper:
    """A stop request that a sleeping retry loop notices at once (SIGTERM during an outage)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def stopping(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if a stop was requested meanwhile."""
        return self._event.wait(seconds)
