"""The largest change event DynamoDB can cause fits every Kafka size setting the bridge makes,
and a record Kafka refuses for its size stops publishing with an alarm, not a retry."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from bridge.codec.avro import EventCodec
from bridge.kafka.limits import (
    DYNAMODB_MAX_ITEM_BYTES,
    MAX_EVENT_BYTES,
    consumer_fetch_bytes,
    topic_max_message_bytes,
)
from bridge.kafka.publisher import Publisher, producer_config
from bridge.model import attrs
from bridge.model.errors import MessageTooLargeError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import KafkaSettings
from tests.producer_fakes import HoldingProducer

KEYS = {"pk": {"S": "k"}, "sk": {"N": "0"}}


def number_size(text: str) -> int:
    """DynamoDB's count for a number: 1 byte per two significant digits, plus 1."""
    digits = text.lstrip("-").replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def value_size(av: dict[str, Any]) -> int:
    """An attribute value's size as DynamoDB's documentation counts it (binary as raw bytes)."""
    ((tag, value),) = av.items()
    if tag == "S":
        return len(value.encode())
    if tag == "B":
        return len(attrs._unb64(value, "test"))
    if tag == "N":
        return number_size(value)
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "SS":
        return sum(len(v.encode()) for v in value)
    if tag == "NS":
        return sum(number_size(v) for v in value)
    if tag == "L":
        return 3 + sum(1 + value_size(v) for v in value)
    if tag == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in value.items())
    raise AssertionError(tag)


def item_size(item: attrs.Item) -> int:
    return sum(len(name.encode()) + value_size(av) for name, av in item.items())


def modify(image: attrs.Item) -> ChangeEvent:
    # Envelope fields at their longest: table names up to 255, shard ids and sequence
    # numbers of real streams are well under 100 characters.
    return ChangeEvent(
        table="t" * 255,
        op=Op.MODIFY,
        keys=KEYS,
        version=2**62,
        origin=Origin.STREAM,
        new_image=image,
        old_image=image,
        shard_id="shardId-" + "0" * 92,
        sequence_number="9" * 100,
        event_id="e" * 100,
        approximate_creation_time_ms=2**40,
    )


