"""Reading topics back in tests with a plain confluent-kafka consumer."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError

from bridge.kafka.limits import librdkafka_fetch_config


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
