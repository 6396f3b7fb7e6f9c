"""How far behind is `apply`? End offsets from a tail consumer, against committed offsets.

A tail consumer reads the topic itself rather than trusting ListOffsets: on the embedded
Tansu broker the high watermark is not reliable (SERVICES.md), and counting what is really
there also yields the number of events for the summary.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from bridge.avro_codec import EventCodec
from bridge.errors import TransientError
from bridge.event import Origin
from bridge.kafka_limits import librdkafka_fetch_config


class TopicTail(threading.Thread):
    def __init__(
        self, bootstrap: str, topic: str, partitions: int, codec: EventCodec | None = None
    ) -> None:
        super().__init__(name=f"tail-{topic}", daemon=True)
        self.topic = topic
        self.partitions = partitions
        self.end: dict[int, int] = {p: 0 for p in range(partitions)}
        self.records = 0
        # (shard, sequence number) of every stream event seen: "caught up" is exact, not timed.
        self.stream_positions: set[tuple[str, str]] = set()
        self._codec = codec or EventCodec()
        self.last_record_at = time.monotonic()
        self.stop_event = threading.Event()
        self.error: str | None = None
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"ddb-bridge.demo-tail.{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                **librdkafka_fetch_config(),
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
                    event = self._codec.decode(msg.value() or b"")
                    if event.origin is Origin.STREAM and event.shard_id and event.sequence_number:
                        self.stream_positions.add((event.shard_id, event.sequence_number))
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


def stream_positions(client: Any, stream_arn: str) -> set[tuple[str, str]]:
    """(shard, sequence number) of every record the stream holds now (writers stopped)."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        desc = client.describe_stream(**kwargs)["StreamDescription"]
        shards.extend(desc["Shards"])
        last = desc.get("LastEvaluatedShardId")
        if not last:
            break
        kwargs["ExclusiveStartShardId"] = last
    found: set[tuple[str, str]] = set()
    for shard in shards:
        iterator = client.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        ).get("ShardIterator")
        while iterator:
            resp = client.get_records(ShardIterator=iterator, Limit=1000)
            for record in resp["Records"]:
                found.add((shard["ShardId"], record["dynamodb"]["SequenceNumber"]))
            if not resp["Records"]:
                break
            iterator = resp.get("NextShardIterator")
    return found
