"""GetRecords bodies read as text by the compiled core (`text_pages.read_text_page`, then
`processor.stream_events`) against the reference: the same body parsed by `read_page` and
versioned, checked and encoded record by record on the Python path.

The same events, keys, envelope bytes, versions, next iterator and refusals, over bodies
written the ways a JSON writer may (whitespace, escapes, non-ASCII, number spellings, member
order). With the core switched off (DDB_BRIDGE_PURE_PYTHON=1, `make test`'s second run)
`read_text_page` is `read_page`, and these tests hold the Python path to itself.
"""

from __future__ import annotations

import json
from random import Random
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec import compiled
from bridge.codec.avro import EventCodec
from bridge.model.errors import PermanentError
from bridge.model.event import ChangeEvent
from bridge.model.versioning import StreamVersioner
from connectors.sources.stream.get_records import RAW_BODY
from connectors.sources.stream.processor import stream_events
from connectors.sources.stream.text_pages import TextRecords, read_text_page
from tests.support.compiled_core import python_path
from tests.unit.test_stream_wire_records import SHARD, TABLE, stream_records

CODEC = EventCodec()
WHERE = f"stream arn shard {SHARD}"


def outcome(body: bytes, last: int = 5) -> Any:
    """What the stream path makes of one body: (events, their keys and envelopes, the next
    iterator, the versioner's last version, the records' positions), or the refusal."""
    try:
        records, next_iterator = read_text_page({RAW_BODY: body}, WHERE)
        versioner = StreamVersioner(last)
        events = stream_events(records, TABLE, SHARD, versioner, wire=True)
        positions = [
            (r["dynamodb"].get("SequenceNumber"), r["dynamodb"]["ApproximateCreationDateTime"])
            for r in records
        ]
    except PermanentError as exc:
        return ("refused", str(exc))
    return (
        events,
        [(e.key_bytes(), CODEC.encode(e)) for e in events],
        [(e.new_image, e.old_image) for e in events],
        next_iterator,
        versioner.last,
        positions,
    )


def both(body: bytes, last: int = 5) -> tuple[Any, Any]:
    fast = outcome(body, last)
    with python_path():
        slow = outcome(body, last)
    return fast, slow


def written(value: Any, rng: Random, space: str, ascii_only: bool, shuffle: bool) -> str:
    """`value` as a JSON writer other than orjson may write it."""
    if isinstance(value, dict):
        members = list(value.items())
        if shuffle:
            rng.shuffle(members)
        sep = f"{space},{space}"
        inner = sep.join(
            f"{json.dumps(k, ensure_ascii=ascii_only)}{space}:{space}"
            f"{written(v, rng, space, ascii_only, shuffle)}"
            for k, v in members
        )
        return "{" + space + inner + space + "}"
    if isinstance(value, list):
        inner = f"{space},{space}".join(written(v, rng, space, ascii_only, shuffle) for v in value)
        return "[" + space + inner + space + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def test_a_compact_page_is_read_as_text_and_gives_the_reference_events() -> None:
    record = {
        "eventID": "e1",
        "eventName": "MODIFY",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_700_000_000,
            "Keys": {"pk": {"S": "a"}, "sk": {"N": "1"}},
            "NewImage": {"pk": {"S": "a"}, "sk": {"N": "1"}, "t": {"S": 'q"\\\n é'}},
            "OldImage": {"pk": {"S": "a"}, "sk": {"N": "1"}, "b": {"B": "AAE="}},
            "SequenceNumber": "100",
        },
    }
    body = orjson.dumps({"Records": [record, record], "NextShardIterator": "iterator-2"})
    fast, slow = both(body)
    assert fast == slow
    events = fast[0]
    assert [e.version for e in events] == [1_700_000_000_000_000, 1_700_000_000_000_001]
    if compiled.CORE is not None:  # read as text: no image parsed until it is read
        records, _ = read_text_page({RAW_BODY: body}, WHERE)
        assert isinstance(records, TextRecords)
        (event, _) = stream_events(records, TABLE, SHARD, StreamVersioner(0), wire=True)
        assert event.new_image_json == orjson.dumps(record["dynamodb"]["NewImage"])
        assert type(event) is not ChangeEvent


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(stream_records(), min_size=0, max_size=4),
    space=st.sampled_from(["", "", " ", "\t", "\n", "\r\n "]),
    ascii_only=st.booleans(),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**16),
    last=st.sampled_from([0, 5, 2_000_000_000_000_000, 2**63 - 2]),
)
def test_any_page_as_any_writer_writes_it_gives_the_reference_outcome(
    records: list[dict[str, Any]],
    space: str,
    ascii_only: bool,
    shuffle: bool,
    seed: int,
    last: int,
) -> None:
    """Whitespace, \\u escapes, member order, float creation times, uncanonical binaries and
    numbers (from the record strategy): byte for byte the reference's events, or its refusal."""
    page = {"Records": records, "NextShardIterator": "iterator-2"}
    body = written(page, Random(seed), space, ascii_only, shuffle).encode()
    fast, slow = both(body, last)
    assert fast == slow


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"Records": null}',
        b'{"Records": [], "NextShardIterator": null}',
        b'{"Records": []}',
        b'{"Records": [], "Records": [1]}',
        b'{"Records": [{"eventName": "MODIFY"}]}',
        b'{"Records": [], "NextShardIterator": "a\\/b"}',
        b'{"Records": [], "x": 1e400}',
        b'{"Records": [], "x": "\\ud800"}',
        b'{"Records": [], "x": "\xff"}',
        b'{"Records": []} x',
    ],
)
def test_an_odd_or_bad_body_gets_the_reference_verdict(body: bytes) -> None:
    fast, slow = both(body)
    assert fast == slow


