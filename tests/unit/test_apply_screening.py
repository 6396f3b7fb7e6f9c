"""Screening one record alone: what passes, and the reason of what does not."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest

from bridge.apply.app import table_resolver
from bridge.apply.screening import Rejected, Screen
from bridge.codec.avro import SINGLE_OBJECT_MAGIC, EventCodec, event_to_record
from bridge.dlq.writer import RawRecord
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import KafkaSettings, Settings

CODEC = EventCodec()
SPEC = TableSpec("t", "t", "pk", "S", "sk", "B")
SCREEN = Screen(CODEC, table_resolver(Settings(kafka=KafkaSettings()), [SPEC]), [SPEC])


def check(keys: Any, kafka_key: bytes | None = None, **kw: Any) -> Any:
    kw.setdefault("op", Op.REMOVE)
    event = ChangeEvent(table="t", keys=keys, version=1, origin=Origin.STREAM, **kw)
    if kafka_key is None:
        kafka_key = attrs.dumps(keys).encode() if isinstance(keys, dict) else b"x"
    return SCREEN.check(RawRecord("ddb.t.changes", 0, 0, kafka_key, CODEC.encode(event)))


def test_a_well_formed_record_passes_with_its_canonical_key() -> None:
    keys = {"sk": {"B": "AAE="}, "pk": {"S": "a"}}
    event, key = check(keys)
    assert key == attrs.canonical_key(keys) and event.keys == keys


@pytest.mark.parametrize(
    ("keys", "fragment"),
    [
        ({"pk": {"S": ""}, "sk": {"B": "AAE="}}, "empty S key"),
        ({"pk": {"S": "a"}, "sk": {"B": "not base64!"}}, "base64"),
        ({"pk": {"S": "a"}, "sk": {"B": 5}}, "must be a string"),
        ({"pk": {"S": "a"}, "sk": {}}, "one type tag"),
        ({"pk": {"S": "a"}}, "key attributes"),
    ],
)
def test_malformed_keys_are_rejected_with_their_reason(keys: Any, fragment: str) -> None:
    verdict = check(keys)
    assert isinstance(verdict, Rejected) and fragment in verdict.reason, verdict


def test_a_record_without_kafka_key_or_with_anothers_is_rejected() -> None:
    keys = {"pk": {"S": "a"}, "sk": {"B": "AAE="}}
    event = ChangeEvent(table="t", keys=keys, version=1, origin=Origin.STREAM, op=Op.REMOVE)
    value = CODEC.encode(event)
    none = SCREEN.check(RawRecord("ddb.t.changes", 0, 0, None, value))
    other = SCREEN.check(RawRecord("ddb.t.changes", 0, 0, b'{"pk":{"S":"b"}}', value))
    assert isinstance(none, Rejected) and "no key" in none.reason
    assert isinstance(other, Rejected) and "another key" in other.reason


def encode_with_image_text(event: ChangeEvent, image_text: str) -> bytes:
    """The event's record with `new_image` as given JSON text: what another producer may
    send, deeper than orjson (255 levels) would ever encode."""
    record = event_to_record(event)
    record["new_image"] = image_text
    out = io.BytesIO()
    out.write(SINGLE_OBJECT_MAGIC + CODEC.schema.fingerprint)
    fastavro.schemaless_writer(out, CODEC.schema.parsed, record)
    return out.getvalue()


def deep_text(levels: int) -> str:
    return '{"pk":{"S":"a"},"d":' + '{"M":{"a":' * levels + '{"S":"x"}' + "}}" * levels + "}"


def test_images_nested_beyond_what_dynamodb_allows_are_rejected_not_crashed_on() -> None:
    """orjson refuses to encode past 255 levels: such an image would fail in the sink,
    outside any per-item handling. DynamoDB nests 32 levels; 64 are accepted."""
    keys = {"pk": {"S": "a"}, "sk": {"B": "AAE="}}
    event = ChangeEvent(table="t", keys=keys, version=1, origin=Origin.STREAM, op=Op.MODIFY)
    kafka_key = attrs.canonical_key(keys)
    for levels, passes in ((40, True), (300, False)):
        value = encode_with_image_text(event, deep_text(levels))
        verdict = SCREEN.check(RawRecord("ddb.t.changes", 0, 0, kafka_key, value))
        assert isinstance(verdict, Rejected) is not passes, (levels, verdict)
        if not passes:
            assert "levels deep" in verdict.reason
