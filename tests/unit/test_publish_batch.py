"""A stream page published as one tracked group: the checkpoint still waits for every ack.

`Publisher.publish_batch` registers a page as one `AckTracker` group with one delivery
callback; these tests hold it to checkpoint-after-ack with acknowledgements out of order, a
failed delivery, and a record that cannot be queued — and to the same Kafka records
(topic, key, value, headers, timestamp) that `publish` writes one at a time.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from bridge.kafka.publisher import Publisher
from bridge.model.acks import AckTracker
from bridge.model.errors import MessageTooLargeError, PermanentError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import KafkaSettings


class HandProducer:
    """Queues records; the test decides which are delivered, in which order, and how."""

    def __init__(self, refuse_at: int | None = None) -> None:
        self.records: list[dict[str, Any]] = []
        self.callbacks: list[Any] = []
        self.refuse_at = refuse_at

    def produce(self, topic: str, **kwargs: Any) -> None:
        if self.refuse_at is not None and len(self.records) == self.refuse_at:
            from confluent_kafka import KafkaException

            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.records.append({"topic": topic, **{k: v for k, v in kwargs.items()}})
        self.callbacks.append(kwargs["on_delivery"])

    def deliver(self, index: int, error: KafkaError | None = None) -> None:
        self.callbacks[index](error, None)

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def flush(self, _timeout: float = 0) -> int:
        return 0


def event(i: int) -> ChangeEvent:
    keys = {"pk": {"S": f"k{i}"}}
    return ChangeEvent(
        table="orders",
        op=Op.MODIFY,
        keys=keys,
        version=1_700_000_000_000_000 + i,
        origin=Origin.STREAM,
        new_image={**keys, "n": {"N": str(i)}},
        shard_id="shard-1",
        sequence_number=str(100 + i),
        approximate_creation_time_ms=1_700_000_000_000 + i,
    )


def publisher(producer: HandProducer) -> Publisher:
    return Publisher(KafkaSettings(bootstrap_servers="unused:9092"), producer=producer)  # type: ignore[arg-type]


def test_a_group_position_waits_for_every_record_of_it_and_before() -> None:
    t: AckTracker[str] = AckTracker()
    first = t.add_many(3, "page-1")
    second = t.add_many(2, "page-2")
    assert t.in_flight == 5
    t.ack(second)
    t.ack(second)
    t.ack(first)
    t.ack(first)
    assert t.safe_position() is None
    t.ack(first)
    assert t.safe_position() == "page-2" and t.all_acked() and t.in_flight == 0
    with pytest.raises(ValueError):
        t.add_many(0, "nothing")


def test_a_failed_record_blocks_its_group_and_everything_after() -> None:
    t: AckTracker[str] = AckTracker()
    first = t.add_many(2, "page-1")
    second = t.add_many(1, "page-2")
    t.ack(first, error="broker down")
    t.ack(first)
    t.ack(second)
    assert t.safe_position() is None and t.failure == "broker down" and t.in_flight == 0
    t.mark("later")
    assert t.safe_position() is None


def test_publish_batch_checkpoints_only_after_every_ack_in_any_order() -> None:
    producer = HandProducer()
    pub = publisher(producer)
    tracker: AckTracker[tuple[str, int]] = AckTracker()
    page1 = [event(i) for i in range(3)]
    page2 = [event(i) for i in range(3, 5)]
    pub.publish_batch(page1, tracker, ("102", page1[-1].version))
    pub.publish_batch(page2, tracker, ("104", page2[-1].version))
    for i in (4, 0, 3, 2):
        producer.deliver(i)
        assert tracker.safe_position() is None
    producer.deliver(1)
    assert tracker.safe_position() == ("104", page2[-1].version)
    pub.publish_batch([], tracker, ("105", 0))  # an empty page is a mark
    assert tracker.safe_position() == ("105", 0)


def test_publish_batch_writes_what_publish_writes() -> None:
    batch_producer, single_producer = HandProducer(), HandProducer()
    events = [event(i) for i in range(4)]
    publisher(batch_producer).publish_batch(events, AckTracker(), ("103", 1))
    single = publisher(single_producer)
    for e in events:
        single.publish(e)
    strip = [{k: v for k, v in r.items() if k != "on_delivery"} for r in batch_producer.records]
    assert strip == [
        {k: v for k, v in r.items() if k != "on_delivery"} for r in single_producer.records
    ]
    assert strip[0]["headers"] == [
        ("ddb.version", b"1700000000000000"),
        ("ddb.op", b"MODIFY"),
        ("ddb.origin", b"STREAM"),
    ]
    assert strip[0]["timestamp"] == 1_700_000_000_000 and strip[0]["topic"] == "ddb.orders.changes"


def test_a_failed_delivery_in_a_batch_stops_the_publisher_without_checkpointing() -> None:
    producer = HandProducer()
    pub = publisher(producer)
    tracker: AckTracker[str] = AckTracker()
    pub.publish_batch([event(0), event(1)], tracker, "p")
    producer.deliver(0, KafkaError(KafkaError._MSG_TIMED_OUT))
    producer.deliver(1)
    assert tracker.safe_position() is None and tracker.failure
    with pytest.raises(PermanentError, match="stopping without checkpointing"):
        pub.publish_batch([event(2)], tracker, "q")


def test_a_record_refused_mid_batch_leaves_the_page_unacknowledged() -> None:
    producer = HandProducer(refuse_at=1)
    pub = publisher(producer)
    tracker: AckTracker[str] = AckTracker()
    with pytest.raises(MessageTooLargeError, match="orders"):
        pub.publish_batch([event(0), event(1), event(2)], tracker, "p")
    producer.deliver(0)
    assert tracker.safe_position() is None and not tracker.all_acked()