BASE = {
    "eventID": "e1",
    "eventName": "MODIFY",
    "dynamodb": {
        "ApproximateCreationDateTime": 1_700_000_000,
        "Keys": {"pk": {"S": "a"}},
        "NewImage": {"pk": {"S": "a"}},
        "SequenceNumber": "4242",
    },
}


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    record = orjson.loads(orjson.dumps(BASE))
    at = record
    for name in path[:-1]:
        at = at[name]
    at[path[-1]] = value
    return record


@pytest.mark.parametrize(
    "record",
    [
        _with(("dynamodb", "NewImage", "x"), {"N": "1e999"}),
        _with(("dynamodb", "NewImage", "x"), {"N": "01"}),
        _with(("dynamodb", "NewImage", "x"), {"B": "AB=="}),
        _with(("dynamodb", "NewImage", "x"), {"NULL": False}),
        _with(("dynamodb", "NewImage", "x"), {"SS": []}),
        _with(("dynamodb", "NewImage", "x"), {"L": [{"Q": "1"}]}),
        _with(("dynamodb", "NewImage", "x"), 5),
        _with(("dynamodb", "NewImage"), None),
        _with(("dynamodb", "Keys"), {"pk": {"N": "1.0"}}),
        _with(("dynamodb", "ApproximateCreationDateTime"), -5),
        _with(("dynamodb", "ApproximateCreationDateTime"), 1.5e9),
        _with(("dynamodb", "ApproximateCreationDateTime"), "soon"),
        _with(("dynamodb", "SequenceNumber"), None),
        _with(("eventName",), "REMOVE"),
        _with(("eventName",), "UPSERT"),
        _with(("eventID",), None),
        {
            **_with(("eventName",), "REMOVE"),
            "userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},
        },
        {**_with(("eventName",), "REMOVE"), "userIdentity": {"Type": "Service", "PrincipalId": 1}},
        {**_with(("eventName",), "REMOVE"), "userIdentity": {"Type": "User"}},
        {**_with(("eventName",), "REMOVE"), "userIdentity": None},
    ],
    ids=lambda r: orjson.dumps(r).decode()[:90],
)
def test_each_odd_or_bad_record_gets_the_reference_verdict(record: dict[str, Any]) -> None:
    body = orjson.dumps({"Records": [BASE, record], "NextShardIterator": "it"})
    fast, slow = both(body)
    assert fast == slow


def test_a_name_written_twice_gets_the_reference_verdict() -> None:
    body = (
        b'{"Records":[{"eventID":"e","eventName":"MODIFY","dynamodb":{'
        b'"ApproximateCreationDateTime":1700000000,"Keys":{"pk":{"S":"a"}},'
        b'"NewImage":{"pk":{"S":"a"},"q":{"N":"1"},"q":{"S":"x"}},"SequenceNumber":"1"}}]}'
    )
    fast, slow = both(body)
    assert fast == slow
