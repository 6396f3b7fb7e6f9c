"""What one back-fill process counts: the progress bar's and the final summary's figures."""

from __future__ import annotations

import threading
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
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    @property
    def seen(self) -> int:
        return self.published + self.skipped_ttl + self.skipped_bad
