"""The cut-over verdict's rules and the catch-up estimate, on hand-made readings (the e2e
test in tests/e2e/test_status_cli.py takes them from a real pipeline)."""

from __future__ import annotations

from dataclasses import replace

from bridge.kafka.lag import PartitionLag
from bridge.status.kafka import status_from_readings
from bridge.status.report import (
    BackfillRun,
    DurabilityStatus,
    GroupStatus,
    ShardStatus,
    StreamStatus,
    TableStatus,
    TargetStatus,
    VerifyOutcome,
    attention,
    verdict,
)

NOW = 10_000_000


def _table(**changes: object) -> TableStatus:
    table = TableStatus(
        table="orders",
        stream_only=False,
        item_lifetime_s=None,
        stream=StreamStatus(
            stream_arn="arn:s",
            captured_since_ms=1_000,
            shards=[ShardStatus("shardId-1", "w1", "42", 1.0, False, unread=0, ms_behind=0)],
        ),
        backfill_runs=[
            BackfillRun("r1", "scan", "DONE", 2, 2, 30, None, 2_000, 5_000),
        ],
        dlq_topic="ddb.orders.dlq",
        dlq_depth=0,
        targets=[],
    )
    return replace(table, **changes)  # type: ignore[arg-type]


GROUP = GroupStatus("ddb-bridge.apply.pg", "ddb.orders.changes", [], lag=0)
VERIFY = VerifyOutcome("orders", "pg", 6_000, 7_000, 30, 30, 0, 0, 0, 1.0)


def test_all_conditions_met_is_ready() -> None:
    assert verdict(_table(), GROUP, VERIFY, "pg", NOW).ready


def test_each_missing_condition_is_named() -> None:
    running = BackfillRun("r2", "scan", "PENDING", 4, 1, 7, None, 8_000, None)
    table = _table(
        backfill_runs=[_table().backfill_runs[0], running],
        dlq_depth=2,
        stream=StreamStatus(
            stream_arn="arn:s",
            captured_since_ms=1_000,
            data_loss=[{"shard_id": "shardId-0", "at_ms": 1, "message": "trimmed"}],
            shards=[ShardStatus("shardId-1", "w1", "42", 1.0, False, unread=5, ms_behind=900)],
        ),
    )
    result = verdict(table, replace(GROUP, lag=3), None, "pg", NOW)
    assert not result.ready
    assert result.missing == [
        "back-fill run r2 is not finished (1/4 parts, 7 items)",
        "data-loss alarm on shardId-0: trimmed",
        "stream producer behind on 1 shard (oldest unread change 900 ms old)",
        "apply group ddb-bridge.apply.pg is 3 events behind",
        "2 dead letters in ddb.orders.dlq",
        "verify has not run for pg",
    ]


def test_a_verify_before_the_back_fill_finished_or_sampled_or_with_differences_is_not_enough() -> (
    None
):
    early = replace(VERIFY, started_at_ms=4_000)
    assert verdict(_table(), GROUP, early, "pg", NOW).missing == [
        "the last verify of pg ran before the back-fill finished"
    ]
    sampled = replace(VERIFY, sample_rate=0.1, different=1)
    assert verdict(_table(), GROUP, sampled, "pg", NOW).missing == [
        "the last verify of pg checked a sample (0.1), not every item",
        "the last verify of pg found 1 difference",
    ]


def test_stream_only_waits_for_the_item_lifetime_instead_of_a_back_fill() -> None:
    young = _table(stream_only=True, item_lifetime_s=86_400, backfill_runs=[])
    (missing,) = verdict(young, GROUP, VERIFY, "pg", NOW).missing
    assert "capture began 9999 s ago, less than the item lifetime 86400 s" in missing
    old = replace(young, item_lifetime_s=60)
    assert verdict(old, GROUP, VERIFY, "pg", NOW).ready
    assert verdict(_table(backfill_runs=[]), GROUP, VERIFY, "pg", NOW).missing == [
        "no back-fill has run (`ddb-bridge backfill`, or declare stream_only)"
    ]


def test_catch_up_estimate_from_two_readings() -> None:
    def reading(committed: int, end: int) -> list[PartitionLag]:
        return [PartitionLag("t", 0, committed, 0, end)]

    pair = ("g", "t")
    # 100 consumed, 20 new in 2 s: lag 100 -> 20, falling 40/s, 0.5 s to go.
    falling = status_from_readings(pair, reading(0, 100), reading(100, 120), 2.0)
    assert (falling.lag, falling.consumed_per_s, falling.eta_s) == (20, 50.0, 0.5)
    stalled = status_from_readings(pair, reading(0, 100), reading(0, 130), 2.0)
    assert stalled.eta_s is None and stalled.note == "lag is not falling"
    assert status_from_readings(pair, None, None, 0.0).lag is None


def test_a_topic_not_durable_on_a_cluster_needs_attention_with_the_fix() -> None:
    fragile = DurabilityStatus(3, 3, 1, False, False, ["kafka-configs.sh … min.insync.replicas=2"])
    (line,) = attention([_table(durability=fragile)], None)
    assert "not durable" in line and "min.insync.replicas 1" in line and "kafka-configs" in line
    durable = DurabilityStatus(3, 3, 2, True, False, [])
    single = DurabilityStatus(1, 1, 1, False, True, [])  # development: quiet
    assert attention([_table(durability=durable), _table(durability=single)], None) == []


def test_events_deleted_before_apply_read_them_block_the_verdict_until_a_new_back_fill() -> None:
    from bridge.kafka.skipped_offsets import SkippedRange
    from bridge.status.report import attention

    # Found by apply at 6_000, after the back-fill run r1 (created at 2_000) began.
    found = SkippedRange(partition=2, first_offset=100, last_offset=149, detected_at_ms=6_000)
    group = replace(GROUP, skipped=[found])
    result = verdict(_table(), group, VERIFY, "pg", NOW)
    assert result.missing == [
        "apply group ddb-bridge.apply.pg skipped up to 50 events of orders deleted from the "
        "change topic before it read them (partition 2 offsets 100..149): back-fill pg again"
    ]
    # A back-fill started after the skip and finished: repaired.
    again = BackfillRun("r2", "scan", "DONE", 2, 2, 30, None, 7_000, 8_000)
    repaired = _table(backfill_runs=[_table().backfill_runs[0], again])
    assert verdict(repaired, group, replace(VERIFY, started_at_ms=9_000), "pg", NOW).ready
    # One only `status` sees (committed below the log start, apply not run since): never
    # repaired by an older back-fill.
    pending = replace(GROUP, skipped=[replace(found, detected_at_ms=None)])
    assert not verdict(repaired, pending, VERIFY, "pg", NOW).ready
    # And it needs attention (exit 1).
    table = _table()
    table.targets.append(
        TargetStatus(
            "pg", GROUP.group, GROUP.topic, [], 0, None, None, VERIFY, result, skipped=[found]
        )
    )
    assert any("skipped up to 50 events" in line for line in attention([table], None))


def test_the_group_status_carries_every_partition_s_skipped_ranges() -> None:
    from bridge.kafka.skipped_offsets import SkippedRange

    gone = SkippedRange(1, 5, 19, None)
    lags = [
        PartitionLag("ddb.orders.changes", 1, committed=5, start=20, end=30, skipped=(gone,)),
        PartitionLag("ddb.orders.changes", 0, committed=7, start=0, end=7),
    ]
    status = status_from_readings(("g", "ddb.orders.changes"), None, lags, 0.0)
    assert status.skipped == [gone]
