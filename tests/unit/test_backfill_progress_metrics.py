"""`ProgressMetrics` copies a back-fill's Stats into a registry: the items counter grows by
what was published since the last copy, the parts gauges follow, and the daemon's progress
clock moves only when work was done (a stuck back-fill must look stalled)."""

from __future__ import annotations

from bridge.runtime.metrics import LAST_PROGRESS, Metrics
from connectors.sources.backfill.progress_metrics import ProgressMetrics
from connectors.sources.backfill.stats import Stats


def test_counts_follow_the_stats_and_progress_means_work() -> None:
    metrics, stats = Metrics(), Stats(total_items=50)
    progress = ProgressMetrics("t", stats, metrics=metrics, every_s=3600)
    stats.add(parts_total=4, parts_done=1, parts_skipped=1)  # one part finished before
    progress.update()
    assert metrics.get("ddb_bridge_backfill_items_published_total", table="t") == 0
    assert metrics.get("ddb_bridge_backfill_parts", table="t") == 4
    assert metrics.get("ddb_bridge_backfill_parts_done", table="t") == 1
    assert metrics.get("ddb_bridge_backfill_items_expected", table="t") == 50
    first = metrics.get(LAST_PROGRESS, daemon="backfill")
    assert first > 0

    metrics.set(LAST_PROGRESS, 1.0, daemon="backfill")
    progress.update()  # nothing new: the clock stays
    assert metrics.get(LAST_PROGRESS, daemon="backfill") == 1.0

    stats.add(published=30, parts_done=2)
    progress.update()
    stats.add(published=12)
    progress.update()
    assert metrics.get("ddb_bridge_backfill_items_published_total", table="t") == 42
    assert metrics.get("ddb_bridge_backfill_parts_done", table="t") == 3
    assert metrics.get(LAST_PROGRESS, daemon="backfill") > 1.0
