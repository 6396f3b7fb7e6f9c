"""The pure parts of `bridge.kafka.replay`: option parsing and the per-partition arithmetic."""

from __future__ import annotations

import pytest

from bridge.kafka.replay import Move, parse_datetime, parse_offsets, parse_partitions
from bridge.model.errors import ConfigError


def move(committed: int | None, wanted: int, low: int = 10, high: int = 50) -> Move:
    return Move("t", 0, committed, low, high, wanted, min(max(wanted, low), high))


def test_current_is_the_committed_offset_or_the_log_start() -> None:
    assert move(30, 20).current == 30
    assert move(None, 20).current == 10  # never committed: apply starts at the earliest
    assert move(3, 20).current == 10  # retention deleted what it had committed


def test_reprocessed_skipped_and_clamping() -> None:
    back = move(30, 20)
    assert (back.new, back.reprocessed, back.skipped, back.clamp_note) == (20, 10, 0, None)
    ahead = move(30, 45)
    assert (ahead.reprocessed, ahead.skipped) == (0, 15)
    low = move(30, 2)
    assert low.new == 10 and low.reprocessed == 20
    assert low.clamp_note == "2 is before the low watermark: clamped to 10"
    high = move(30, 99)
    assert high.new == 50 and high.clamp_note == "99 is past the high watermark: clamped to 50"


def test_parse_offsets_and_partitions() -> None:
    assert parse_offsets("0:12, 3:0") == {0: 12, 3: 0}
    for bad in ("0", "a:1", "0:-1", "0:1,0:2", ""):
        with pytest.raises(ConfigError, match="--to-offset"):
            parse_offsets(bad)
    assert parse_partitions("2,0") == {0, 2}
    for bad in ("x", "", "-1"):
        with pytest.raises(ConfigError, match="--partitions"):
            parse_partitions(bad)


def test_parse_datetime_is_utc_without_an_offset() -> None:
    assert parse_datetime("2025-10-09T08:53:20Z") == 1_760_000_000_000
    assert parse_datetime("2025-10-09T08:53:20") == parse_datetime("2025-10-09T10:53:20+02:00")
    assert parse_datetime("2025-10-09T08:53:20.250Z") % 1000 == 250
    # Record timestamps are whole ms: a time within a ms starts at the next one.
    assert parse_datetime("2025-10-09T08:53:20.000001Z") == 1_760_000_000_001
    with pytest.raises(ConfigError, match="not an ISO 8601 time"):
        parse_datetime("last tuesday")


def test_a_stream_records_change_time_is_its_approximate_creation_time() -> None:
    """The Kafka timestamp `replay --to-datetime` searches: ApproximateCreationDateTime (ms),
    even when the shard's versions had to step past it."""
    from datetime import UTC, datetime

    from bridge.model.event import ChangeEvent

    created = datetime(2025, 10, 9, 8, 53, 20, 123000, tzinfo=UTC)
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": {"S": "a"}},
            "NewImage": {"pk": {"S": "a"}},
            "SequenceNumber": "1",
            "ApproximateCreationDateTime": created,
        },
    }
    later_version = 1_760_000_000_999_999
    event = ChangeEvent.from_stream_record("t", record, later_version, "shardId-1")
    assert event.change_time_ms == 1_760_000_000_123
