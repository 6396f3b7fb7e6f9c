"""The cluster chaos run's check of the topic: every stream record once and in order, except
the second copies a lease taken over from a checkpoint re-publishes (tests/chaos/)."""

from __future__ import annotations

from tests.chaos.invariants import TopicEvent, retaken_checkpoints, stream_records_once_in_order

SHARD = "shardId-1"
LOG = """\
12:49:46,499 INFO worker: took lease table=t shard=shardId-1 checkpoint=TRIM_HORIZON
12:50:23,585 WARNING processor: lease lost, shard processing stops table=t shard=shardId-1
12:50:27,163 INFO worker: took lease table=t shard=shardId-1 checkpoint=20 stolen=False
"""


def ev(offset: int, key: str, version: int, seq: int) -> TopicEvent:
    return TopicEvent(0, offset, key, version, SHARD, str(seq), 0)


def test_the_log_says_where_a_lost_lease_was_taken_again() -> None:
    assert retaken_checkpoints(LOG) == {SHARD: [20]}
    assert retaken_checkpoints(LOG.splitlines()[0]) == {}, "a first take is no re-take"


def test_a_record_after_the_retake_checkpoint_may_have_one_copy_more() -> None:
    events = [ev(0, "a", 1, 10), ev(1, "b", 2, 25), ev(2, "a", 3, 30), ev(3, "b", 2, 25)]
    lines, republished = stream_records_once_in_order(events, retaken_checkpoints(LOG))
    assert (lines, republished) == ([], 1)


def test_a_copy_before_the_checkpoint_or_without_a_retake_is_a_violation() -> None:
    before = [ev(0, "a", 1, 10), ev(1, "a", 1, 10)]
    lines, _ = stream_records_once_in_order(before, retaken_checkpoints(LOG))
    assert lines and "2 times" in lines[0]
    after = [ev(0, "b", 2, 25), ev(1, "b", 2, 25)]
    lines, _ = stream_records_once_in_order(after, {})
    assert lines and "2 times" in lines[0]


def test_versions_going_backwards_along_a_partition_are_a_violation() -> None:
    lines, _ = stream_records_once_in_order([ev(0, "a", 5, 10), ev(1, "a", 4, 11)], {})
    assert lines == ["key a: version 4 at offset 1 follows version 5 at offset 0"]
