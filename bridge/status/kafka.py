"""The Kafka half of `status`: apply groups' lag and catch-up estimate (the DLQ depth is
`bridge.dlq.topic.dlq_depth`, shared with `ddb-bridge dlq`: re-driven records excluded).

Lag is the broker's high watermark minus the group's committed offset, per partition
(`bridge.kafka.lag.group_lag`, read without joining the group). The time to catch up is estimated
from two readings `sample_s` apart: the group's consumption rate (committed offsets moved)
and how fast the lag itself fell (consumption minus new events); the estimate is the lag
divided by that net rate, and none when the lag is not falling. A single reading cannot
tell a busy group from a stalled one, hence the second sample.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from bridge.kafka import reads as kafka_reads
from bridge.kafka.lag import PartitionLag, group_lag
from bridge.runtime.settings import KafkaSettings
from bridge.status.report import GroupStatus, PartitionStatus


def _position(p: PartitionLag) -> int:
    return max(p.committed if p.committed is not None else p.start, p.start)


def _read(
    kafka: KafkaSettings, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[PartitionLag] | None]:
    """Each (group, topic)'s partition lags; None for a topic that does not exist yet. One
    reader and one offset fetcher for all of them, and one metadata request for the topics."""
    out: dict[tuple[str, str], list[PartitionLag] | None] = {}
    with (
        kafka_reads.reader(kafka, "status") as consumer,
        kafka_reads.OffsetFetcher(kafka) as offsets,
    ):
        topics = kafka_reads.existing_topics(consumer)
        for group, topic in pairs:
            out[(group, topic)] = (
                group_lag(kafka, group, [topic], consumer=consumer, offsets=offsets)
                if topic in topics
                else None
            )
    return out


def group_statuses(
    kafka: KafkaSettings, pairs: Sequence[tuple[str, str]], sample_s: float = 0.0
) -> dict[tuple[str, str], GroupStatus]:
    """Lag of each (group, topic) per partition and in total. With `sample_s` > 0 and some
    lag anywhere, every group is read again after `sample_s` (one pause for all) to estimate
    its consumption rate and time to catch up."""
    first = _read(kafka, pairs)
    lagging = any(lags and sum(p.lag for p in lags) for lags in first.values())
    if sample_s <= 0 or not lagging:
        return {pair: status_from_readings(pair, None, lags, 0.0) for pair, lags in first.items()}
    started = time.monotonic()
    time.sleep(sample_s)
    second = _read(kafka, pairs)
    elapsed = time.monotonic() - started
    return {
        pair: status_from_readings(pair, first[pair], lags, elapsed)
        for pair, lags in second.items()
    }


def status_from_readings(
    pair: tuple[str, str],
    before: list[PartitionLag] | None,
    lags: list[PartitionLag] | None,
    elapsed: float,
) -> GroupStatus:
    group, topic = pair
    if lags is None:
        return GroupStatus(
            group=group, topic=topic, partitions=[], lag=None, note="topic does not exist yet"
        )
    lag = sum(p.lag for p in lags)
    skipped = [s for p in sorted(lags, key=lambda p: p.partition) for s in p.skipped]
    if before is None or elapsed <= 0:
        return GroupStatus(
            group=group, topic=topic, partitions=_partitions(lags), lag=lag, skipped=skipped
        )
    positions = {p.partition: _position(p) for p in before}
    consumed = sum(max(0, _position(p) - positions.get(p.partition, _position(p))) for p in lags)
    falling = (sum(p.lag for p in before) - lag) / elapsed
    eta: float | None = None
    if lag == 0:
        eta = 0.0
    elif falling > 0:
        eta = lag / falling
    return GroupStatus(
        group=group,
        topic=topic,
        partitions=_partitions(lags),
        lag=lag,
        consumed_per_s=consumed / elapsed,
        eta_s=eta,
        note=None if eta is not None else "lag is not falling",
        skipped=skipped,
    )


def _partitions(lags: Sequence[PartitionLag]) -> list[PartitionStatus]:
    return [
        PartitionStatus(partition=p.partition, committed=p.committed, end=p.end, lag=p.lag)
        for p in sorted(lags, key=lambda p: p.partition)
    ]
