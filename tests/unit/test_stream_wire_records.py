"""GetRecords read from its JSON body (the stream's fast path) against botocore's parsed form.

For any valid record the two paths must give equal events, the same Kafka key, headers and
timestamp, and byte-identical envelopes; for a bad record both must refuse it with an error
naming the table, shard and sequence number. The boto3 side is botocore's own JSON parser run
on the same body with GetRecords' output shape: exactly what `get_records` returns.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import botocore.session
import orjson
import pytest
from botocore.parsers import create_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher
from bridge.model.errors import PermanentError
from bridge.model.event import ChangeEvent
from bridge.model.versioning import StreamVersioner
from connectors.sources.stream.get_records import RAW_BODY, WireRecords, read_page
from tests.strategies import items

TABLE = "orders"
SHARD = "shardId-00000001700000000000-abcdef01"
_SHAPE = (
    botocore.session.get_session()
    .get_service_model("dynamodbstreams")
    .operation_model("GetRecords")
    .output_shape
)
_CODEC = EventCodec()


def boto3_records(body: bytes) -> list[dict[str, Any]]:
    """What boto3's `get_records` returns for this body."""
    parsed = create_parser("json").parse({"body": body, "headers": {}, "status_code": 200}, _SHAPE)
    return list(parsed["Records"])


def wire_records(body: bytes) -> list[dict[str, Any]]:
    records, next_iterator = read_page({RAW_BODY: body}, f"stream arn shard {SHARD}")
    assert isinstance(records, WireRecords)
    assert next_iterator == "iterator-2"
    return records


def events_of(records: list[dict[str, Any]], wire: bool) -> list[ChangeEvent]:
    versioner = StreamVersioner(5)
    return [
        ChangeEvent.from_stream_record(
            TABLE,
            r,
            versioner.next(r["dynamodb"]["ApproximateCreationDateTime"]),
            SHARD,
            wire=wire,
        )
        for r in records
    ]


def uncanonical(text: str, bits: int) -> str:
    """The same bytes in a base64 spelling with nonzero unused bits (boto3 reads it; the
    canonical text differs), where the text has padding; else the text itself."""
    if not text.endswith("="):
        return text
    unused = 4 if text.endswith("==") else 2
    at = len(text) - (3 if unused == 4 else 2)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    index = alphabet.index(text[at]) | (bits % (1 << unused) or 1)
    return text[:at] + alphabet[index] + text[at + 1 :]


def respell_binaries(av: Any, bits: int) -> Any:
    """`av` with every B/BS value spelled uncanonically (same bytes)."""
    ((tag, value),) = av.items()
    if tag == "B":
        return {"B": uncanonical(value, bits)}
    if tag == "BS":
        return {"BS": [uncanonical(v, bits) for v in value]}
    if tag == "L":
        return {"L": [respell_binaries(v, bits) for v in value]}
    if tag == "M":
        return {"M": {k: respell_binaries(v, bits) for k, v in value.items()}}
    return av


@st.composite
def stream_records(draw: st.DrawFn) -> dict[str, Any]:
    item = draw(items())
    if draw(st.booleans()):
        bits = draw(st.integers(min_value=1, max_value=15))
        item = {k: respell_binaries(v, bits) for k, v in item.items()}
    op = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    keys = {"pk": item["pk"], "sk": item["sk"]}
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": draw(
            st.one_of(
                st.integers(min_value=1_000_000_000, max_value=2_000_000_000),
                st.floats(min_value=1e9, max_value=2e9, allow_nan=False),
            )
        ),
        "Keys": keys,
        "SequenceNumber": str(draw(st.integers(min_value=1, max_value=10**24))),
        "SizeBytes": draw(st.integers(min_value=1, max_value=400_000)),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if op != "REMOVE":
        ddb["NewImage"] = item
    if op != "INSERT" and draw(st.booleans()):
        ddb["OldImage"] = {**draw(items()), **keys}
    record: dict[str, Any] = {
        "awsRegion": "us-east-1",
        "eventID": draw(st.text(alphabet="0123456789abcdef", min_size=1, max_size=32)),
        "eventName": op,
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "dynamodb": ddb,
    }
    if op == "REMOVE" and draw(st.booleans()):
        record["userIdentity"] = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
    return record


