from __future__ import annotations

from datetime import UTC, datetime

from bridge.versioning import StreamVersioner, backfill_version, to_micros


def test_stream_versions_strictly_increase_within_a_second() -> None:
    v = StreamVersioner()
    second = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    got = [v.next(second) for _ in range(3)]
    base = to_micros(second)
    assert got == [base, base + 1, base + 2]
    later = datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)
    assert v.next(later) == base + 1_000_000


def test_child_shard_continues_from_parent() -> None:
    parent = StreamVersioner()
    t = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(5):
        parent.next(t)
    child = StreamVersioner(parent.last)
    assert child.next(t) == parent.last + 1


def test_backfill_version_below_stream_versions_after_start() -> None:
    start = datetime(2026, 1, 1, 12, 0, 0, 750_000, tzinfo=UTC)
    v = backfill_version(start, margin_s=5)
    assert v == to_micros(datetime(2026, 1, 1, 11, 59, 55, tzinfo=UTC)) - 1
    # any stream record created at or after start - margin wins over the snapshot
    assert StreamVersioner().next(datetime(2026, 1, 1, 11, 59, 55, tzinfo=UTC)) > v
