"""A stream shard's checkpoints against a producer that acknowledges late or refuses.

`KafkaRecordProcessor` may write a position (periodic, at shutdown, or SHARD_END) only once
Kafka acknowledged every record up to it. Here the producer holds every acknowledgement
(tests/producer_fakes.py), and the checkpoint writer checks, at the moment of each write,
that no record at or before the position is unacknowledged; a record Kafka refuses stops
every later checkpoint and surfaces an error naming the shard and the key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher
from bridge.model.errors import MessageTooLargeError, PermanentError
from bridge.runtime.settings import KafkaSettings
from connectors.sources.stream.processor import InitializationInput, KafkaRecordProcessor
from connectors.sources.stream.shards import SHARD_END
from tests.producer_fakes import HoldingProducer, key_contains

TABLE = "orders"
SHARD = "shardId-000001"
CODEC = EventCodec()


def record(seq: int, key: str) -> dict[str, Any]:
    keys = {"pk": {"S": key}}
    return {
        "eventID": f"e{seq}",
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 1, 1, second=seq % 60, tzinfo=UTC),
            "Keys": keys,
            "NewImage": {**keys, "n": {"N": str(seq)}},
            "SequenceNumber": str(seq),
            "SizeBytes": 10,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


class CheckedCheckpoints:
    """A CheckpointWriter that, at each write, looks at what Kafka has not acknowledged."""

    def __init__(self, producer: HoldingProducer) -> None:
        self.producer = producer
        self.last = "TRIM_HORIZON"
        self.written: list[str] = []
        # (position, sequence numbers of this shard at or before it still unacknowledged)
        self.violations: list[tuple[str, list[str]]] = []

    def checkpoint(
        self, position: str, last_version: int | None, item_versions: bytes = b""
    ) -> None:
        pending = self.producer.unacked_through(SHARD, position, CODEC)
        if pending:
            self.violations.append((position, pending))
        self.written.append(position)
        self.last = position


def processor_for(
    producer: HoldingProducer, extra: dict[str, Any] | None = None, flush_timeout_s: float = 60
) -> KafkaRecordProcessor:
    kafka = KafkaSettings(bootstrap_servers="unused:9092", extra=extra or {})
    publisher = Publisher(kafka, producer=producer)  # type: ignore[arg-type]
    processor = KafkaRecordProcessor(
        publisher, checkpoint_interval_s=0, flush_timeout_s=flush_timeout_s
    )
    processor.initialize(InitializationInput(TABLE, "arn", SHARD, "TRIM_HORIZON", 0))
    return processor


def test_a_periodic_checkpoint_waits_for_the_acknowledgements_of_its_page() -> None:
    producer = HoldingProducer()
    processor = processor_for(producer)
    checkpoints = CheckedCheckpoints(producer)
    processor.process_records([record(1, "a"), record(2, "b"), record(3, "c")], checkpoints)  # type: ignore[arg-type]
    processor.process_records([record(4, "d")], checkpoints)  # type: ignore[arg-type]
    assert checkpoints.written == [], "checkpointed records Kafka has not acknowledged"
    producer.arrive(3)  # the broker answers the first page only
    processor.process_records([record(5, "e")], checkpoints)  # type: ignore[arg-type]
    assert checkpoints.written == ["3"]
    producer.arrive()
    processor.process_records([], checkpoints)  # type: ignore[arg-type]
    assert checkpoints.written == ["3", "5"]
    assert checkpoints.violations == []


def test_shard_end_is_written_only_once_every_record_is_acknowledged() -> None:
    producer = HoldingProducer()
    processor = processor_for(producer)
    checkpoints = CheckedCheckpoints(producer)
    processor.process_records([record(1, "a"), record(2, "b")], checkpoints)  # type: ignore[arg-type]
    processor.process_records([record(3, "c")], checkpoints)  # type: ignore[arg-type]
    assert producer.unacked == 3
    processor.shard_ended(checkpoints)  # type: ignore[arg-type]
    assert checkpoints.written == [SHARD_END]
    assert checkpoints.violations == [], "SHARD_END written before Kafka acknowledged"


def test_shard_end_waits_out_an_outage_as_long_as_the_producer_still_delivers() -> None:
    """A broker outage longer than the flush timeout but shorter than message.timeout.ms: the
    records are late, not lost, and the producer delivers them once the broker is back.
    Giving up at the flush timeout failed the shard, and its next reader re-published them
    from the last checkpoint: duplicates in the topic (the likely cause of those the cluster
    chaos run found while two brokers took ~55 s to return)."""
    producer = HoldingProducer()
    processor = processor_for(producer, {"message.timeout.ms": 2_000}, flush_timeout_s=0.2)
    checkpoints = CheckedCheckpoints(producer)
    processor.process_records([record(1, "a"), record(2, "b")], checkpoints)  # type: ignore[arg-type]
    producer.outage(1.0)
    processor.shard_ended(checkpoints)  # type: ignore[arg-type]
    assert checkpoints.written == [SHARD_END]
    assert checkpoints.violations == []
    assert producer.unacked == 0


def test_a_shutdown_checkpoint_covers_only_acknowledged_records() -> None:
    producer = HoldingProducer()
    processor = processor_for(producer)
    checkpoints = CheckedCheckpoints(producer)
    processor.process_records([record(1, "a"), record(2, "b")], checkpoints)  # type: ignore[arg-type]
    processor.shutdown_requested(checkpoints)  # type: ignore[arg-type]
    assert checkpoints.written == ["2"] and checkpoints.violations == []


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (KafkaError.MSG_SIZE_TOO_LARGE, MessageTooLargeError),
        (KafkaError._MSG_TIMED_OUT, PermanentError),
    ],
)
def test_a_refused_record_stops_shard_end_and_names_the_shard_and_key(
    code: int, error: type[Exception]
) -> None:
    producer = HoldingProducer()
    producer.refuse(key_contains("refused-key"), code)
    processor = processor_for(producer)
    checkpoints = CheckedCheckpoints(producer)
    processor.process_records(
        [record(1, "a"), record(2, "refused-key"), record(3, "c")], checkpoints
    )  # type: ignore[arg-type]
    with pytest.raises(error) as caught:
        processor.shard_ended(checkpoints)  # type: ignore[arg-type]
    text = str(caught.value)
    assert SHARD in text and TABLE in text and "refused-key" in text, text
    assert checkpoints.written == []


def test_a_refused_record_stops_every_later_periodic_checkpoint() -> None:
    producer = HoldingProducer()
    producer.refuse(key_contains("refused-key"), KafkaError._MSG_TIMED_OUT)
    processor = processor_for(producer)
    checkpoints = CheckedCheckpoints(producer)
    processor.process_records([record(1, "a")], checkpoints)  # type: ignore[arg-type]
    processor.process_records([record(2, "refused-key")], checkpoints)  # type: ignore[arg-type]
    processor.process_records([record(3, "c")], checkpoints)  # type: ignore[arg-type]
    producer.arrive()
    with pytest.raises(PermanentError) as caught:
        processor.process_records([record(4, "d")], checkpoints)  # type: ignore[arg-type]
    text = str(caught.value)
    assert SHARD in text and "refused-key" in text, text
    # Only the page before the refused record may ever be checkpointed.
    assert checkpoints.written in ([], ["1"])
    with pytest.raises(PermanentError):
        processor.shutdown_requested(checkpoints)  # type: ignore[arg-type]
    assert checkpoints.written in ([], ["1"]) and checkpoints.violations == []