def page_body(records: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"Records": records, "NextShardIterator": "iterator-2"})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(stream_records(), min_size=1, max_size=4))
def test_wire_and_boto3_paths_give_equal_events_and_identical_envelopes(
    records: list[dict[str, Any]],
) -> None:
    body = page_body(records)
    via_boto3 = events_of(boto3_records(body), wire=False)
    via_wire = events_of(wire_records(body), wire=True)
    assert via_wire == via_boto3
    for a, b in zip(via_wire, via_boto3, strict=True):
        assert _CODEC.encode(a) == _CODEC.encode(b)
        assert _CODEC.encode_generic(a) == _CODEC.encode_generic(b)
        assert a.key_bytes() == b.key_bytes()
        assert Publisher.headers(a) == Publisher.headers(b)
        assert a.change_time_ms == b.change_time_ms
        assert a.ttl_expired == b.ttl_expired


def test_uncanonical_base64_is_published_canonical_on_both_paths() -> None:
    record = {
        "eventID": "1",
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_700_000_000.5,
            "Keys": {"pk": {"B": "AB=="}},
            "NewImage": {"pk": {"B": "AB=="}, "bs": {"BS": ["AAE=", "AAF="]}},
            "SequenceNumber": "100",
        },
    }
    body = page_body([record])
    (wire,) = events_of(wire_records(body), wire=True)
    (boto,) = events_of(boto3_records(body), wire=False)
    assert wire.keys == boto.keys == {"pk": {"B": base64.b64encode(b"\0").decode()}}
    assert wire.new_image == boto.new_image
    assert wire.new_image is not None and wire.new_image["bs"] == {"BS": ["AAE=", "AAE="]}


# Bad attribute values both paths can see (botocore passes them through as they are).
BAD_VALUES = [
    {"N": "1e999"},
    {"N": "NaN"},
    {"N": "12345678901234567890123456789012345678901"},
    {"N": 5},
    {"S": 5},
    {"BOOL": "true"},
    {"NULL": False},
    {"SS": ["a", 1]},
    {"NS": ["1", "x"]},
    {"S": "a", "N": "1"},
    {"Q": "1"},
    {},
    {"L": [{"N": "--1"}]},
    {"M": {"inner": {"N": "1.2.3"}}},
]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda v: orjson.dumps(v).decode())
@pytest.mark.parametrize("where", ["Keys", "NewImage", "OldImage"])
def test_both_paths_refuse_a_bad_value_naming_table_shard_and_sequence(
    bad: dict[str, Any], where: str
) -> None:
    record = {
        "eventID": "1",
        "eventName": "MODIFY",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_700_000_000,
            "Keys": {"pk": {"S": "a"}},
            "NewImage": {"pk": {"S": "a"}},
            "OldImage": {"pk": {"S": "a"}},
            "SequenceNumber": "4242",
        },
    }
    record["dynamodb"][where]["bad"] = bad
    body = page_body([record])
    for records, wire in ((boto3_records(body), False), (wire_records(body), True)):
        with pytest.raises(PermanentError) as caught:
            events_of(records, wire=wire)
        message = str(caught.value)
        assert f"table {TABLE} shard {SHARD} sequence 4242 {where}" in message, message


@pytest.mark.parametrize(
    "change",
    [
        {"eventName": "UPSERT"},
        {"eventName": None},
        {"eventName": 3},
    ],
)
def test_both_paths_refuse_a_bad_event_name(change: dict[str, Any]) -> None:
    record: dict[str, Any] = {
        "eventID": "1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_700_000_000,
            "Keys": {"pk": {"S": "a"}},
            "SequenceNumber": "77",
        },
        **change,
    }
    body = page_body([record])
    for records, wire in ((boto3_records(body), False), (wire_records(body), True)):
        with pytest.raises(PermanentError, match=f"table {TABLE} shard {SHARD} sequence 77"):
            events_of(records, wire=wire)


