"""Back-fill progress as Prometheus metrics, while the back-fill runs.

A back-fill can take days; an operator watches it on the same dashboard as `stream` and
`apply`. `ProgressMetrics` copies the command's `Stats` (which already fold in its helper
processes' counts) into the registry on a timer, and once more at the end, so a scrape sees
items published and parts done/total without the back-fill's threads touching the registry.
"""

from __future__ import annotations

import threading

from bridge.runtime.metrics import (
    BACKFILL_ITEMS,
    BACKFILL_ITEMS_EXPECTED,
    BACKFILL_PARTS,
    BACKFILL_PARTS_DONE,
    REGISTRY,
    Metrics,
)
from connectors.sources.backfill.stats import Stats

EVERY_S = 1.0


class ProgressMetrics:
    def __init__(
        self, table: str, stats: Stats, metrics: Metrics = REGISTRY, every_s: float = EVERY_S
    ) -> None:
        self.table = table
        self.stats = stats
        self.metrics = metrics
        self.every_s = every_s
        self._published = 0  # what the counter holds from this command
        self._last_work: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"backfill-metrics-{table}", daemon=True
        )

    def start(self) -> None:
        self.update()
        self._thread.start()

    def update(self) -> None:
        with self.stats.lock:
            published = self.stats.published
            parts, done = self.stats.parts_total, self.stats.parts_done
            expected = self.stats.total_items
        # A counter only grows: add what was published since the last update.
        if published > self._published:
            self.metrics.inc(BACKFILL_ITEMS, published - self._published, table=self.table)
            self._published = published
        else:
            self.metrics.inc(BACKFILL_ITEMS, 0, table=self.table)  # the series exists from 0
        self.metrics.set(BACKFILL_PARTS, parts, table=self.table)
        self.metrics.set(BACKFILL_PARTS_DONE, done, table=self.table)
        if expected is not None:
            self.metrics.set(BACKFILL_ITEMS_EXPECTED, expected, table=self.table)
        # Progress is work done (what /healthz and the stalled-daemon alert read), not this
        # timer ticking: a back-fill stuck on a throttled table shows as stalled.
        if (published, done) != self._last_work:
            self._last_work = (published, done)
            self.metrics.progress("backfill")

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.update()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.update()
