from __future__ import annotations

import pytest

from bridge.model.acks import AckTracker
from bridge.partitioning import murmur2, partition_for


def test_position_released_only_after_every_earlier_record() -> None:
    t: AckTracker[str] = AckTracker()
    a = t.add("p1")
    b = t.add("p2")
    c = t.add("p3")
    t.ack(c)
    assert t.safe_position() is None
    t.ack(a)
    assert t.safe_position() == "p1"
    t.mark("p3-page-end")
    t.ack(b)
    assert t.safe_position() == "p3-page-end"
    assert t.all_acked()


def test_failed_delivery_blocks_the_prefix() -> None:
    t: AckTracker[int] = AckTracker()
    a = t.add(1)
    b = t.add(2)
    t.ack(a, error="broker down")
    t.ack(b)
    assert t.safe_position() is None
    assert t.failure == "broker down"


def test_mark_without_pending_is_immediately_safe() -> None:
    t: AckTracker[str] = AckTracker()
    t.mark("empty")
    assert t.safe_position() == "empty"


# Vectors from Apache Kafka's UtilsTest.testMurmur2 (Java's signed ints).
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (bytes([ord("a"), ord("b"), ord("c")]), 479470107),
    ],
)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partition_is_positive_modulo() -> None:
    assert all(0 <= partition_for(bytes([i]), 7) < 7 for i in range(256))
