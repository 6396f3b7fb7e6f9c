"""Kinesis Data Streams for DynamoDB records through the bridge's record processor.

Records are built in AWS's documented layout (tests/kinesis_records.py); the processor is the
one both the bridge's own reader and the KCL adapter drive, publishing through a Publisher on
a producer double that holds each acknowledgement until the test lets it arrive.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher
from bridge.model.errors import PermanentError
from bridge.runtime.metrics import REGISTRY, STREAM_OTHER_TABLE
from bridge.runtime.settings import KafkaSettings
from connectors.sources.stream.kinesis_records import kinesis_page, stream_record_from_kinesis
from connectors.sources.stream.processor import InitializationInput, KafkaRecordProcessor
from tests.kinesis_records import MICROSECOND, MILLISECOND, kinesis_data
from tests.producer_fakes import HoldingProducer

TABLE = "orders"
SHARD = "shardId-000000000001"
WHERE = f"kinesis stream s shard {SHARD}"
T0 = 1_700_000_000_123_456  # µs
_CODEC = EventCodec()


def key(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{n}"}}


def put(n: int, created_us: int, value: str, **kw: Any) -> bytes:
    return kinesis_data(
        "MODIFY", key(n), {**key(n), "v": {"S": value}}, table=TABLE, created_us=created_us, **kw
    )


def test_milliseconds_and_microseconds_give_the_same_instant() -> None:
    ms = stream_record_from_kinesis(put(1, T0, "a", precision=MILLISECOND), "7", WHERE)
    us = stream_record_from_kinesis(put(1, T0, "a", precision=MICROSECOND), "8", WHERE)
    legacy = stream_record_from_kinesis(put(1, T0, "a", precision=None), "9", WHERE)
    assert us["dynamodb"]["ApproximateCreationDateTime"] == datetime(
        2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC
    )
    assert ms["dynamodb"]["ApproximateCreationDateTime"] == datetime(
        2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC
    )
    assert (
        legacy["dynamodb"]["ApproximateCreationDateTime"]
        == (ms["dynamodb"]["ApproximateCreationDateTime"])
    )
    assert (legacy["dynamodb"]["ApproximateCreationDateTimePrecision"]) == MILLISECOND
    assert us["dynamodb"]["SequenceNumber"] == "8"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ApproximateCreationDateTime": "1700000000000"}, "is not an epoch number"),
        ({"ApproximateCreationDateTime": True}, "is not an epoch number"),
        ({"ApproximateCreationDateTime": -1}, "is negative"),
        ({"ApproximateCreationDateTimePrecision": "NANOSECOND"}, "unknown Approximate"),
        (
            {
                "ApproximateCreationDateTime": T0,
                "ApproximateCreationDateTimePrecision": "MILLISECOND",
            },
            "does not fit its precision MILLISECOND",
        ),
        ({"ApproximateCreationDateTime": 10**19}, "beyond the year 9999"),
    ],
)
def test_a_creation_time_that_is_not_one_is_refused_by_sequence(
    change: dict[str, Any], message: str
) -> None:
    doc = orjson.loads(put(1, T0, "a"))
    doc["dynamodb"].update(change)
    if (
        "ApproximateCreationDateTimePrecision" not in change
        and change.get("ApproximateCreationDateTime", 0) != T0
    ):
        doc["dynamodb"].pop("ApproximateCreationDateTimePrecision")
    with pytest.raises(PermanentError, match=f"{WHERE} sequence 42: .*{message}"):
        stream_record_from_kinesis(orjson.dumps(doc), "42", WHERE)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "Data is not JSON"),
        (b'{"Records": []}', "Data has no dynamodb object"),
        (b'{"dynamodb": {"Keys": {}}}', "Data has no dynamodb.ApproximateCreationDateTime"),
        ("%%%", "Data is not base64"),
        (None, "Data is NoneType"),
    ],
)
def test_data_that_is_not_a_dynamodb_change_is_refused(data: Any, message: str) -> None:
    with pytest.raises(PermanentError, match=f"{WHERE} sequence 3: {message}"):
        stream_record_from_kinesis(data, "3", WHERE)


@pytest.mark.parametrize(
    ("where", "name"),
    [("NewImage", "v"), ("Keys", "pk"), ("NewImage.m", "q")],
)
def test_data_naming_an_attribute_twice_is_refused_naming_it(where: str, name: str) -> None:
    """Another writer to the Kinesis stream may repeat a name; parsing would keep one value
    silently. Both Kinesis paths (the bridge's reader and the KCL) read Data here."""
    image = {**key(1), "v": {"S": "a"}, "m": {"M": {"q": {"S": "x"}}}}
    data = kinesis_data("MODIFY", key(1), image, table=TABLE, created_us=T0)
    written = {
        "NewImage": (b'"v":{"S":"a"}', b'"v":{"S":"a"},"v":{"S":"b"}'),
        "Keys": (b'"Keys":{"pk":{"S":"k1"}', b'"Keys":{"pk":{"S":"k1"},"pk":{"S":"k2"}'),
        "NewImage.m": (b'"q":{"S":"x"}', b'"q":{"S":"x"},"q":{"S":"y"}'),
    }[where]
    assert written[0] in data
    with pytest.raises(PermanentError, match=f"{WHERE} sequence 5: .*'{name}' appears twice"):
        stream_record_from_kinesis(data.replace(written[0], written[1], 1), "5", WHERE)


def test_a_page_in_wire_form_reads_base64_data() -> None:
    raw = put(1, T0, "a")
    page = kinesis_page(
        [{"SequenceNumber": "5", "Data": base64.b64encode(raw).decode(), "PartitionKey": "p"}],
        WHERE,
    )
    assert page[0]["dynamodb"]["NewImage"]["v"] == {"S": "a"}
    with pytest.raises(PermanentError, match="without a SequenceNumber"):
        kinesis_page([{"Data": raw}], WHERE)


class Checkpoints:
    def __init__(self) -> None:
        self.last = "TRIM_HORIZON"
        self.written: list[tuple[str, int | None, bytes]] = []

    def checkpoint(self, position: str, last_version: int | None, memory: bytes = b"") -> None:
        self.last = position
        self.written.append((position, last_version, memory))


def run(
    datas: list[bytes], last_version: int = 0, first_seq: int = 1, memory: bytes | None = b""
) -> tuple[list[tuple[bytes, int]], Checkpoints]:
    """(key, version) of every record published, and the checkpoints written."""
    producer = HoldingProducer()
    pub = Publisher(KafkaSettings(bootstrap_servers="unused:9092"), producer=producer)  # type: ignore[arg-type]
    processor = KafkaRecordProcessor(pub, checkpoint_interval_s=0, transport="kinesis")
    processor.initialize(
        InitializationInput(TABLE, "arn", SHARD, "TRIM_HORIZON", last_version, memory)
    )
    checkpoints = Checkpoints()
    for n, data in enumerate(datas, first_seq):
        processor.process_records(
            kinesis_page([{"SequenceNumber": str(n), "Data": data}], WHERE), checkpoints
        )
        assert not checkpoints.written[n - first_seq :], "checkpointed before Kafka acknowledged"
        producer.arrive()  # the broker answers; the next poll serves it
        processor.checkpoint_safe(checkpoints)  # nothing new is safe before that poll
        producer.poll()
        processor.checkpoint_safe(checkpoints)
    sent = [(k, _CODEC.decode(v).version) for _, k, v in producer.sent]
    return sent, checkpoints


def test_duplicates_and_late_records_never_outrank_the_newest_change() -> None:
    first = put(1, T0, "first")
    newest = put(1, T0 + 5_000, "newest")
    datas = [first, newest, first, put(1, T0 + 1_000, "late")]
    sent, _ = run(datas)
    versions = [v for _, v in sent]
    assert versions[2] == versions[0]  # the duplicate is a true duplicate
    assert max(versions) == versions[1]  # the newest change wins, whatever came after


def test_two_changes_in_one_millisecond_keep_their_shard_order() -> None:
    a = put(1, T0, "a", precision=MILLISECOND)
    b = put(1, T0 + 300, "b", precision=MILLISECOND)  # same millisecond
    sent, _ = run([a, b])
    assert sent[1][1] == sent[0][1] + 1


def test_the_checkpoint_carries_the_shards_versions_and_a_restart_repeats_them() -> None:
    ms = MILLISECOND  # "y" shares x's item and millisecond: its version depends on the stored
    datas = [
        put(1, T0 + 5_000, "x", precision=ms),
        put(2, T0, "late", precision=ms),
        put(1, T0 + 5_000, "y", precision=ms),
    ]
    sent, checkpoints = run(datas)
    position, last, memory = checkpoints.written[1]
    assert (position, last) == ("2", sent[0][1])  # not the late record's own version
    again, _ = run(datas[2:], last_version=last or 0, first_seq=3, memory=memory)
    assert again == sent[2:]
    assert sent[2][1] == sent[0][1] + 1


def test_records_of_another_table_are_counted_not_published() -> None:
    other = kinesis_data(
        "INSERT", key(9), key(9), table="invoices", created_us=T0, precision=MICROSECOND
    )
    before = REGISTRY.get(STREAM_OTHER_TABLE, table=TABLE) or 0
    sent, checkpoints = run([put(1, T0, "a"), other])
    assert len(sent) == 1
    assert (REGISTRY.get(STREAM_OTHER_TABLE, table=TABLE) or 0) - before == 1
    assert checkpoints.last == "1"
