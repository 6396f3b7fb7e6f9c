"""Dead letters: records the target can never accept, kept in `<prefix><table>.dlq`.

A dead letter is the original record, byte for byte (same key, same value, original headers),
plus headers saying why and where it came from, so it can be inspected and replayed into the
changes topic once the cause is fixed. Delivery guarantee: `flush()` returns only when every
dead letter is acknowledged by Kafka (acks=all); the worker acknowledges the original record
only after that, so a poison record is never dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from bridge.kafka.publisher import Publisher
from bridge.runtime.settings import KafkaSettings

log = logging.getLogger(__name__)

HEADER_REASON = "ddb.dlq.reason"
HEADER_ERROR = "ddb.dlq.error"
HEADER_TOPIC = "ddb.dlq.topic"
HEADER_PARTITION = "ddb.dlq.partition"
HEADER_OFFSET = "ddb.dlq.offset"
HEADER_TABLE = "ddb.dlq.table"
HEADER_TARGET = "ddb.dlq.target"

# Kafka header values are bytes; a reason quoting a huge item should not make a huge header.
MAX_REASON = 2000


class RawRecord(NamedTuple):
    """One Kafka record as the worker received it (value undecoded). A NamedTuple, not a
    frozen dataclass: one is made per consumed record, and this builds in half the time."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: RawRecord
    table: str
    reason: str
    error: str  # the exception class name, for grouping

    def headers(self, target: str) -> list[tuple[str, str | bytes | None]]:
        own = {
            HEADER_REASON: self.reason[:MAX_REASON],
            HEADER_ERROR: self.error,
            HEADER_TOPIC: self.record.topic,
            HEADER_PARTITION: str(self.record.partition),
            HEADER_OFFSET: str(self.record.offset),
            HEADER_TABLE: self.table,
            HEADER_TARGET: target,
        }
        kept: list[tuple[str, str | bytes | None]] = [
            (k, v) for k, v in self.record.headers if k not in own
        ]
        return kept + [(k, v.encode()) for k, v in own.items()]


class DeadLetterWriter(Protocol):
    def send(self, letter: DeadLetter) -> None: ...

    def flush(self) -> None:
        """Return only when every letter sent is durable in Kafka (raise otherwise)."""


class KafkaDeadLetters:
    """Writes dead letters with the idempotent confluent-kafka publisher."""

    def __init__(self, kafka: KafkaSettings, target: str, publisher: Publisher | None = None):
        self.kafka = kafka
        self.target = target
        self._publisher = publisher or Publisher(kafka)

    def send(self, letter: DeadLetter) -> None:
        topic = self.kafka.dlq_topic(letter.table)
        log.warning(
            "dead letter",
            extra={
                "dlq_topic": topic,
                "topic": letter.record.topic,
                "partition": letter.record.partition,
                "offset": letter.record.offset,
                "reason": letter.reason[:300],
            },
        )
        self._publisher.produce_raw(
            topic,
            letter.record.key or b"",
            letter.record.value or b"",
            headers=letter.headers(self.target),
        )

    def flush(self) -> None:
        self._publisher.flush()

    def close(self) -> None:
        self._publisher.close()
