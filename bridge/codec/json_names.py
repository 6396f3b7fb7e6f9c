"""Names written twice in one JSON object: found on the text, refused on every path.

JSON lets an object repeat a name; DynamoDB never writes one twice. Readers of such text
disagree on what it holds: orjson, Python's json and PostgreSQL's jsonb keep the last value,
SQLite stores the text and its `json_extract` reads the first. So an image or key with a
repeated name is not one item, and every path refuses it, naming the name (export lines
go to the DLQ or stop the back-fill; apply dead-letters the record as undecodable).

Parsing loses the repeat, so it is found by counting the names the text writes against
the members the parsed value holds: they differ exactly when a name repeats, and only then
is the text parsed again, by `repeated_name`, to name it. Counting names exactly on the
text takes a regular expression over every string (`member_count`), several times the cost
of parsing; the hot paths first try a proof that costs a few byte scans: the text is what
orjson writes for the parsed value, or `names_at_most` (an upper bound) already equals the
members held.
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


def names_at_most(text: bytes | str) -> int:
    """An upper bound of the names `text` writes: the quotes followed by a colon or by a
    whitespace byte (a name's closing quote is followed by one of them). Exact for compact
    JSON whose strings neither start with `:` nor hold an escaped quote before `:`."""
    if isinstance(text, str):
        return sum(text.count(p) for p in _AFTER_QUOTE_STR)
    return sum(text.count(p) for p in _AFTER_QUOTE)


_AFTER_QUOTE = (b'":', b'" ', b'"\t', b'"\n', b'"\r')
_AFTER_QUOTE_STR = tuple(p.decode() for p in _AFTER_QUOTE)


def members_of(value: Any) -> int:
    """How many object members a parsed JSON value holds (each name once, as parsed)."""
    count = 0
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        v = pop()
        if type(v) is dict:
            count += len(v)
            push(v.values())
        elif type(v) is list:
            push(v)
    return count


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
        written = orjson.dumps(parsed)
    except orjson.JSONEncodeError:
        written = None  # nested deeper than orjson writes (255): count the slow way
    if written is not None:
        if text == written or (type(text) is str and text.encode() == written):
            return None  # the bridge's own producers write what orjson writes
        held = members_of(parsed)
        if names_at_most(text) == held or member_count(text) == held:
            return None
    try:
        name = repeated_name(text)
    except RecursionError:
        return None  # nested far beyond DynamoDB's 32 levels: attrs.validate refuses it
    return None if name is None else message(name)
