"""What one back-fill process counts: the progress bar's and the final summary's figures.

A command running several processes (`--processes`) folds its helpers' counts into its own
`Stats` as they report them (`work`, `add_work`), so the progress bar and the summary show
the whole command."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Stats:
    """What the progress bar and the final summary show. Thread-safe increments."""

    total_items: int | None = None
    published: int = 0
    skipped_ttl: int = 0
    skipped_bad: int = 0
    bytes_read: int = 0  # compressed bytes for exports, response bytes (estimated) for scans
    bytes_uncompressed: int = 0
    parts_total: int = 0
    parts_done: int = 0
    parts_skipped: int = 0  # already finished when this process started
    parts_claimed: int = 0
    # Monotonic times: the command's start, its first and its latest item. The summary
    # tells the reading rate (the progress bar's) from the whole run's, start-up included.
    started_at: float = field(default_factory=time.monotonic)
    first_item_at: float | None = None
    last_item_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)
            if any(counts.get(name, 0) > 0 for name in ITEMS):
                now = time.monotonic()
                if self.first_item_at is None:
                    self.first_item_at = now
                self.last_item_at = now

    @property
    def reading_s(self) -> float | None:
        """From the first item to the last (None before two readings)."""
        if self.first_item_at is None or self.last_item_at is None:
            return None
        return self.last_item_at - self.first_item_at

    @property
    def startup_s(self) -> float | None:
        return None if self.first_item_at is None else self.first_item_at - self.started_at

    @property
    def seen(self) -> int:
        return self.published + self.skipped_ttl + self.skipped_bad

    def work(self) -> dict[str, int]:
        """What this process did (not what it found done): the counts a helper process
        reports to the command's first process."""
        with self.lock:
            counts = {name: getattr(self, name) for name in WORK}
            counts["parts_done"] = self.parts_done - self.parts_skipped
        return counts

    def add_work(self, before: dict[str, int], now: dict[str, int]) -> None:
        """Add what a helper did between two of its reports."""
        self.add(**{name: now[name] - before.get(name, 0) for name in now})


# The counters of items read (published or skipped).
ITEMS = ("published", "skipped_ttl", "skipped_bad")

# The counters that are work done by a process; parts_done counts only the parts it finished.
WORK = (
    "published",
    "skipped_ttl",
    "skipped_bad",
    "bytes_read",
    "bytes_uncompressed",
    "parts_claimed",
    "parts_done",
)
