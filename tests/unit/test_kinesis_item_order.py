"""Kinesis versions keep each item's order along the shard, whatever other items sit between.

Driven through the code the stream daemon runs: Kinesis records (tests/kinesis_records.py)
turned into stream records by `kinesis_page`, versioned and published by the shared
`KafkaRecordProcessor` (transport "kinesis"), and the events read back from the producer.
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher
from bridge.model.errors import PermanentError
from bridge.model.event import ChangeEvent
from bridge.model.versioning import wins
from bridge.runtime.settings import KafkaSettings
from connectors.sources.stream.kinesis_records import kinesis_page
from connectors.sources.stream.processor import InitializationInput, KafkaRecordProcessor
from tests.kinesis_records import MICROSECOND, MILLISECOND, kinesis_data
from tests.producer_fakes import HoldingProducer

TABLE = "orders"
T = 1_790_000_000_000 * 1000  # µs, on a millisecond


class NoCheckpoints:
    last = "TRIM_HORIZON"

    def checkpoint(self, position: str, last_version: int | None, *_: Any) -> None:
        self.last = position


def publish(changes: list[tuple[str, str, int]], precision: str | list[str]) -> list[ChangeEvent]:
    """Each (event, pk, created µs) as one Kinesis record of one shard, in this order, at one
    precision or one per record."""
    records = []
    precisions = precision if isinstance(precision, list) else [precision] * len(changes)
    for n, ((event, pk, created), precision) in enumerate(zip(changes, precisions, strict=True)):
        keys = {"pk": {"S": pk}}
        image = None if event == "REMOVE" else {**keys, "v": {"N": str(n)}}
        data = kinesis_data(
            event, keys, new_image=image, table=TABLE, created_us=created, precision=precision
        )
        records.append({"SequenceNumber": str(100 + n), "Data": data})
    producer = HoldingProducer(arrive_after_polls=2)
    publisher = Publisher(KafkaSettings(bootstrap_servers="unused:9092"), producer=producer)  # type: ignore[arg-type]
    processor = KafkaRecordProcessor(publisher, checkpoint_interval_s=0, transport="kinesis")
    processor.initialize(InitializationInput(TABLE, "arn", "shardId-1", "TRIM_HORIZON", 0))
    processor.process_records(kinesis_page(records, "test"), NoCheckpoints())
    return [EventCodec().decode(value) for _t, _k, value in producer.sent]


def final_state(events: list[ChangeEvent], pk: str) -> ChangeEvent:
    held: ChangeEvent | None = None
    for event in events:
        if event.keys["pk"] == {"S": pk} and (held is None or wins(event, held)):
            held = event
    assert held is not None
    return held


def versions_of(events: list[ChangeEvent], pk: str) -> list[int]:
    return [e.version for e in events if e.keys["pk"] == {"S": pk}]


@pytest.mark.parametrize("precision", [MILLISECOND, MICROSECOND])
def test_a_reinsert_after_a_delete_in_one_millisecond_wins_past_a_later_item(
    precision: str,
) -> None:
    # X INSERT @T; X REMOVE @T; Z INSERT @T+1ms; X INSERT @T: DynamoDB holds X at the end.
    # (At MICROSECOND precision DynamoDB stamps the three changes of X a µs apart.)
    step = 1 if precision == MICROSECOND else 0
    events = publish(
        [
            ("INSERT", "x", T),
            ("REMOVE", "x", T + step),
            ("INSERT", "z", T + 1000),
            ("INSERT", "x", T + 2 * step),
        ],
        precision,
    )
    x = versions_of(events, "x")
    assert x == sorted(set(x)), f"X's versions {x} do not strictly increase along the shard"
    assert not final_state(events, "x").is_delete


def test_a_delete_after_a_later_item_is_not_resurrected() -> None:
    events = publish(
        [("INSERT", "x", T), ("MODIFY", "x", T), ("INSERT", "z", T + 1000), ("REMOVE", "x", T)],
        MILLISECOND,
    )
    assert final_state(events, "x").is_delete


def test_every_change_of_one_millisecond_gets_its_own_version() -> None:
    events = publish(
        [("INSERT", "x", T), ("INSERT", "z", T + 1000), ("MODIFY", "x", T), ("MODIFY", "x", T)],
        MILLISECOND,
    )
    x = versions_of(events, "x")
    assert x == sorted(set(x)), f"X's versions {x} tie or go down"
    assert final_state(events, "x").new_image == {"pk": {"S": "x"}, "v": {"N": "3"}}


def test_damaged_stored_item_versions_stop_the_shard_naming_it() -> None:
    publisher = Publisher(
        KafkaSettings(bootstrap_servers="unused:9092"),
        producer=HoldingProducer(arrive_after_polls=2),
    )  # type: ignore[arg-type]
    processor = KafkaRecordProcessor(publisher, transport="kinesis")
    init = InitializationInput(TABLE, "arn", "shardId-1", "7", T, b"\x01\x00")
    with pytest.raises(PermanentError, match="table orders shard shardId-1 checkpoint 7: 2 bytes"):
        processor.initialize(init)


def test_a_millisecond_stamped_change_after_a_microsecond_stamped_one_wins() -> None:
    """A stream whose precision was switched: the µs-stamped version is remembered, so the
    item's next, ms-stamped change of the same millisecond goes above it (tests/e2e/
    test_kcl_e2e.py ended with such an item wrong while µs versions were not remembered)."""
    events = publish(
        [("INSERT", "x", T + 500), ("MODIFY", "x", T + 700)], [MICROSECOND, MILLISECOND]
    )
    assert [e.version for e in events] == [T + 500, T + 501]
    assert final_state(events, "x").event_id == events[1].event_id
