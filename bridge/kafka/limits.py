"""How large one change event can be, and the Kafka size settings that follow from it.

A MODIFY of a `NEW_AND_OLD_IMAGES` stream carries two images of an item DynamoDB allows up to
409,600 bytes as DynamoDB counts them. On the wire each image is DynamoDB JSON text
(`bridge.model.attrs.dumps`), which is larger than DynamoDB's count, by how much depends on the
shape of the item:

- binary travels as base64: 4/3 of its size, plus `{"B":""}`;
- strings are JSON-escaped: a control character (U+0000-U+001F) takes 6 bytes (`\\u0001`);
- numbers are the worst: DynamoDB counts 1 byte per two significant digits plus 1 byte, but
  returns them written out in full (`-1E-130` comes back as `-0.000…0001`, 133 characters).
  A list element costs one byte more, so a list of `-1E-130` costs 3 bytes per element and
  encodes to 142 bytes (`{"N":"-0.000…0001"},`): 47.3 bytes per byte counted. A number set
  has no per-element byte: its 1-2 digit members at the exponent limits reach 68 bytes per
  byte, but only some 14,000 distinct such values are long enough to beat the list, which
  adds at most 0.6 MB per image.

So one image is at most 47.3 x 409,600 + 0.6 MB, about 20 MB, and an event with both images
about 40 MB (an adversarial item measured in tests/unit/test_kafka_limits.py encodes to
39.3 MB); the envelope (table, key, shard, sequence number, Avro framing) and the key, itself
part of each image, add well under 64 KiB. `MAX_EVENT_BYTES` is therefore 48 MiB: the
producer accepts records that large (`message.max.bytes`, checked before compression), the
topics the bridge creates accept record batches that large (`max.message.bytes`, checked
after compression, so it holds whatever the codec), and `apply` fetches that much per
partition. Typical events are far smaller, and compressed on the wire (`kafka.compression`,
lz4 by default, which `apply` decompresses with cramjam).

A user's `[kafka.extra] "message.max.bytes"` still wins; topics and fetch sizes then follow it.
"""

from __future__ import annotations

from bridge.runtime.settings import KafkaSettings

DYNAMODB_MAX_ITEM_BYTES = 409_600
MAX_EVENT_BYTES = 48 * 1024 * 1024


def message_max_bytes(kafka: KafkaSettings) -> int:
    """The largest record the producer sends: 48 MiB unless `[kafka.extra]` says otherwise."""
    return int(kafka.extra.get("message.max.bytes", MAX_EVENT_BYTES))


def topic_max_message_bytes(kafka: KafkaSettings) -> int:
    """`max.message.bytes` of the topics the bridge creates: whatever the producer may send.

    The broker checks it against a compressed record batch, which is never much larger than
    the records in it, so a topic that takes the producer's limit takes every record.
    """
    return message_max_bytes(kafka)


def consumer_fetch_bytes(kafka: KafkaSettings) -> int:
    """Per-partition fetch size for consumers that read events (aiokafka in `apply`).

    When a broker returns a record cut short by this limit, aiokafka raises
    RecordTooLargeError and moves its position past that record: it must cover the largest.
    """
    return message_max_bytes(kafka)


def librdkafka_fetch_config(largest: int = MAX_EVENT_BYTES) -> dict[str, int]:
    """Fetch sizes for a confluent-kafka consumer that reads events whole (demo, tests).

    librdkafka needs `receive.message.max.bytes` above `fetch.max.bytes` (+512 for framing);
    50 MiB is its default total fetch, kept unless one record needs more.
    """
    fetch = max(largest, 50 * 1024 * 1024)
    return {
        "max.partition.fetch.bytes": largest,
        "fetch.max.bytes": fetch,
        "receive.message.max.bytes": fetch + 1024 * 1024,
    }
