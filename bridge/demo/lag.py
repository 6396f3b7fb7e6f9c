"""How far behind is `apply`? End offsets from a tail consumer, against committed offsets.

A tail consumer reads the topic itself rather than trusting ListOffsets: on the embedded
Tansu broker the high watermark is not reliable (SERVICES.md), and counting what is really
there also yields the number of events for the summary.
"""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from bridge.errors import TransientError


class TopicTail(threading.Thread):
    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(name=f"tail-{topic}", daemon=True)
        self.topic = topic
        self.partitions = partitions
        self.end: dict[int, int] = {p: 0 for p in range(partitions)}
        self.records = 0
        self.last_record_at = time.monotonic()
        self.stop_event = threading.Event()
        self.error: str | None = None
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"ddb-bridge.demo-tail.{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )

    def run(self) -> None:
        self._consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)]
        )
        try:
            while not self.stop_event.is_set():
                for msg in self._consumer.consume(5000, timeout=0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            self.error = err.str()
                        continue
                    partition, offset = msg.partition(), msg.offset()
                    if partition is None or offset is None:
                        continue  # not a record (confluent-kafka types these as optional)
                    self.end[partition] = max(self.end[partition], offset + 1)
                    self.records += 1
                    self.last_record_at = time.monotonic()
        finally:
            self._consumer.close()

    def quiet_for(self) -> float:
        return time.monotonic() - self.last_record_at


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (0 where nothing is committed yet)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        parts = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10
        )
    except Exception as exc:  # KafkaException: the broker did not answer in time
        raise TransientError(f"cannot read committed offsets of {group}: {exc}") from exc
    finally:
        consumer.close()
    return {tp.partition: max(tp.offset, 0) for tp in parts}


def lag(end: dict[int, int], committed: dict[int, int]) -> int:
    return sum(max(0, end[p] - committed.get(p, 0)) for p in end)
