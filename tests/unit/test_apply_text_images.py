"""Apply's pass-through of images: the text path admits only what the parsing path admits,
with an equal event and key, and everything else gets the parsing path's verdict."""

from __future__ import annotations

import io
import sqlite3
from typing import Any

import fastavro
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.apply.screening import Rejected, Screen
from bridge.codec import compiled
from bridge.codec.avro import SINGLE_OBJECT_MAGIC, EventCodec, event_to_record
from bridge.codec.envelope import _long, _long_fast, _zigzag_varint
from bridge.codec.image_text import TextImageEvent, image_ok, stored_text
from bridge.dlq.writer import RawRecord
from bridge.model import attrs
from bridge.model.errors import AttributeTypeError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from tests.strategies import attribute_values, items, names

CODEC = EventCodec()
TOPIC = "ddb.t.changes"


def spec_for(item: dict[str, Any]) -> TableSpec:
    (hash_type,) = item["pk"]
    (range_type,) = item["sk"]
    return TableSpec("t", "t", "pk", hash_type, "sk", range_type)


def screens(spec: TableSpec) -> tuple[Screen, Screen]:
    def table_of(topic: str) -> str:
        return "t" if topic == TOPIC else topic

    return (
        Screen(CODEC, table_of, [spec], image_text=True),
        Screen(CODEC, table_of, [spec], image_text=False),
    )


def with_image_text(event: ChangeEvent, new_image: str | None, field: str = "new_image") -> bytes:
    """The event's record with its `field` image replaced by arbitrary text (another
    producer)."""
    record = event_to_record(event)
    record[field] = new_image
    out = io.BytesIO()
    out.write(SINGLE_OBJECT_MAGIC + CODEC.schema.fingerprint)
    fastavro.schemaless_writer(out, CODEC.schema.parsed, record)
    return out.getvalue()


def assert_same_verdict(text: Screen, parse: Screen, rec: RawRecord) -> Any:
    """The text path, record by record and a batch at a time (in one compiled call where
    built), gives the parsing path's verdict."""
    slow = parse.check(rec)
    fast = text.check(rec)
    for got in (fast, *text.check_batch([rec, rec])):
        if isinstance(slow, Rejected):
            assert got == slow
            continue
        assert not isinstance(got, Rejected), got
        assert got[1] == slow[1]
        assert got[0] == slow[0] and slow[0] == got[0]
        assert type(got[0]) is type(fast[0])
        assert got[0].new_image_json == fast[0].new_image_json
        assert got[0].old_image_json == fast[0].old_image_json
        assert got[0].new_image == slow[0].new_image and got[0].old_image == slow[0].old_image
    return fast


def sample_event(**kw: Any) -> ChangeEvent:
    item = {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"M": {"y": {"L": [{"S": "z"}]}}}}
    kw.setdefault("new_image", item)
    kw.setdefault("op", Op.MODIFY)
    return ChangeEvent(
        table="t",
        keys={"pk": {"S": "a"}, "sk": {"N": "1"}},
        version=7,
        origin=Origin.STREAM,
        **kw,
    )


SPEC = TableSpec("t", "t", "pk", "S", "sk", "N")


def test_a_typical_record_takes_the_text_path_and_reads_like_the_parsed_one() -> None:
    event = sample_event(old_image={"pk": {"S": "a"}, "sk": {"N": "1"}}, shard_id="s")
    rec = RawRecord(TOPIC, 0, 0, event.key_bytes(), CODEC.encode(event))
    text, parse = screens(SPEC)
    got = assert_same_verdict(text, parse, rec)
    assert type(got[0]) is TextImageEvent
    assert stored_text(got[0]) == orjson.dumps(event.new_image)
    assert got[0].new_image == event.new_image and got[0] == event


