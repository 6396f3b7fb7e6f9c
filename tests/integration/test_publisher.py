"""The publisher against Apache Kafka (the test broker, or KAFKA_BOOTSTRAP_SERVERS)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher, ensure_topics
from bridge.model import attrs
from bridge.model.acks import AckTracker
from bridge.model.errors import PermanentError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.partitioning import partition_for
from bridge.runtime.settings import KafkaSettings
from tests.kafka_helpers import consume_all
from tests.samples import sample_item

pytestmark = pytest.mark.integration


def events(table: str, n: int) -> list[ChangeEvent]:
    ops = [Op.INSERT, Op.MODIFY, Op.REMOVE, Op.SNAPSHOT]
    out = []
    for i in range(n):
        item = sample_item(i, pad=40)
        op = ops[i % 4]
        out.append(
            ChangeEvent(
                table=table,
                op=op,
                keys={"pk": item["pk"], "sk": item["sk"]},
                version=1_700_000_000_000_000 + i,
                origin=Origin.SCAN if op is Op.SNAPSHOT else Origin.STREAM,
                new_image=None if op is Op.REMOVE else item,
                old_image=item if op is not Op.INSERT else None,
                shard_id=None if op is Op.SNAPSHOT else "shardId-000001",
                sequence_number=str(i),
                ttl_expired=op is Op.REMOVE and i % 8 == 2,
            )
        )
    return out


def test_ten_thousand_events_round_trip_to_their_partitions(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table = unique_name("pub")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=6, replication_factor=1)
    ensure_topics(kafka, [table])
    ensure_topics(kafka, [table])  # idempotent: existing topics are fine
    sent = events(table, 10_000)
    tracker: AckTracker[int] = AckTracker()
    publisher = Publisher(kafka)
    for i, event in enumerate(sent):
        publisher.publish(event, tracker, position=i)
    publisher.flush()
    assert tracker.safe_position() == len(sent) - 1
    assert tracker.all_acked()

    messages = consume_all(kafka_bootstrap, kafka.changes_topic(table), len(sent))
    codec = EventCodec()
    by_key = {e.key_bytes() + str(e.version).encode(): e for e in sent}
    seen = Counter()
    for msg in messages:
        decoded = codec.decode(msg.value())
        assert msg.key() == decoded.key_bytes() == attrs.canonical_key(decoded.keys)
        assert by_key[msg.key() + str(decoded.version).encode()] == decoded
        assert msg.partition() == partition_for(msg.key(), 6)
        headers = dict(msg.headers())
        assert headers["ddb.version"] == str(decoded.version).encode()
        assert headers["ddb.op"] == decoded.op.value.encode()
        assert headers["ddb.origin"] == decoded.origin.value.encode()
        seen[decoded.op] += 1
    assert sum(seen.values()) == len(sent)
    assert set(seen) == {Op.INSERT, Op.MODIFY, Op.REMOVE, Op.SNAPSHOT}
    # all ten attribute types made it through
    sample = codec.decode(messages[0].value())
    image = sample.new_image or sample.old_image
    assert image is not None
    types = {next(iter(av)) for av in image.values()}
    assert types == {"S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"}


def test_delivery_failure_is_raised_not_logged(unique_name: Any) -> None:
    """Nothing listens on the port: delivery times out and the caller gets the error."""
    from tests.services import free_port

    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", replication_factor=1)
    publisher = Publisher(kafka, **{"message.timeout.ms": 1500})
    tracker: AckTracker[int] = AckTracker()
    publisher.publish(events(unique_name("down"), 1)[0], tracker, position=1)
    with pytest.raises(PermanentError, match="delivery to .* failed"):
        publisher.flush(timeout_s=15)
    assert tracker.safe_position() is None
    assert tracker.failure is not None


def test_record_timestamps_are_the_dynamodb_change_times(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    """`replay --to-datetime` resolves offsets by record timestamp, so each record's Kafka
    timestamp must be when the item changed in DynamoDB, not when the bridge produced it: a
    stream event's ApproximateCreationDateTime, a back-fill snapshot's version time."""
    from confluent_kafka import TIMESTAMP_CREATE_TIME

    from bridge.model.versioning import backfill_version

    table = unique_name("ts")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=2, replication_factor=1)
    ensure_topics(kafka, [table])
    created_ms = 1_700_000_123_456  # a past time: the producer's clock would give today
    item = sample_item(1)
    keys = {"pk": item["pk"], "sk": item["sk"]}
    stream_event = ChangeEvent(
        table=table,
        op=Op.INSERT,
        keys=keys,
        # A version above the creation time (a shard's versions step past equal times).
        version=created_ms * 1000 + 777_000,
        origin=Origin.STREAM,
        new_image=item,
        approximate_creation_time_ms=created_ms,
    )
    scan_version = backfill_version(1_650_000_000.5, margin_s=5)
    snapshot = ChangeEvent.snapshot(table, item, ("pk", "sk"), scan_version, Origin.SCAN)
    publisher = Publisher(kafka)
    publisher.publish(stream_event)
    publisher.publish(snapshot)
    publisher.flush()

    stamps = {}
    for msg in consume_all(kafka_bootstrap, kafka.changes_topic(table), 2):
        stamps[EventCodec().decode(msg.value()).origin] = msg.timestamp()
    assert stamps[Origin.STREAM] == (TIMESTAMP_CREATE_TIME, created_ms)
    assert stamps[Origin.SCAN] == (TIMESTAMP_CREATE_TIME, scan_version // 1000)


def test_an_existing_change_topic_with_fewer_partitions_than_configured_is_warned_about(
    kafka_bootstrap: str, unique_name: Any, caplog: Any
) -> None:
    import logging

    from confluent_kafka.admin import AdminClient, NewTopic

    table = unique_name("fewparts")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=4, replication_factor=1)
    topic = kafka.changes_topic(table)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1)]).values():
        future.result(30)
    caplog.set_level(logging.WARNING, logger="bridge.kafka.publisher")
    ensure_topics(kafka, [table])
    lines = [r for r in caplog.records if getattr(r, "topic", None) == topic]
    [line] = [r for r in lines if hasattr(r, "configured")]
    assert line.levelno == logging.WARNING
    assert line.partitions == 1 and line.configured == 4  # type: ignore[attr-defined]
    assert "kafka.partitions" in line.getMessage() and topic in line.getMessage()
