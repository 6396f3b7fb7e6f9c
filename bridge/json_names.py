"""Names written twice in one JSON object: found on the text, refused on every path.

JSON lets an object repeat a name; DynamoDB never writes one twice. Readers of such text
disagree on what it holds: orjson, Python's json and PostgreSQL's jsonb keep the last value,
SQLite stores the text and its `json_extract` reads the first. So an image or key with a
repeated name is not one item, and every path refuses it, naming the name (export lines
go to the DLQ or stop the back-fill; apply dead-letters the record as undecodable).

Parsing loses the repeat, so it is found by counting: `member_count` counts the names a
JSON text writes, on the text; the parsed value written back by orjson holds each once. The
two counts differ exactly when a name repeats, and only then is the text parsed again, by
`repeated_name`, to name it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Every JSON string, and the colon after it when it is an object member's name. Matching
# every string from its opening quote keeps the scan in step with the text: a pattern for
# names alone could start at a string's closing quote and run to the next one (in
# `{"":"",":x":1}`, from the end of the value `""` to the name `":x"`).
_STRING_BYTES = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"([ \t\n\r]*+:)?', re.S).findall
_STRING_STR = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"([ \t\n\r]*+:)?', re.S).findall


def member_count(text: bytes | str) -> int:
    """How many object members (names) the valid JSON `text` writes, repeats included."""
    if isinstance(text, str):
        names: list[str] = _STRING_STR(text)
        return len(names) - names.count("")
    found: list[bytes] = _STRING_BYTES(text)
    return len(found) - found.count(b"")


class _Repeated(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _no_repeats(members: list[tuple[str, Any]]) -> None:
    seen = set()
    for name, _ in members:
        if name in seen:
            raise _Repeated(name)
        seen.add(name)


def repeated_name(text: bytes | str) -> str | None:
    """The first name the valid JSON `text` writes twice in one object (innermost objects
    first), or None."""
    try:
        json.loads(text, object_pairs_hook=_no_repeats)
    except _Repeated as found:
        return found.name
    return None


def message(name: str) -> str:
    return (
        f"attribute name {name!r} appears twice in one object (DynamoDB writes each name "
        "once; readers disagree on which value it holds)"
    )


def repeat_in(text: bytes | str, parsed: Any) -> str | None:
    """For `parsed = orjson.loads(text)`: the `message` naming a name that `text` writes
    twice in one object, or None when it writes none twice."""
    try:
        if member_count(text) == member_count(orjson.dumps(parsed)):
            return None
    except orjson.JSONEncodeError:
        pass  # nested deeper than orjson writes (255): name the repeat the slow way
    try:
        name = repeated_name(text)
    except RecursionError:
        return None  # nested far beyond DynamoDB's 32 levels: attrs.validate refuses it
    return None if name is None else message(name)
