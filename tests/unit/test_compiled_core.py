"""The compiled per-item core (bridge/codec/_core.c) against its reference, the Python path.

For export lines, GetRecords records, scanned items and any event's envelope: the core's
event equals the Python path's, and its Kafka key and envelope body are the same bytes; a
record the core does not take goes to the Python path, so refusals are the same too. The
contract suite (tests/contracts/test_fast_slow.py) runs the same comparison over what a
foreign producer may write; `make test` runs these tests a second time with the core
switched off (DDB_BRIDGE_PURE_PYTHON=1; tests/contracts/test_python_fallback.py), where they
hold the Python path to itself.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec import compiled
from bridge.codec.avro import EventCodec
from bridge.codec.envelope import compile_encoder
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.model.versioning import StreamVersioner
from connectors.sources.backfill.export_manifest import BadInputError
from connectors.sources.backfill.scan import scanned_event
from connectors.sources.stream.get_records import RAW_BODY, read_page
from connectors.sources.stream.processor import stream_events
from tests import strategies
from tests.support.compiled_core import python_path
from tests.unit.test_export_passthrough import aws_line, read_events

PURE = os.environ.get(compiled.PURE_PYTHON_ENV, "").strip() not in ("", "0")
KEYS = ("pk", "sk")


def wire_bytes(events: list[ChangeEvent], codec: EventCodec) -> list[tuple[bytes, bytes]]:
    return [(e.key_bytes(), codec.encode(e)) for e in events]


def run_both(make: Any) -> tuple[Any, Any]:
    """`make()` with the core (as configured) and on the Python path: results or refusals."""

    def attempt() -> Any:
        try:
            return make()
        except Exception as exc:  # the refusal itself is what is compared
            return (type(exc).__name__, str(exc))

    fast = attempt()
    with python_path():
        slow = attempt()
    return fast, slow


def test_the_core_is_built_where_a_compiler_was() -> None:
    """CI and `make install` build it; only the pure-Python run goes without."""
    if PURE:
        assert compiled.CORE is None
        assert compiled.PURE_PYTHON_ENV in (compiled.WHY_NOT or "")
    else:
        assert compiled.CORE is not None, compiled.WHY_NOT


def test_the_environment_variable_switches_the_core_off() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from bridge.codec import compiled; print(compiled.CORE)"],
        env={**os.environ, compiled.PURE_PYTHON_ENV: "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "None"


def test_without_the_core_one_notice_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(compiled, "CORE", None)
    monkeypatch.setattr(compiled, "WHY_NOT", "it is not built (test)")
    monkeypatch.setattr(compiled, "_noticed", False)
    with caplog.at_level(logging.WARNING, logger="bridge.codec.compiled"):
        read_events([aws_line({"pk": {"S": "a"}, "sk": {"N": "1"}})], True)
        read_events([aws_line({"pk": {"S": "b"}, "sk": {"N": "1"}})], True)
    notices = [r.getMessage() for r in caplog.records if "compiled core" in r.getMessage()]
    assert notices == [
        "compiled core not in use: it is not built (test); the Python implementation runs "
        "instead (same results, about twice the CPU per item)"
    ]


# -- export lines --------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.items(), st.booleans())
def test_export_lines_give_the_python_paths_events_and_bytes(
    item: dict[str, Any], passthrough: bool
) -> None:
    line = aws_line(item)
    fast, slow = run_both(lambda: read_events([line], passthrough))
    if isinstance(slow, tuple):  # refused (e.g. a key number out of range): the same refusal
        assert fast == slow
        return
    assert fast == slow
    with python_path():
        reference = EventCodec()
    assert wire_bytes(fast, EventCodec()) == wire_bytes(slow, reference)
    assert [e.new_image_json for e in fast] == [e.new_image_json for e in slow]


def test_the_core_takes_plain_export_lines() -> None:
    """Not a vacuous comparison: an item as AWS writes it is made by the core."""
    item = {
        "pk": {"S": "a"},
        "sk": {"N": "1"},
        "b": {"B": "AAE="},
        "m": {"M": {"x": {"NULL": True}}},
    }
    (event,) = read_events([aws_line(item)], True)
    assert (event.encoded is not None) is (compiled.CORE is not None)


BAD_LINES = [
    b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1e999"}}}\n',
    b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"B":"A"}}}\n',
    b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"Q":"1"}}}\n',
    b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"S":"1","N":"1"}}}\n',
    b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"S":"1"},"x":{"S":"2"}}}\n',
    b'{"Item":{"pk":{"S":"a"}}}\n',
    b'{"Item":{"pk":{"N":"a"},"sk":{"N":"1"}}}\n',
    b'{"Item":{"pk":{"S":""},"sk":{"N":"1"}}}\n',
    b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"s":{"NS":["1","x"]}}}\n',
    b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"s":{"BOOL":1}}}\n',
    b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"s":{"NULL":false}}}\n',
    b'{"Item":[1]}\n',
    b"not json\n",
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_bad_export_lines_are_refused_as_the_python_path_refuses_them(line: bytes) -> None:
    fast, slow = run_both(lambda: read_events([line], True, ("S", "N")))
    assert fast == slow
    assert fast[0] == BadInputError.__name__ and "line 1: " in fast[1]


# -- stream records ------------------------------------------------------------------------


def _body(records: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"Records": records, "NextShardIterator": "next"})


@st.composite
def stream_records(draw: st.DrawFn) -> dict[str, Any]:
    item = draw(strategies.items())
    name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": draw(
            st.one_of(st.integers(0, 4_102_444_800), st.floats(0, 4_102_444_800))
        ),
        "Keys": {"pk": item["pk"], "sk": item["sk"]},
        "SequenceNumber": draw(st.text(min_size=1, max_size=25)),
        "SizeBytes": 10,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if name != "REMOVE" or draw(st.booleans()):
        ddb["NewImage"] = item
    if name != "INSERT" and draw(st.booleans()):
        ddb["OldImage"] = draw(strategies.items())
    record: dict[str, Any] = {"eventName": name, "eventSource": "aws:dynamodb", "dynamodb": ddb}
    if draw(st.booleans()):
        record["eventID"] = draw(st.text(max_size=32))
    if draw(st.booleans()):
        record["userIdentity"] = {
            "Type": draw(st.sampled_from(["Service", "User"])),
            "PrincipalId": draw(st.sampled_from(["dynamodb.amazonaws.com", "someone"])),
        }
    return record


def _stream(body: bytes, last: int) -> tuple[list[ChangeEvent], int]:
    records, _ = read_page({RAW_BODY: body}, "stream shard-1")
    versioner = StreamVersioner(last)
    events = stream_events(records, "t", "shard-1", versioner, wire=True)
    return events, versioner.last


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(stream_records(), min_size=1, max_size=4), st.integers(0, 2**62))
def test_stream_records_give_the_python_paths_events_versions_and_bytes(
    records: list[dict[str, Any]], last: int
) -> None:
    body = _body(records)
    fast, slow = run_both(lambda: _stream(body, last))
    assert fast == slow
    if isinstance(slow, tuple) and isinstance(slow[0], list):
        with python_path():
            reference = EventCodec()
        assert wire_bytes(fast[0], EventCodec()) == wire_bytes(slow[0], reference)


def test_the_core_takes_plain_stream_records() -> None:
    record = {
        "eventID": "e1",
        "eventName": "MODIFY",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_700_000_000,
            "Keys": {"pk": {"S": "a"}, "sk": {"N": "1"}},
            "NewImage": {"pk": {"S": "a"}, "sk": {"N": "1"}, "b": {"B": "AAE="}},
            "SequenceNumber": "42",
        },
    }
    (event,), last = _stream(_body([record]), 5)
    assert last == event.version == 1_700_000_000_000_000
    assert event.approximate_creation_time_ms == 1_700_000_000_000
    assert (event.encoded is not None) is (compiled.CORE is not None)


BAD_RECORDS = [
    {"eventName": "SOMETHING", "dynamodb": {"Keys": {}}},
    {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "1"}},
    {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": 1}}, "SequenceNumber": "1"}},
    {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": "a"}}, "SequenceNumber": 1}},
    {"eventName": "INSERT", "eventID": 7, "dynamodb": {"Keys": {"pk": {"S": "a"}}}},
    {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"N": "1x"}}, "SequenceNumber": "1"}},
    {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": "a"}}, "NewImage": [1]}},
]


@pytest.mark.parametrize("record", BAD_RECORDS)
def test_bad_stream_records_are_refused_as_the_python_path_refuses_them(
    record: dict[str, Any],
) -> None:
    record["dynamodb"]["ApproximateCreationDateTime"] = 1_700_000_000
    fast, slow = run_both(lambda: _stream(_body([record]), 0))
    assert fast == slow
    assert fast[0] in ("PermanentError", "AttributeTypeError"), fast


# -- scanned items -------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.items(), st.booleans())
def test_scanned_items_give_the_python_paths_events_and_bytes(
    item: dict[str, Any], expire: bool
) -> None:
    raw = attrs.to_boto(item)
    if expire:
        raw["ttl"] = {"N": str(int(datetime.now(UTC).timestamp()) - 60)}
    ttl = ("ttl", datetime.now(UTC).timestamp())

    def scan() -> tuple[ChangeEvent | None, int]:
        return scanned_event(raw, "t", KEYS, 7, "segment 0/1", ttl)

    fast, slow = run_both(scan)
    assert fast == slow
    if isinstance(slow[0], ChangeEvent):
        with python_path():
            reference = EventCodec()
        assert wire_bytes([fast[0]], EventCodec()) == wire_bytes([slow[0]], reference)
    if expire and not isinstance(slow[0], str):
        assert slow[0] is None


def test_the_core_takes_plain_scanned_items() -> None:
    raw = {"pk": {"S": "a"}, "sk": {"N": "1"}, "b": {"B": b"\x00\x01"}, "bs": {"BS": [b"x"]}}
    event, size = scanned_event(raw, "t", KEYS, 7, "segment 0/1")
    assert event is not None and event.new_image is not None
    assert event.new_image["b"] == {"B": base64.b64encode(b"\x00\x01").decode()}
    assert size == len(orjson.dumps(event.new_image))
    assert (event.encoded is not None) is (compiled.CORE is not None)


def test_a_scanned_item_is_written_as_text_its_image_parsed_on_first_read() -> None:
    """The core writes a scanned item's DynamoDB JSON itself (orjson's bytes), without the
    wire-form map; the event parses its image only when something reads it."""
    raw = {"pk": {"S": 'a"\\\n\x01\x7f/é\U0001f600'}, "sk": {"N": "1"}, "b": {"B": b"\xff"}}
    event, size = scanned_event(raw, "t", KEYS, 7, "segment 0/1")
    assert event is not None
    text = orjson.dumps(attrs.from_boto(raw))
    assert size == len(text)
    if compiled.CORE is not None:
        assert type(event) is not ChangeEvent
        assert event.new_image_json == text
    assert event.new_image == attrs.from_boto(raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.builds(lambda t: {"S": t}, st.text(max_size=12)),
            st.builds(lambda b: {"B": b}, st.binary(max_size=9)),
            st.builds(lambda b: {"BS": b}, st.lists(st.binary(max_size=5), max_size=3)),
            st.builds(lambda t: {"SS": t}, st.lists(st.text(max_size=5), max_size=3)),
            st.builds(lambda t: {"M": {t: {"L": [{"S": t}, {"NULL": True}]}}}, st.text(max_size=5)),
            st.builds(lambda v: {"BOOL": v}, st.booleans()),
            st.just({"NULL": False}),
            st.just({"N": "1e5"}),
            st.just({"S": "\ud800"}),
        ),
        max_size=5,
    )
)
def test_any_strings_in_a_scanned_item_give_the_python_paths_event(raw: dict[str, Any]) -> None:
    """Every character orjson escapes or writes raw, lone surrogates, non-string names."""
    raw = {"pk": {"S": "a"}, "sk": {"N": "1"}, **raw}
    fast, slow = run_both(lambda: scanned_event(raw, "t", KEYS, 7, "segment 0/1"))
    assert fast == slow
    if isinstance(slow[0], ChangeEvent):
        assert fast[0].new_image == slow[0].new_image
        with python_path():
            reference = EventCodec()
        assert wire_bytes([fast[0]], EventCodec()) == wire_bytes([slow[0]], reference)


BAD_SCANNED = [
    {"pk": {"S": "a"}},
    {"pk": {"S": "a"}, "sk": {"N": "1"}, "b": {"B": "text, not bytes"}},
    {"pk": {"S": "a"}, "sk": {"N": "1"}, "n": {"N": "12345678901234567890123456789012345678901"}},
    {"pk": {"S": "a"}, "sk": {"N": "1"}, "l": {"L": [{"X": 1}]}},
]


@pytest.mark.parametrize("raw", BAD_SCANNED)
def test_bad_scanned_items_are_refused_as_the_python_path_refuses_them(
    raw: dict[str, Any],
) -> None:
    fast, slow = run_both(lambda: scanned_event(raw, "t", KEYS, 7, "segment 0/1"))
    assert fast == slow
    assert fast[0] == "AttributeTypeError", fast


# -- any event's envelope ------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    strategies.items(),
    st.sampled_from(list(Op)),
    st.sampled_from(list(Origin)),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.text(max_size=40),
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
)
def test_any_events_envelope_is_the_python_encoders(
    item: dict[str, Any],
    op: Op,
    origin: Origin,
    version: int,
    flag: bool,
    text: str,
    created: int | None,
) -> None:
    from bridge.codec.avro import load_schema_text

    schema = orjson.loads(load_schema_text())
    python_encode = compile_encoder(schema, use_core=False)
    core_encode = compile_encoder(schema)
    assert python_encode is not None and core_encode is not None
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
        approximate_creation_time_ms=created,
        ttl_expired=flag,
        new_image_json=orjson.dumps(item) if flag and version % 2 else None,
    )
    assert core_encode(event) == python_encode(event)
    if compiled.CORE is not None:
        assert compiled.CORE.encode_event(event) == python_encode(event)


# -- apply's decode ------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    strategies.items(),
    st.sampled_from(list(Op)),
    st.sampled_from(list(Origin)),
    st.integers(0, 2**62),
    st.booleans(),
    st.text(max_size=20),
    st.data(),
)
def test_apply_reads_an_envelope_as_the_python_text_decoder_does(
    item: dict[str, Any],
    op: Op,
    origin: Origin,
    version: int,
    flag: bool,
    text: str,
    data: st.DataObject,
) -> None:
    from bridge.codec.avro import load_schema_text
    from bridge.codec.envelope import compile_text_decoder

    schema = orjson.loads(load_schema_text())
    python_decode = compile_text_decoder(schema, use_core=False)
    decode = compile_text_decoder(schema)
    assert python_decode is not None and decode is not None
    event = ChangeEvent(
        table=text or "t",
        op=op,
        keys={"pk": item["pk"]},
        version=version,
        origin=origin,
        new_image=item,
        old_image=item if flag else None,
        shard_id=text if flag else None,
        sequence_number=text,
        event_id=None if flag else text,
        approximate_creation_time_ms=version // 1000 if flag else None,
        ttl_expired=flag,
    )
    body = EventCodec().encode(event)[10:]
    assert decode(body, 0) == python_decode(body, 0) is not None
    # Corrupted: a byte changed, or the body cut short. The core may leave more to the
    # parsing decoder (None), never answer otherwise than the Python decoder.
    at = data.draw(st.integers(0, len(body) - 1))
    bad = [
        body[:at] + bytes([data.draw(st.integers(0, 255))]) + body[at + 1 :],
        body[:at],
    ]
    for corrupt in bad:
        got = decode(corrupt, 0)
        assert got is None or got == python_decode(corrupt, 0)
