"""bridge.kafka.lag's arithmetic (tests/integration/test_lag.py measures a real broker)."""

from __future__ import annotations

from bridge.kafka.lag import PartitionLag, caught_up, total_lag


def lag(committed: int | None, start: int, end: int) -> int:
    return PartitionLag("t", 0, committed, start, end).lag


def test_lag_counts_from_the_committed_offset_or_the_log_start() -> None:
    assert lag(None, 0, 7) == 7  # never committed: everything is behind
    assert lag(3, 0, 7) == 4
    assert lag(7, 0, 7) == 0
    # Retention deleted records the group never read: they cannot be applied any more.
    assert lag(2, 5, 7) == 2
    assert lag(None, 5, 7) == 2
    assert lag(9, 0, 7) == 0  # a committed offset past a stale end is not negative lag


def test_total_and_caught_up_sum_partitions() -> None:
    parts = [PartitionLag("t", 0, 5, 0, 5), PartitionLag("t", 1, None, 0, 2)]
    assert total_lag(parts) == 2 and not caught_up(parts)
    assert caught_up(parts[:1]) and caught_up([])
