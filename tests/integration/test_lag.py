"""bridge.kafka.lag against a real Apache Kafka broker: the broker's watermarks and a TopicTail (the
demo's Tansu-safe way) must measure the same lag of a group, partition by partition."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from bridge.kafka.lag import (
    CommittedBase,
    CommittedReader,
    PartitionLag,
    caught_up,
    group_lag,
    total_lag,
)
from bridge.kafka.publisher import ensure_topics
from bridge.runtime.settings import KafkaSettings
from ddb_bridge.demo.topic_tail import TopicTail
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

COUNTS = {0: 5, 1: 3, 2: 0}  # records per partition


def commit(kafka: KafkaSettings, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commits offsets for `group` as a worker would, without joining it."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group})
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


@pytest.fixture
def topic(kafka_bootstrap: str, unique_name: Any) -> tuple[KafkaSettings, str]:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=3, replication_factor=1)
    table = unique_name("lag")
    ensure_topics(kafka, [table])
    name = kafka.changes_topic(table)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for partition, count in COUNTS.items():
        for i in range(count):
            producer.produce(name, value=f"{partition}-{i}".encode(), partition=partition)
    assert producer.flush(30) == 0
    return kafka, name


def by_partition(lags: list[PartitionLag]) -> dict[int, tuple[int | None, int, int, int]]:
    return {p.partition: (p.committed, p.start, p.end, p.lag) for p in lags}


def test_watermarks_and_a_tail_measure_the_same_lag(topic: tuple[KafkaSettings, str]) -> None:
    kafka, name = topic
    group = f"lag-test-{uuid.uuid4().hex[:8]}"
    seen: list[bytes] = []
    tail = TopicTail(kafka, name, len(COUNTS), on_record=seen.append)
    tail.start()
    try:
        wait_until(lambda: tail.records == sum(COUNTS.values()), 30, "the tail to read all")
        assert sorted(seen) == sorted(
            f"{p}-{i}".encode() for p, count in COUNTS.items() for i in range(count)
        )
        assert tail.extents() == {p: (0, count) for p, count in COUNTS.items()}

        # Nothing committed: everything is behind.
        by_broker = group_lag(kafka, group, [name])
        assert by_partition(by_broker) == {p: (None, 0, n, n) for p, n in COUNTS.items()}
        assert by_partition(group_lag(kafka, group, [name], tail=tail)) == by_partition(by_broker)
        assert total_lag(by_broker) == 8 and not caught_up(by_broker)

        # Part committed.
        commit(kafka, group, name, {0: 5, 1: 1})
        by_broker = group_lag(kafka, group, [name])
        assert by_partition(by_broker) == {0: (5, 0, 5, 0), 1: (1, 0, 3, 2), 2: (None, 0, 0, 0)}
        assert by_partition(group_lag(kafka, group, [name], tail=tail)) == by_partition(by_broker)
        # The committed offsets (None: never committed) and each partition's log start.
        assert CommittedReader(kafka, group).read([(name, 0), (name, 1), (name, 2)]) == {
            (name, 0): CommittedBase(5, 0),
            (name, 1): CommittedBase(1, 0),
            (name, 2): CommittedBase(None, 0),
        }

        # All committed: caught up either way.
        commit(kafka, group, name, {1: 3})
        assert caught_up(group_lag(kafka, group, [name]))
        assert caught_up(group_lag(kafka, group, [name], tail=tail))
        assert tail.error is None
    finally:
        tail.stop_event.set()
        tail.join(10)


def test_a_tail_keeps_the_error_of_its_callback(topic: tuple[KafkaSettings, str]) -> None:
    kafka, name = topic

    def refuse(value: bytes) -> None:
        raise ValueError(f"undecodable record {value!r}")

    tail = TopicTail(kafka, name, len(COUNTS), on_record=refuse)
    tail.start()
    tail.join(30)
    assert not tail.is_alive()
    assert tail.error is not None and "undecodable record" in tail.error and name in tail.error
    assert tail.records == 0


def test_a_tail_measures_only_its_own_topic(topic: tuple[KafkaSettings, str]) -> None:
    kafka, name = topic
    tail = TopicTail(kafka, name, len(COUNTS))
    with pytest.raises(ValueError, match="cannot measure topics"):
        group_lag(kafka, "g", [name, "other"], tail=tail)
