"""The read budget of one back-fill process: a token bucket shared by every scan thread."""

from __future__ import annotations

import threading
import time


class Budget:
    """A token bucket for items/s and RCU/s, shared by threads; 0 disables a limit.

    Spending may overdraw the bucket (a page's size is known only after it is read); the
    next `wait` then sleeps until the debt is repaid, so the long-run rate holds.
    """

    def __init__(self, items_per_s: float = 0.0, rcu_per_s: float = 0.0) -> None:
        self.items_per_s = items_per_s
        self.rcu_per_s = rcu_per_s
        self._lock = threading.Lock()
        self._items = items_per_s
        self._rcu = rcu_per_s
        self._at = time.monotonic()

    @property
    def limited(self) -> bool:
        return self.items_per_s > 0 or self.rcu_per_s > 0

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed = now - self._at
        self._at = now
        if self.items_per_s:
            self._items = min(self.items_per_s, self._items + elapsed * self.items_per_s)
        if self.rcu_per_s:
            self._rcu = min(self.rcu_per_s, self._rcu + elapsed * self.rcu_per_s)

    def wait(self, stop: threading.Event | None = None) -> None:
        """Block until the bucket is out of debt."""
        while self.limited:
            with self._lock:
                self._refill()
                delay = 0.0
                if self.items_per_s and self._items < 0:
                    delay = max(delay, -self._items / self.items_per_s)
                if self.rcu_per_s and self._rcu < 0:
                    delay = max(delay, -self._rcu / self.rcu_per_s)
            if delay <= 0:
                return
            if stop is not None:
                if stop.wait(min(delay, 0.5)):
                    return
            else:
                time.sleep(min(delay, 0.5))

    def spend(self, items: int, rcu: float) -> None:
        with self._lock:
            self._refill()
            if self.items_per_s:
                self._items -= items
            if self.rcu_per_s:
                self._rcu -= rcu