def test_a_batch_takes_the_compiled_screen_where_it_is_built() -> None:
    """What the Python text path admits, apply's compiled screen admits too, in one call for
    the batch (a record it leaves takes `check`); without the core, the same verdicts."""
    events = [
        sample_event(old_image={"pk": {"S": "a"}, "sk": {"N": "1"}}, shard_id="s"),
        sample_event(new_image=None, op=Op.REMOVE, old_image={"q": {"NS": ["1", "-2.5"]}}),
        sample_event(new_image={"pk": {"S": "a"}, "sk": {"N": "1"}, "b": {"BS": ["AAE="]}}),
    ]
    records = [RawRecord(TOPIC, 0, i, e.key_bytes(), CODEC.encode(e)) for i, e in enumerate(events)]
    records.append(RawRecord(TOPIC, 0, 9, b'{"pk":{"S":"b"}}', records[0].value))  # not its key
    text, parse = screens(SPEC)
    verdicts = text.check_batch(records)
    assert verdicts == [text.check(r) for r in records]
    assert [type(v[0]) for v in verdicts[:3]] == [TextImageEvent] * 3  # type: ignore[index]
    assert isinstance(verdicts[3], Rejected) and verdicts[3] == parse.check(records[3])
    if compiled.APPLY_CORE is not None:
        fast = text._fast_topics  # learnt from the first batch
        assert TOPIC in fast
        direct = compiled.APPLY_CORE.screen_batch(
            records, fast, CODEC.single_object_prefix, CODEC.text_decoder, CODEC.decode_text
        )
        assert direct[:3] == verdicts[:3] and direct[3] is None


def test_a_batch_longer_than_one_compiled_call_keeps_every_verdict_in_place() -> None:
    good = sample_event()
    records = [
        RawRecord(TOPIC, 0, i, good.key_bytes() if i % 7 else b"{}", CODEC.encode(good))
        for i in range(450)  # the compiled screen takes them in slices
    ]
    text, _ = screens(SPEC)
    assert text.check_batch(records) == [text.check(r) for r in records]


@settings(max_examples=300, deadline=None)
@given(
    item=items(),
    old=st.one_of(st.none(), st.dictionaries(names, attribute_values, max_size=3)),
    op=st.sampled_from(list(Op)),
    drop_image=st.booleans(),
    drop_key=st.sampled_from([None, "pk", "sk"]),
    key_text=st.sampled_from(["canonical", "as keys", "other"]),
)
def test_both_paths_give_the_same_verdict_for_any_event(
    item: dict[str, Any],
    old: dict[str, Any] | None,
    op: Op,
    drop_image: bool,
    drop_key: str | None,
    key_text: str,
) -> None:
    spec = spec_for(item)
    keys = {"pk": item["pk"], "sk": item["sk"]}
    image = None if drop_image else dict(item)
    if image is not None and drop_key is not None:
        del image[drop_key]  # an image without a key attribute: the full image adds it
    event = ChangeEvent(
        table="t",
        op=op,
        keys=keys,
        version=1,
        origin=Origin.STREAM,
        new_image=image,
        old_image=old,
    )
    try:
        value = CODEC.encode(event)
        canonical = attrs.canonical_key(keys)
    except (AttributeTypeError, TypeError):
        return  # numbers the strategy spells in ways DynamoDB refuses: not an event
    kafka_key = {
        "canonical": canonical,
        "as keys": orjson.dumps(keys),
        "other": b'{"pk":{"S":"another"}}',
    }[key_text]
    text, parse = screens(spec)
    assert_same_verdict(text, parse, RawRecord(TOPIC, 0, 0, kafka_key, value))


