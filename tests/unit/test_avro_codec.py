from __future__ import annotations

import io
import json
import struct

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.codec import envelope as avro_envelope
from bridge.codec.avro import EventCodec, ParsedSchema, load_schema_text
from bridge.model.errors import DecodeError
from bridge.model.event import ChangeEvent, Op, Origin
from tests import strategies
from tests.samples import sample_item


def make_event(item: dict, op: Op = Op.MODIFY) -> ChangeEvent:
    return ChangeEvent(
        table="orders",
        op=op,
        keys={"pk": item["pk"], "sk": item["sk"]},
        version=1_700_000_000_000_001,
        origin=Origin.STREAM,
        new_image=item,
        old_image=item,
        shard_id="shardId-1",
        sequence_number="123",
        event_id="ev",
        approximate_creation_time_ms=1_700_000_000_000,
    )


def test_schema_and_dataclass_agree() -> None:
    schema = json.loads(load_schema_text())
    import dataclasses

    # Every compared field is in the envelope; the uncompared ones (`*_image_json`) are the
    # same images as text, carried only to skip re-serialising them, and `encoded` the key
    # and envelope the compiled core made with the event.
    fields = dataclasses.fields(ChangeEvent)
    assert {f["name"] for f in schema["fields"]} == {f.name for f in fields if f.compare}
    assert {f.name for f in fields if not f.compare} == {
        "new_image_json",
        "old_image_json",
        "encoded",
    }
    enums = {
        f["name"]: f["type"]["symbols"] for f in schema["fields"] if isinstance(f["type"], dict)
    }
    assert enums["op"] == [o.value for o in Op]
    assert enums["origin"] == [o.value for o in Origin]


def test_single_object_framing() -> None:
    codec = EventCodec()
    data = codec.encode(make_event(sample_item(1)))
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == codec.schema.fingerprint
    # The fingerprint is the little-endian CRC-64-AVRO of the parsing canonical form.
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    hex_fp = fingerprint(to_parsing_canonical_form(codec.schema.parsed), "CRC-64-AVRO")
    assert struct.unpack("<Q", data[2:10])[0] == int(hex_fp, 16)


@settings(max_examples=300, deadline=None)
@given(strategies.items())
def test_round_trip_arbitrary_items(item: dict) -> None:
    codec = EventCodec()
    event = make_event(item)
    assert codec.decode(codec.encode(event)) == event
    remove = ChangeEvent(
        table="t",
        op=Op.REMOVE,
        keys={"pk": item["pk"]},
        version=5,
        origin=Origin.EXPORT,
        ttl_expired=True,
    )
    assert codec.decode(codec.encode(remove)) == remove


def test_unknown_fingerprint_is_named() -> None:
    data = bytearray(EventCodec().encode(make_event(sample_item(2))))
    data[2:10] = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    with pytest.raises(DecodeError, match="unknown Avro schema fingerprint 0807060504030201"):
        EventCodec().decode(bytes(data))


def test_corrupt_body_names_offset() -> None:
    data = EventCodec().encode(make_event(sample_item(3)))
    with pytest.raises(DecodeError, match="byte offset"):
        EventCodec().decode(data[:40])
    with pytest.raises(DecodeError, match="trailing bytes"):
        EventCodec().decode(data + b"\x00\x00")
    with pytest.raises(DecodeError, match="not an Avro change event"):
        EventCodec().decode(b'{"json": true}')


def evolved_schema_text() -> str:
    schema = json.loads(load_schema_text())
    schema["fields"].append({"name": "tenant", "type": ["null", "string"], "default": None})
    return json.dumps(schema)


def test_old_events_decode_after_adding_an_optional_field() -> None:
    """Readers on the next schema version still decode what the current version wrote."""
    event = make_event(sample_item(4))
    written_now = EventCodec().encode(event)
    reader_v2 = EventCodec(schema_text=evolved_schema_text())
    assert reader_v2.decode(written_now) == event


def test_new_events_decode_on_current_reader_when_schema_is_known() -> None:
    """A v2 writer's events decode on a v1 reader that knows the v2 schema (forward compat)."""
    event = make_event(sample_item(5))
    written_v2 = EventCodec(schema_text=evolved_schema_text()).encode(event)
    with pytest.raises(DecodeError, match="unknown Avro schema fingerprint"):
        EventCodec().decode(written_v2)
    reader = EventCodec(extra_writer_schemas=[evolved_schema_text()])
    assert reader.decode(written_v2) == event


