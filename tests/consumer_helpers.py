"""Known change events published to a real broker, for the tests of `tail`, the consumer API
and the example consumers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher, ensure_topics
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import KafkaSettings

# 2026-12-01T10:00:00Z: change times in the tests are minutes after this.
BASE_MS = 1_796_119_200_000


def kafka_for(bootstrap: str, partitions: int = 2) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap, partitions=partitions, replication_factor=1, linger_ms=5
    )


def change(
    table: str,
    pk: str,
    i: int,
    op: Op = Op.MODIFY,
    *,
    at_ms: int | None = None,
    sk: int | None = None,
) -> ChangeEvent:
    """Change `i` of item `pk` (with range key `sk` when given): a stream event whose version
    and change time grow with `i`, carrying `i` in its image."""
    keys: dict[str, Any] = {"pk": {"S": pk}}
    if sk is not None:
        keys["sk"] = {"N": str(sk)}
    image = {**keys, "n": {"N": str(i)}, "note": {"S": f"change {i} of {pk}"}}
    return ChangeEvent(
        table=table,
        op=op,
        keys=keys,
        version=1_796_119_200_000_000 + i,
        origin=Origin.STREAM,
        new_image=None if op is Op.REMOVE else image,
        old_image=image if op is not Op.INSERT else None,
        shard_id="shardId-00000001",
        sequence_number=f"{1000 + i}",
        event_id=f"ev-{pk}-{i}",
        approximate_creation_time_ms=BASE_MS + i * 1000 if at_ms is None else at_ms,
    )


def publish(
    kafka: KafkaSettings,
    events: Sequence[ChangeEvent],
    codec: EventCodec | None = None,
) -> None:
    """Create the events' topics if missing, publish them and wait for the broker's acks."""
    ensure_topics(kafka, sorted({e.table for e in events}))
    publisher = Publisher(kafka, codec)
    for event in events:
        publisher.publish(event)
    publisher.flush()


def as_json(event: ChangeEvent) -> dict[str, Any]:
    """The fields of an event as `tail --json` and the examples print them (images in
    DynamoDB JSON), written out here independently of the code under test."""
    return {
        "table": event.table,
        "op": event.op.value,
        "origin": event.origin.value,
        "version": event.version,
        "keys": event.keys,
        "new_image": event.new_image,
        "old_image": event.old_image,
        "shard_id": event.shard_id,
        "sequence_number": event.sequence_number,
        "event_id": event.event_id,
        "approximate_creation_time_ms": event.approximate_creation_time_ms,
        "ttl_expired": event.ttl_expired,
    }