@settings(max_examples=300, deadline=None)
@given(
    image=st.one_of(
        st.dictionaries(names, attribute_values, max_size=4).map(
            lambda d: orjson.dumps({"pk": {"S": "a"}, "sk": {"N": "1"}, **d}).decode()
        ),
        st.text(max_size=40),
        st.recursive(
            st.one_of(
                st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5)
            ),
            lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=3), c)),
        ).map(lambda v: orjson.dumps({"pk": {"S": "a"}, "sk": {"N": "1"}, "v": v}).decode()),
    ),
    cut=st.integers(min_value=0, max_value=400),
)
def test_any_image_text_gets_the_parsing_paths_verdict(image: str, cut: int) -> None:
    """Arbitrary, malformed and truncated image texts: the same verdict and reason."""
    event = sample_event()
    value = with_image_text(event, image[:cut] if cut < len(image) else image)
    text, parse = screens(SPEC)
    assert_same_verdict(text, parse, RawRecord(TOPIC, 0, 0, event.key_bytes(), value))


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0, max_value=10_000), byte=st.integers(0, 255))
def test_corrupt_envelopes_get_the_parsing_paths_verdict(position: int, byte: int) -> None:
    event = sample_event(old_image={"q": {"BS": ["AAE="]}}, event_id="e", shard_id="s")
    value = bytearray(CODEC.encode(event))
    value[position % len(value)] = byte
    text, parse = screens(SPEC)
    for data in (bytes(value), bytes(value[: position % len(value)])):
        assert_same_verdict(text, parse, RawRecord(TOPIC, 0, 0, event.key_bytes(), data))


@settings(max_examples=500, deadline=None)
@given(
    value=st.one_of(
        attribute_values.map(lambda av: {"a": av}),
        st.recursive(
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-(2**63), 2**63 - 1),
                st.floats(),
                st.text(max_size=5),
            ),
            lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=3), c)),
        ),
    )
)
def test_image_ok_vouches_only_for_what_validate_accepts(value: Any) -> None:
    try:
        text = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return
    if image_ok(text):
        # validate raises on anything it refuses; what it accepts it returns unchanged
        assert attrs.validate(orjson.loads(text)) == orjson.loads(text)
    if compiled.APPLY_CORE is not None:  # the compiled screen's check of an old image
        assert compiled.APPLY_CORE.image_ok(text) == image_ok(text)


def test_image_ok_refuses_what_it_cannot_vouch_for() -> None:
    for text in [
        b'{"a":{"S":"x"},}',  # trailing comma
        b'{"a":{"S":"x"}{"b":{"S":"y"}}',  # missing comma
        b'{"a":{"L":[{"S":"x"},]}}',
        b'{"a":{"N":"1e5"}}',  # valid, but an exponent needs the exact range check
        b'{"a":{"N":"12345678901234567890123456789012345678901"}}',
        b'{"a":{"B":"QQ="}}',  # bad padding
        b'{"a":{"S":"\\ud800"}}',  # lone surrogate
        b'{"a":{"S":"\xff"}}',  # not UTF-8
        b'{"a": {"S":"x"}}',  # whitespace: valid, but not the compact form
        b'{"a":{"X":"x"}}',
        b'{"a":{"S":"x","N":"1"}}',
    ]:
        assert not image_ok(text), text
        if compiled.APPLY_CORE is not None:
            assert not compiled.APPLY_CORE.image_ok(text), text
    good = b'{"a":{"S":"x\\"y\\u00e9"},"b":{"M":{"c":{"L":[{"NULL":true}]}}}}'
    assert image_ok(good)
    if compiled.APPLY_CORE is not None:
        assert compiled.APPLY_CORE.image_ok(good)
        deep = b'{"d":{"M":{"e":{"L":[{"M":{"f":{"S":"x"}}}]}}}}'  # image_text.DEPTH levels
        assert compiled.APPLY_CORE.image_ok(deep) and image_ok(deep)
        deeper = deep.replace(b'{"S":"x"}', b'{"L":[]}')  # one more: left to Python
        assert not compiled.APPLY_CORE.image_ok(deeper) and not image_ok(deeper)
        assert not compiled.APPLY_CORE.image_ok(b'{"a":{"S":"x"},"a":{"S":"y"}}')  # a repeat