def test_history_holds_the_current_schema() -> None:
    """Changing the schema without copying the old one to history/ would strand old events."""
    current = ParsedSchema.from_text(load_schema_text()).fingerprint
    from bridge.codec.avro import history_schema_texts

    assert current in {ParsedSchema.from_text(t).fingerprint for t in history_schema_texts()}


def test_confluent_framing() -> None:
    text = load_schema_text()
    codec = EventCodec("confluent", writer_schema_id=42, schema_id_lookup={42: text}.__getitem__)
    event = make_event(sample_item(6))
    data = codec.encode(event)
    assert data[:5] == b"\x00\x00\x00\x00\x2a"
    assert codec.decode(data) == event
    # the body is plain Avro of the schema
    import io

    body = fastavro.schemaless_reader(io.BytesIO(data[5:]), fastavro.parse_schema(json.loads(text)))
    assert body["table"] == "orders"  # type: ignore[index]


@settings(max_examples=400, deadline=None)
@given(
    strategies.items(),
    st.sampled_from(list(Op)),
    st.sampled_from(list(Origin)),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.text(max_size=40),
)
def test_fast_envelope_is_byte_identical_to_fastavro(
    item: dict, op: Op, origin: Origin, version: int, flag: bool, text: str
) -> None:
    codec = EventCodec()
    assert codec._fast is not None, "the shipped schema must use the fast encoder"
    event = ChangeEvent(
        table=text or "t",
        op=op,
        keys={"pk": item["pk"]},
        version=version,
        origin=origin,
        new_image=item if flag else None,
        old_image=None if flag else item,
        shard_id=text if flag else None,
        sequence_number=None if flag else text,
        event_id=text,
        approximate_creation_time_ms=version if not flag else None,
        ttl_expired=flag,
    )
    assert codec.encode(event) == codec.encode_generic(event)
    assert codec.decode(codec.encode(event)) == event


def test_other_schemas_fall_back_to_fastavro() -> None:
    codec = EventCodec(schema_text=evolved_schema_text())
    assert codec._fast is None
    event = make_event(sample_item(8))
    assert codec.decode(codec.encode(event)) == event


@settings(max_examples=300, deadline=None)
@given(strategies.items(), st.sampled_from(list(Op)), st.booleans(), st.text(max_size=20))
def test_fast_decoder_agrees_with_fastavro(item: dict, op: Op, flag: bool, text: str) -> None:
    codec = EventCodec()
    assert codec._fast_decode is not None
    event = ChangeEvent(
        table=text or "t",
        op=op,
        keys={"pk": item["pk"]},
        version=-5 if flag else 2**62,
        origin=Origin.EXPORT,
        new_image=item,
        old_image=item if flag else None,
        shard_id=None if flag else text,
        event_id=text if flag else None,
        approximate_creation_time_ms=None if flag else 2**40,
        ttl_expired=flag,
    )
    data = codec.encode(event)
    assert codec.decode(data) == codec.decode_generic(data) == event


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_corrupt_bodies_raise_decode_error(data: st.DataObject) -> None:
    """Truncation or any flipped byte gives a DecodeError (or, rarely, another valid event)."""
    codec = EventCodec()
    good = codec.encode(make_event(sample_item(data.draw(st.integers(0, 50)))))
    cut = data.draw(st.integers(10, len(good) - 1))
    with pytest.raises(DecodeError):
        codec.decode(good[:cut])
    pos = data.draw(st.integers(10, len(good) - 1))
    flipped = bytearray(good)
    flipped[pos] ^= data.draw(st.integers(1, 255))
    try:
        decoded = codec.decode(bytes(flipped))
    except DecodeError:
        return
    assert isinstance(decoded, ChangeEvent)


@pytest.mark.parametrize("bits", [0, 6, 7, 13, 14, 27, 28, 41, 42, 55, 56, 62, 63])
def test_fast_long_encoding_at_every_chunk_boundary(bits: int) -> None:
    # The fast encoder writes longs in 14-bit chunks (bridge/codec/envelope.py): the values
    # around each chunk's edge, both signs, against fastavro's own encoding of a long.
    for n in {(1 << bits) - 1, 1 << bits, (1 << bits) + 1, -(1 << bits), -(1 << bits) - 1}:
        if not -(2**63) <= n < 2**63:
            continue
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema("long"), n)
        assert avro_envelope._zigzag_varint(n) == out.getvalue(), n