def worst_image() -> attrs.Item:
    """Numbers DynamoDB writes out in full: a number set of the longest 1-2 digit values, then
    a list of `-1E-130` (3 bytes counted, 142 bytes of JSON each) up to the item limit."""
    longest = sorted(
        {
            format(Decimal(f"{sign}{m}E{exp - (m >= 10)}"), "f")
            for exp in [*range(-130, -95), *range(125, 90, -1)]
            for m in range(1, 100)
            for sign in ("", "-")
        },
        key=lambda t: -len(t) / number_size(t),
    )
    image: attrs.Item = {**KEYS, "s": {"NS": longest[:14_000]}}
    tiny = format(Decimal("-1E-130"), "f")
    room = DYNAMODB_MAX_ITEM_BYTES - item_size(image) - len("l") - 3
    image["l"] = {"L": [{"N": tiny}] * (room // (1 + number_size(tiny)))}
    return image


def test_the_worst_case_item_fits_in_the_event_limit() -> None:
    image = worst_image()
    assert DYNAMODB_MAX_ITEM_BYTES - 10 < item_size(image) <= DYNAMODB_MAX_ITEM_BYTES
    encoded = EventCodec().encode(modify(image))
    # ~39 MB: 48 times DynamoDB's count, twice; the limit leaves room for the envelope.
    assert 38_000_000 < len(encoded) <= MAX_EVENT_BYTES - 4 * 1024 * 1024


def test_a_large_binary_and_string_item_needs_more_than_kafkas_default() -> None:
    image = {
        **KEYS,
        "b": {"B": attrs._b64(os.urandom(200_000), "b")},
        # Quotes, backslashes and control characters are escaped; other text is UTF-8.
        "s": {"S": ('"\\\x01é' * 40_000)[:150_000]},
    }
    assert item_size(image) <= DYNAMODB_MAX_ITEM_BYTES
    encoded = EventCodec().encode(modify(image))
    assert 1_000_000 < len(encoded) <= MAX_EVENT_BYTES


def test_producer_topics_and_consumers_are_sized_for_it_and_extra_still_wins() -> None:
    kafka = KafkaSettings()
    assert producer_config(kafka)["message.max.bytes"] == MAX_EVENT_BYTES
    assert topic_max_message_bytes(kafka) == MAX_EVENT_BYTES
    assert consumer_fetch_bytes(kafka) == MAX_EVENT_BYTES
    assert producer_config(kafka)["compression.type"] == "lz4"

    custom = KafkaSettings(extra={"message.max.bytes": 100_000_000})
    assert producer_config(custom)["message.max.bytes"] == 100_000_000
    assert topic_max_message_bytes(custom) == 100_000_000
    assert consumer_fetch_bytes(custom) == 100_000_000


def big_event(size: int) -> ChangeEvent:
    return ChangeEvent(
        table="orders",
        op=Op.MODIFY,
        keys={"pk": {"S": "order-7"}},
        version=1,
        origin=Origin.STREAM,
        new_image={"pk": {"S": "order-7"}, "b": {"B": attrs._b64(os.urandom(size), "b")}},
    )


def test_the_producers_own_limit_stops_with_the_named_setting() -> None:
    # The real librdkafka client refuses before any broker is involved.
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1", extra={"message.max.bytes": 100_000})
    publisher = Publisher(kafka)
    with pytest.raises(MessageTooLargeError) as caught:
        publisher.publish(big_event(200_000))
    message = str(caught.value)
    assert "table orders" in message
    assert '{"pk":{"S":"order-7"}}' in message
    assert '"message.max.bytes" (now 100000)' in message
    size = len(EventCodec().encode(big_event(200_000)))
    assert f"{size} bytes" in message


def refusing_producer() -> HoldingProducer:
    """The broker's answer to a record over the topic's max.message.bytes, as librdkafka
    reports it: a delivery report with MSG_SIZE_TOO_LARGE."""
    producer = HoldingProducer()
    producer.refuse(lambda _message: True, KafkaError.MSG_SIZE_TOO_LARGE)
    return producer


def test_a_broker_refusal_stops_with_the_topic_setting_to_change() -> None:
    publisher = Publisher(KafkaSettings(), producer=refusing_producer())  # type: ignore[arg-type]
    publisher.publish(big_event(50_000))
    with pytest.raises(MessageTooLargeError) as caught:
        publisher.flush(5)
    message = str(caught.value)
    assert "table orders (topic ddb.orders.changes)" in message
    assert '{"pk":{"S":"order-7"}}' in message
    assert "max.message.bytes" in message and "--entity-name ddb.orders.changes" in message
    # Every later publish refuses too: nothing is published past the refused record.
    with pytest.raises(MessageTooLargeError):
        publisher.publish(big_event(10))


def test_other_produce_errors_stay_transient() -> None:
    class Failing(HoldingProducer):
        def produce(self, *args: Any, **kwargs: Any) -> None:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    from bridge.model.errors import TransientError

    publisher = Publisher(KafkaSettings(), producer=Failing())  # type: ignore[arg-type]
    with pytest.raises(TransientError):
        publisher.publish(big_event(10))


def test_a_librdkafka_consumer_accepts_its_fetch_sizes() -> None:
    from confluent_kafka import Consumer

    from bridge.kafka.limits import librdkafka_fetch_config

    # librdkafka validates the relation between them when the client is created.
    for largest in (MAX_EVENT_BYTES, 200 * 1024 * 1024):
        config = librdkafka_fetch_config(largest)
        assert config["max.partition.fetch.bytes"] == largest
        Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g", **config}).close()