def test_the_sqlite_sink_stores_the_checked_text_and_the_full_image_otherwise(
    tmp_path: Any,
) -> None:
    text_screen, _ = screens(SPEC)
    with_keys = sample_event()
    without_key = sample_event(new_image={"pk": {"S": "b"}, "v": {"S": "w"}})
    without_key = ChangeEvent(
        table="t",
        op=Op.MODIFY,
        keys={"pk": {"S": "b"}, "sk": {"N": "2"}},
        version=7,
        origin=Origin.STREAM,
        new_image={"pk": {"S": "b"}, "v": {"S": "w"}},
    )
    admitted = [
        text_screen.check(RawRecord(TOPIC, 0, i, e.key_bytes(), CODEC.encode(e)))
        for i, e in enumerate([with_keys, without_key])
    ]
    events = [a[0] for a in admitted if not isinstance(a, Rejected)]
    assert [type(e) for e in events] == [TextImageEvent, ChangeEvent]
    path = str(tmp_path / "t.db")
    sink = SqliteSink(SqliteTarget(type="sqlite", path=path))
    sink.open([SPEC], create_schema=True)
    sink.write_batch(events)
    sink.close()
    rows = dict(sqlite3.connect(path).execute('SELECT pk, item FROM "t"').fetchall())
    assert rows["a"] == orjson.dumps(with_keys.new_image).decode()
    # The image lacked `sk`: the row holds the full image, keys included.
    assert orjson.loads(rows["b"]) == {"pk": {"S": "b"}, "v": {"S": "w"}, "sk": {"N": "2"}}


@pytest.mark.parametrize(
    "image",
    [
        '{"pk":{"S":"a"},"sk":{"N":"1"},"pk":{"S":"b"}}',  # the last of two wins when parsed
        '{"pk":{"S":"b"},"sk":{"N":"1"},"pk":{"S":"a"}}',
        '{"pk":{"S":"a"},"sk":{"N":"1"},"m":{"M":{"pk":{"S":"z"}}}}',  # a nested namesake
        '{"m":{"M":{"pk":{"S":"a"},"sk":{"N":"1"}}}}',  # only nested: keys not in the image
        '{"pk":{"S":"a"},"sk":{"N":"1.0"}}',  # the same number, spelt otherwise
        '{"pk":{"S":"a"},"sk":{"N":"2"}}',  # another item's key
        '{"pk":{"M":{}},"sk":{"N":"1"}}',
        '{"pk":{"S":"a"},"sk":{"N":"1"},"pk":{"M":{}}}',  # a pattern keeps the 1st capture
        '{"sk":{"N":"1"},"pk":{"S":"a"}}',  # another order: fine
    ],
)
def test_key_attributes_in_the_image_get_the_parsing_paths_verdict(image: str) -> None:
    event = sample_event()
    text, parse = screens(SPEC)
    got = assert_same_verdict(
        text, parse, RawRecord(TOPIC, 0, 0, event.key_bytes(), with_image_text(event, image))
    )
    if not isinstance(got, Rejected) and type(got[0]) is TextImageEvent:
        # Stored as is only when the text is what the parsed image would say.
        assert orjson.loads(stored_text(got[0]) or b"") == got[0].new_image
        assert got[0].new_image["pk"] == event.keys["pk"]


@settings(max_examples=500, deadline=None)
@given(value=st.integers(-(2**63), 2**63 - 1), tail=st.binary(max_size=3))
def test_the_fast_varint_reads_what_the_general_one_reads(value: int, tail: bytes) -> None:
    data = b"\x00" + _zigzag_varint(value) + tail
    assert _long_fast(data, 1) == _long(data, 1) == (value, len(data) - len(tail))
    cut = data[: len(data) - len(tail) - 1]  # the last byte missing: both refuse
    with pytest.raises(IndexError):
        _long_fast(cut, 1)
