"""How `tail` renders events and matches `--key`, without a broker."""

from __future__ import annotations

import json

import pytest

from bridge.consumer import Consumed
from bridge.consumer.text import iso_ms, json_line, key_text, plain_json, text_line
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.model.key_filter import KeyFilter
from tests.samples import sample_item


def consumed(event: ChangeEvent, timestamp_ms: int | None = 1_000) -> Consumed:
    return Consumed(event, "ddb.t.changes", 0, 5, timestamp_ms)


def test_plain_json_keeps_numbers_exact_and_parses_back() -> None:
    item = sample_item(3)
    parsed = json.loads(plain_json(item), parse_float=str, parse_int=str)
    assert parsed["balance"] == "12345678901234567890.123456789012345678"
    assert parsed["small"] == "-3.5E-3"
    assert parsed["tags"] == ["a", "t3"]
    assert parsed["nothing"] is None and parsed["active"] is False
    assert json.loads(plain_json({"n": {"N": "+5"}, "m": {"N": ".5"}})) == {"n": 5, "m": 0.5}


def test_the_time_is_the_change_time_else_the_records_timestamp() -> None:
    keys = {"pk": {"S": "a"}}
    streamed = ChangeEvent("t", Op.REMOVE, keys, 7, Origin.STREAM, approximate_creation_time_ms=2)
    scanned = ChangeEvent("t", Op.SNAPSHOT, keys, 8, Origin.SCAN, new_image=keys)
    assert text_line(consumed(streamed)) == "1970-01-01T00:00:00.002Z REMOVE STREAM pk=a v=7 -"
    assert text_line(consumed(scanned)).startswith("1970-01-01T00:00:01.000Z SNAPSHOT SCAN")
    assert iso_ms(None) == "-"
    assert text_line(consumed(scanned, None), with_table=True).startswith("- t SNAPSHOT")


def test_json_line_carries_dynamodb_json_images_and_where_it_was_read() -> None:
    event = ChangeEvent(
        "t", Op.MODIFY, {"pk": {"B": "AAE="}}, 9, Origin.STREAM, new_image=sample_item(1)
    )
    line = json.loads(json_line(consumed(event)))
    assert line["keys"] == {"pk": {"B": "AAE="}}
    assert line["new_image"] == sample_item(1)
    assert line["old_image"] is None
    assert (line["topic"], line["partition"], line["offset"]) == ("ddb.t.changes", 0, 5)
    assert key_text(event.keys) == "pk=AAE="


@pytest.mark.parametrize(
    ("spec", "keys", "expected"),
    [
        ("pk=a", {"pk": {"S": "a"}, "sk": {"N": "1"}}, True),
        ("pk=a,sk=1.0", {"pk": {"S": "a"}, "sk": {"N": "1"}}, True),
        ("pk=a,sk=2", {"pk": {"S": "a"}, "sk": {"N": "1"}}, False),
        ("pk=b", {"pk": {"S": "a"}}, False),
        ("sk=x", {"pk": {"S": "a"}, "sk": {"N": "1"}}, False),
        ("other=a", {"pk": {"S": "a"}}, False),
        ('{"pk": {"S": "a"}}', {"pk": {"S": "a"}}, True),
        ('{"pk": {"N": "1"}}', {"pk": {"S": "1"}}, False),
        ('{"pk": {"N": "1.00"}}', {"pk": {"N": "1"}}, True),
    ],
)
def test_key_filter(spec: str, keys: dict[str, dict[str, str]], expected: bool) -> None:
    assert KeyFilter.parse(spec).matches(keys) is expected


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("pk", "not name=value"),
        ("=a", "not name=value"),
        ('{"pk": "a"}', "pk"),
        ('{"pk": {"SS": ["a"]}}', "keys are S, N or B"),
        ("{}", "names no key attribute"),
        ("{pk", "not JSON"),
    ],
)
def test_bad_key_filters_say_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        KeyFilter.parse(spec)
