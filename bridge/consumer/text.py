"""Change events as text, one line each: for people (`text_line`) and for scripts
(`json_line`). `ddb-bridge tail` prints these; your own consumers may too.

The readable line is `TIME OP ORIGIN KEY v=VERSION IMAGE`: the change time in UTC (the
stream's ApproximateCreationDateTime, else the record's Kafka timestamp), the key as
`name=value,…`, and the new image as compact plain JSON (`-` for a removal, followed by
`ttl-expired` when DynamoDB's TTL removed the item). Plain JSON loses the DynamoDB types
(a string set becomes a list, binary its base64 text); the JSON line keeps them: its images
are DynamoDB JSON, exactly as the event carries them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from bridge.codec.avro import event_to_record
from bridge.consumer import Consumed
from bridge.model.attrs import Item, normalize_number

# A number text that is also a JSON number; any other (`+5`, `.5`, `5.`) is normalized.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?").fullmatch


def iso_ms(ms: int | None) -> str:
    """`2026-12-01T10:00:01.000Z`, or `-` when unknown."""
    if ms is None:
        return "-"
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _number(text: str) -> str:
    return text if _JSON_NUMBER(text) else normalize_number(text)


def _plain(av: dict[str, Any]) -> str:
    ((kind, value),) = av.items()
    if kind in ("S", "B"):
        return json.dumps(value, ensure_ascii=False)
    if kind == "N":
        return _number(value)
    if kind == "BOOL":
        return "true" if value else "false"
    if kind == "NULL":
        return "null"
    if kind == "SS" or kind == "BS":
        return "[" + ",".join(json.dumps(v, ensure_ascii=False) for v in value) + "]"
    if kind == "NS":
        return "[" + ",".join(_number(v) for v in value) + "]"
    if kind == "L":
        return "[" + ",".join(_plain(v) for v in value) + "]"
    if kind == "M":
        return plain_json(value)
    raise ValueError(f"not a DynamoDB attribute value: {av!r}")


def plain_json(item: Item) -> str:
    """An item as compact plain JSON: `{"pk":"a","n":1}` (numbers exact, never floats)."""
    return (
        "{"
        + ",".join(
            f"{json.dumps(name, ensure_ascii=False)}:{_plain(av)}" for name, av in item.items()
        )
        + "}"
    )


def key_text(keys: Item) -> str:
    """`pk=a,sk=2`: key attributes are S, N or B (base64)."""
    return ",".join(f"{name}={next(iter(av.values()))}" for name, av in keys.items())


def text_line(consumed: Consumed, *, with_table: bool = False) -> str:
    event = consumed.event
    image = "-" if event.new_image is None else plain_json(event.new_image)
    if event.ttl_expired:
        image += " ttl-expired"
    parts = [iso_ms(consumed.change_time_ms), event.op.value, event.origin.value]
    if with_table:
        parts.insert(1, event.table)
    return " ".join([*parts, key_text(event.keys), f"v={event.version}", image])


def json_line(consumed: Consumed) -> str:
    """One JSON object: where it was read, the change time, and every field of the event
    (images as DynamoDB JSON objects)."""
    record = event_to_record(consumed.event)
    for field in ("keys", "new_image", "old_image"):
        if record[field] is not None:
            record[field] = orjson.Fragment(record[field])  # already DynamoDB JSON text
    head = {
        "time": iso_ms(consumed.change_time_ms),
        "topic": consumed.topic,
        "partition": consumed.partition,
        "offset": consumed.offset,
    }
    return orjson.dumps({**head, **record}).decode("utf-8")