def test_both_paths_refuse_a_record_without_keys() -> None:
    record = {
        "eventID": "1",
        "eventName": "INSERT",
        "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000, "SequenceNumber": "9"},
    }
    body = page_body([record])
    for records, wire in ((boto3_records(body), False), (wire_records(body), True)):
        with pytest.raises(PermanentError, match=f"shard {SHARD} sequence 9: .*no Keys"):
            events_of(records, wire=wire)


def test_the_wire_path_refuses_base64_boto3_would_read_by_dropping_characters() -> None:
    record = {
        "eventID": "1",
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_700_000_000,
            "Keys": {"pk": {"S": "a"}},
            "NewImage": {"pk": {"S": "a"}, "blob": {"B": "AA!!AA=="}},
            "SequenceNumber": "31",
        },
    }
    body = page_body([record])
    # boto3's lenient decoder skips the '!' characters: the bytes are silently different.
    assert boto3_records(body)[0]["dynamodb"]["NewImage"]["blob"]["B"] == b"\0\0\0"
    with pytest.raises(PermanentError, match="sequence 31 NewImage.blob: invalid base64"):
        events_of(wire_records(body), wire=True)


def test_a_body_that_is_not_json_names_the_shard() -> None:
    with pytest.raises(PermanentError, match=f"shard {SHARD}: the GetRecords response is not"):
        read_page({RAW_BODY: b'{"Records": [tru'}, f"stream arn shard {SHARD}")
    with pytest.raises(PermanentError, match="no list of Records"):
        read_page({RAW_BODY: b'{"Records": {}}'}, f"stream arn shard {SHARD}")


def test_a_parsed_page_is_passed_through_in_boto3_form() -> None:
    record = {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "1"}}
    page = {"Records": [copy.deepcopy(record)], "NextShardIterator": "it"}
    records, next_iterator = read_page(page, "here")
    assert records == [record] and not isinstance(records, WireRecords)
    assert next_iterator == "it"


class _Checkpoints:
    last = "TRIM_HORIZON"

    def checkpoint(self, position: str, last_version: int | None, memory: bytes = b"") -> None:
        self.last = position


def processed(records: list[dict[str, Any]]) -> tuple[list[tuple[str, bytes, bytes]], str]:
    """What KafkaRecordProcessor sends for one page, and its checkpoint once all is acked."""
    from bridge.runtime.settings import KafkaSettings
    from connectors.sources.stream.processor import InitializationInput, KafkaRecordProcessor
    from tests.producer_fakes import HoldingProducer

    producer = HoldingProducer()
    pub = Publisher(KafkaSettings(bootstrap_servers="unused:9092"), producer=producer)  # type: ignore[arg-type]
    processor = KafkaRecordProcessor(pub, checkpoint_interval_s=0)
    processor.initialize(InitializationInput(TABLE, "arn", SHARD, "TRIM_HORIZON", 5))
    checkpoints = _Checkpoints()
    processor.process_records(records, checkpoints)  # type: ignore[arg-type]
    assert checkpoints.last == "TRIM_HORIZON"  # held: nothing is acknowledged yet
    producer.arrive()  # the broker answers: the page is checkpointed after the next poll
    producer.poll()
    processor.checkpoint_safe(checkpoints)  # type: ignore[arg-type]
    return producer.sent, checkpoints.last


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(stream_records(), min_size=1, max_size=4))
def test_the_processor_sends_the_same_records_from_either_form(
    records: list[dict[str, Any]],
) -> None:
    body = page_body(records)
    via_wire = processed(wire_records(body))
    via_boto3 = processed(boto3_records(body))
    assert via_wire == via_boto3
    assert via_wire[1] == records[-1]["dynamodb"]["SequenceNumber"]


def test_the_processor_names_a_record_without_a_creation_time() -> None:
    record = {
        "eventID": "1",
        "eventName": "INSERT",
        "dynamodb": {"Keys": {"pk": {"S": "a"}}, "SequenceNumber": "12"},
    }
    body = page_body([record])
    for records in (wire_records(body), boto3_records(body)):
        with pytest.raises(PermanentError, match=f"table {TABLE} shard {SHARD} sequence 12: "):
            processed(records)
