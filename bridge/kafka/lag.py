"""How far behind is a consumer group? Its committed offsets against each partition's end.

One module for every reader of lag: apply's offset ledger (`CommittedReader`), the demo's
progress and catch-up wait, and the tests that wait for apply to catch up. Committed offsets
are always read without joining the group, so running workers see no rebalance.

Where a partition's start and end come from (`group_lag`):
- by default the broker's watermarks (ListOffsets), as Apache Kafka and any conforming
  broker report them;
- with `tail=`, a `Tail`: whatever counts what is really in the topic. The demo's
  `TopicTail` (ddb_bridge/demo/topic_tail.py) is one, for its `--broker tansu` fall-back:
  the embedded Tansu broker reported a high watermark of 1 on partitions holding ~50
  records, so "caught up" cannot be read from its watermarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from confluent_kafka import Consumer

from bridge.kafka import reads as kafka_reads
from bridge.kafka import skipped_offsets
from bridge.kafka.skipped_offsets import SkippedRange
from bridge.model.errors import TransientError
from bridge.runtime.settings import KafkaSettings


class Tail(Protocol):
    """The start and end of each partition of one topic, as something that read it counts."""

    topic: str

    def extents(self) -> dict[int, tuple[int, int]]: ...


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    start: int
    end: int
    # Ranges the group skipped because they were deleted before it read them: those apply
    # noted with its offsets, and one below the log start it has not reached yet.
    skipped: tuple[SkippedRange, ...] = field(default=())

    @property
    def lag(self) -> int:
        position = self.committed if self.committed is not None else self.start
        return max(0, self.end - max(position, self.start))


def total_lag(lags: Sequence[PartitionLag]) -> int:
    return sum(p.lag for p in lags)


def caught_up(lags: Sequence[PartitionLag]) -> bool:
    return total_lag(lags) == 0


def group_lag(
    kafka: KafkaSettings,
    group: str,
    topics: Sequence[str],
    timeout_s: float = 10.0,
    *,
    tail: Tail | None = None,
    consumer: Consumer | None = None,
    offsets: kafka_reads.OffsetFetcher | None = None,
) -> list[PartitionLag]:
    """Committed vs start/end offsets of `group` on every partition of `topics`.

    With `tail` (reading the one topic of `topics`), the start and end of each partition are
    what that tail has read so far, not the broker's watermarks (see the module docstring).
    `consumer` and `offsets` let a caller reading many groups reuse them.
    """
    if tail is not None and list(topics) != [tail.topic]:
        raise ValueError(f"a tail of topic {tail.topic} cannot measure topics {list(topics)}")
    with ExitStack() as stack:
        if consumer is None:
            consumer = stack.enter_context(kafka_reads.reader(kafka, "lag"))
        if offsets is None:
            offsets = stack.enter_context(kafka_reads.OffsetFetcher(kafka))
        if tail is not None:
            extents = tail.extents()
            tps = [(tail.topic, p) for p in sorted(extents)]
        else:
            tps = []
            for topic in topics:
                found = kafka_reads.partitions_of(consumer, topic, timeout_s)
                if found is None:
                    raise TransientError(f"topic {topic} does not exist")
                tps.extend((topic, p) for p in found)
        committed = offsets.committed_with_metadata(group, tps, timeout_s)
        out = []
        for topic, partition in tps:
            if tail is not None:
                start, end = extents[partition]
            else:
                start, end = kafka_reads.watermarks(consumer, topic, partition, timeout_s)
            offset, note = committed.get((topic, partition), (None, ""))
            where = f"group {group} on {topic}/{partition}"
            skipped = skipped_offsets.decode(note, partition, where)
            if tail is None and offset is not None and offset < start:
                # Deleted before the group read it, and no worker has been there since. (A
                # tail's start is its first record, not the log start: it cannot tell.)
                skipped.append(SkippedRange(partition, offset, start - 1, None))
            out.append(
                PartitionLag(
                    topic=topic,
                    partition=partition,
                    committed=offset,
                    start=start,
                    end=end,
                    skipped=tuple(skipped),
                )
            )
        return out


class CommittedBase(NamedTuple):
    """What the broker holds for one partition of a group: its committed offset (None: never
    committed), the partition's log start, and the skipped ranges noted with the offset."""

    committed: int | None
    log_start: int
    skipped: tuple[SkippedRange, ...] = ()


class CommittedReader:
    """The group's committed offsets, read without joining the group (for `OffsetLedger`),
    with each partition's log start: a committed offset below it means events were deleted
    before the group read them, which the ledger reports (bridge/apply/offsets.py).
    """

    def __init__(self, kafka: KafkaSettings, group: str, timeout_s: float = 10.0) -> None:
        self._group = group
        self._kafka = kafka
        self._consumer = kafka_reads.reader_consumer(kafka, "apply-offsets")
        self._offsets = kafka_reads.OffsetFetcher(kafka)
        self._timeout_s = timeout_s

    def read(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], CommittedBase]:
        committed = self._offsets.committed_with_metadata(self._group, partitions, self._timeout_s)
        out: dict[tuple[str, int], CommittedBase] = {}
        for tp in partitions:
            offset, note = committed.get(tp, (None, ""))
            where = f"group {self._group} on {tp[0]}/{tp[1]}"
            out[tp] = CommittedBase(
                offset, self.log_start(tp), tuple(skipped_offsets.decode(note, tp[1], where))
            )
        return out

    def log_start(self, tp: tuple[str, int]) -> int:
        """The partition's log start offset now (its low watermark)."""
        try:
            low, _high = kafka_reads.watermarks(self._consumer, tp[0], tp[1], self._timeout_s)
        except TransientError:
            # After brokers of a cluster died and came back, librdkafka kept answering
            # _UNKNOWN_PARTITION from a stale view of the partition for minutes (seen in
            # tests/chaos/test_cluster_chaos.py, stalling every commit of the worker): a new
            # handle asks the cluster afresh on the caller's next try.
            self._consumer.close()
            self._consumer = kafka_reads.reader_consumer(self._kafka, "apply-offsets")
            raise
        return low

    def close(self) -> None:
        self._consumer.close()
        self._offsets.close()
