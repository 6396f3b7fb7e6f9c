"""The DynamoDB Streams Kinesis Adapter's record JSON, read back as the wire record the native
reader makes of the same GetRecords record (connectors/sources/stream/kcl/adapter_records.py).

The adapter's form here is what its RecordObjectMapper writes (adapter 2.0.1): the wire's
field names, except epoch-millisecond `ApproximateCreationDateTime` and `userIdentity`'s
`principalId`/`type`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from bridge.codec.avro import EventCodec
from bridge.model.errors import PermanentError
from bridge.model.event import ChangeEvent
from bridge.model.versioning import StreamVersioner
from connectors.sources.stream.get_records import RAW_BODY, read_page
from connectors.sources.stream.kcl.adapter_records import stream_record_from_adapter

pytestmark = pytest.mark.unit

KEYS = {"pk": {"S": "a"}, "sk": {"N": "1"}}
IMAGE = {**KEYS, "b": {"B": "AQL/"}, "m": {"M": {"z": {"L": [{"NULL": True}]}}}, "n": {"N": "1.5"}}


def wire(seq: str, created_s: float, **extra: Any) -> dict[str, Any]:
    """A GetRecords record as DynamoDB's JSON has it."""
    return {
        "eventID": f"e{seq}",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": created_s,
            "Keys": KEYS,
            "NewImage": IMAGE,
            "OldImage": KEYS,
            "SequenceNumber": seq,
            "SizeBytes": 77,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        **extra,
    }


def adapter(record: dict[str, Any], created_ms: int) -> bytes:
    out = json.loads(json.dumps(record))
    out["dynamodb"]["ApproximateCreationDateTime"] = created_ms
    # The SDK's absent map is an empty one, and the adapter's mapper writes it (seen: an
    # INSERT's data holds "OldImage":{}).
    for image in ("NewImage", "OldImage"):
        out["dynamodb"].setdefault(image, {})
    if "userIdentity" in out:
        out["userIdentity"] = {k[0].lower() + k[1:]: v for k, v in out["userIdentity"].items()}
    return json.dumps(out).encode()


def native_events(records: list[dict[str, Any]]) -> list[bytes]:
    page, _ = read_page({RAW_BODY: orjson.dumps({"Records": records})}, "test")
    versions = StreamVersioner()
    codec = EventCodec()
    out = []
    for r in page:
        version = versions.next(r["dynamodb"]["ApproximateCreationDateTime"])
        out.append(codec.encode(ChangeEvent.from_stream_record("t", r, version, "s", wire=True)))
    return out


def adapter_events(datas: list[tuple[bytes, str]]) -> list[bytes]:
    versions = StreamVersioner()
    codec = EventCodec()
    out = []
    for data, seq in datas:
        r = stream_record_from_adapter(data, seq, "test")
        version = versions.next(r["dynamodb"]["ApproximateCreationDateTime"])
        out.append(codec.encode(ChangeEvent.from_stream_record("t", r, version, "s", wire=True)))
    return out


@pytest.mark.parametrize(
    "created_ms",
    [1_790_000_000_000, 1_790_000_000_123, 1_790_000_000_999, 1_790_000_001_001],
)
def test_the_adapter_form_gives_the_native_event_bytes(created_ms: int) -> None:
    # DynamoDB gives whole seconds; moto gives milliseconds: both survive the SDK's Instant.
    records = [wire(str(100 + i), (created_ms + i) / 1000) for i in range(3)]
    records.append(wire("200", created_ms / 1000))  # an earlier time after a later one
    datas = [
        (adapter(r, created_ms + (i if i < 3 else 0)), r["dynamodb"]["SequenceNumber"])
        for i, r in enumerate(records)
    ]
    assert adapter_events(datas) == native_events(records)


@pytest.mark.parametrize("event", ["INSERT", "REMOVE"])
def test_an_absent_image_stays_absent(event: str) -> None:
    record = wire("9", 1_790_000_000.5)
    record["eventName"] = event
    del record["dynamodb"]["OldImage" if event == "INSERT" else "NewImage"]
    data = adapter(record, 1_790_000_000_500)
    assert b'Image":{}' in data.replace(b" ", b"")
    assert adapter_events([(data, "9")]) == native_events([record])


def test_a_ttl_deletion_keeps_its_service_identity() -> None:
    record = wire(
        "5",
        1_790_000_000.0,
        userIdentity={"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},
    )
    record["eventName"] = "REMOVE"
    data = adapter(record, 1_790_000_000_000)
    assert b'"principalId"' in data  # the adapter's spelling
    converted = stream_record_from_adapter(data, "5", "test")
    event = ChangeEvent.from_stream_record("t", converted, 1, "s", wire=True)
    assert event.ttl_expired
    assert native_events([record]) == adapter_events([(data, "5")])


def test_unreadable_data_names_where_and_the_sequence_number() -> None:
    with pytest.raises(PermanentError, match=r"shard s1 sequence 7: the adapter's record is not"):
        stream_record_from_adapter(b"{not json", "7", "shard s1")
    with pytest.raises(PermanentError, match="no dynamodb object"):
        stream_record_from_adapter(b'{"eventName": "INSERT"}', "7", "shard s1")
    other = adapter(wire("8", 1.0), 1000)
    with pytest.raises(PermanentError, match="the record inside says SequenceNumber '8'"):
        stream_record_from_adapter(other, "7", "shard s1")
    seconds = json.loads(other)
    seconds["dynamodb"]["ApproximateCreationDateTime"] = 1.5
    with pytest.raises(PermanentError, match="is not epoch milliseconds"):
        stream_record_from_adapter(json.dumps(seconds).encode(), "8", "shard s1")
