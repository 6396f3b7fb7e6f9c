"""How far behind is a consumer group? Its committed offsets against each partition's end.

One module for every reader of lag: apply's offset ledger (`CommittedReader`), the demo's
progress and catch-up wait, and the tests that wait for apply to catch up. Committed offsets
are always read without joining the group, so running workers see no rebalance.

Where a partition's start and end come from (`group_lag`):
- by default the broker's watermarks (ListOffsets), as Apache Kafka and any conforming
  broker report them;
- with `tail=`, a `TopicTail`: a consumer that reads the topic and counts what is really in
  it. The demo needs it for its `--broker tansu` fall-back: the embedded Tansu broker
  reported a high watermark of 1 on partitions holding ~50 records, so "caught up" cannot be
  read from its watermarks. The tail also hands each record to a callback (the demo counts
  the stream positions that reached Kafka).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from bridge.kafka import reads as kafka_reads
from bridge.kafka import skipped_offsets
from bridge.kafka.limits import librdkafka_fetch_config
from bridge.kafka.publisher import admin_config
from bridge.kafka.skipped_offsets import SkippedRange
from bridge.model.errors import TransientError
from bridge.runtime.settings import KafkaSettings


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
    tail: TopicTail | None = None,
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


class TopicTail(threading.Thread):
    """Reads `topic` from the beginning and counts what is there: the Tansu-safe end offsets.

    `extents()` gives, per partition, the offset of the first record read and one past the
    last (0, 0 until a record arrives). `on_record` sees every record's value, on this thread;
    an exception it raises stops the tail and is kept in `error`, as is a consumer error.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        partitions: int,
        on_record: Callable[[bytes], object] | None = None,
    ) -> None:
        super().__init__(name=f"tail-{topic}", daemon=True)
        self.topic = topic
        self.partitions = partitions
        self.records = 0
        self.stop_event = threading.Event()
        self.error: str | None = None
        self._on_record = on_record
        self._lock = threading.Lock()
        self._start: dict[int, int] = {}
        self._end: dict[int, int] = dict.fromkeys(range(partitions), 0)
        self._config = {
            **admin_config(kafka),
            "group.id": f"ddb-bridge.tail.{uuid.uuid4().hex[:8]}",  # never joined or committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            # librdkafka's default, kept explicit: aborted transactions are not counted.
            "isolation.level": "read_committed",
            **librdkafka_fetch_config(),
        }

    def stop(self, timeout_s: float = 10) -> None:
        """Stop reading and wait for the consumer to close: closed after its broker is gone,
        librdkafka logs "Connection refused" errors while it gives up."""
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout_s)

    def extents(self) -> dict[int, tuple[int, int]]:
        """(start, end) offsets read so far, per partition."""
        with self._lock:
            return {p: (self._start.get(p, end), end) for p, end in self._end.items()}

    def run(self) -> None:
        consumer = Consumer(self._config)
        try:
            consumer.assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)]
            )
            while not self.stop_event.is_set():
                for msg in consumer.consume(5000, timeout=0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            self.error = err.str()
                        continue
                    partition, offset = msg.partition(), msg.offset()
                    if partition is None or offset is None:
                        continue  # not a record (confluent-kafka types these as optional)
                    if self._on_record is not None:
                        self._on_record(msg.value() or b"")
                    with self._lock:
                        self._start.setdefault(partition, offset)
                        self._end[partition] = max(self._end[partition], offset + 1)
                    self.records += 1
        except Exception as exc:  # kept for the reader of `error`: a thread's exception is lost
            self.error = f"topic {self.topic}: {exc!r}"
        finally:
            consumer.close()
