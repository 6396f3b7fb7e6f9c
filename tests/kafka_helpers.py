"""Reading topics back in tests with a plain confluent-kafka consumer."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from bridge.kafka.limits import librdkafka_fetch_config
from bridge.kafka.reads import watermarks


def consume_all(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0, group: str | None = None
) -> list[Any]:
    """Read `expected` records from the start of `topic`. Returns the messages; fails if fewer
    arrive in time."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **librdkafka_fetch_config(),
        }
    )
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"consume error: {msg.error()}")
                out.append(msg)
    finally:
        consumer.close()
    if len(out) < expected:
        raise AssertionError(f"read {len(out)} of {expected} records from {topic} in {timeout_s}s")
    return out


def drain_more(bootstrap: str, topic: str, timeout_s: float = 3.0) -> list[Any]:
    """Everything currently in `topic`, stopping after `timeout_s` without a new record."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **librdkafka_fetch_config(),
        }
    )
    consumer.subscribe([topic])
    out: list[Any] = []
    quiet_since = time.monotonic()
    # Silence only counts once the group join has assigned the partitions.
    joined = False
    try:
        while True:
            batch = consumer.consume(10_000, timeout=0.5)
            if not joined and consumer.assignment():
                joined = True
                quiet_since = time.monotonic()
            for msg in batch:
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"consume error: {msg.error()}")
                out.append(msg)
            if batch:
                quiet_since = time.monotonic()
            if joined and time.monotonic() - quiet_since > timeout_s:
                break
            if not joined and time.monotonic() - quiet_since > 30:
                raise AssertionError(f"consumer never joined for {topic}")
    finally:
        consumer.close()
    return out


def read_to_end(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Every record `topic` holds now: each partition from its start to the end offset it had
    when the read began (records added meanwhile may come too). Ends as soon as each partition
    reports its end, where drain_more waits for a quiet spell: for topics whose writers have
    finished (their records acknowledged)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            # The end of each partition arrives as an event: no timeout to wait out.
            "enable.partition.eof": True,
            **librdkafka_fetch_config(),
        }
    )
    try:
        info = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if info.error is not None:
            raise RuntimeError(f"reading {topic}: {info.error}")
        ends: dict[int, int] = {}
        for partition in info.partitions:
            # A topic just created may have no leader yet: kafka_reads asks again then.
            low, high = watermarks(consumer, topic, partition)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: partitions not read to their end: {ends}")
            for msg in consumer.consume(10_000, timeout=0.5):
                error, partition = msg.error(), msg.partition()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"consume error: {error}")
                if error is None:
                    out.append(msg)
                # A record's offset is below the end; the end event's offset is the end itself
                # (past any transaction marker, which yields no record).
                reached = msg.offset() + (1 if error is None else 0)
                if partition in ends and reached >= ends[partition]:
                    del ends[partition]
        return out
    finally:
        consumer.close()
