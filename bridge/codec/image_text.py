"""Checking DynamoDB JSON text without parsing it: apply's pass-through of images.

An event's images travel as DynamoDB JSON text in the envelope, and the SQL targets store
them as that text. Parsing an image (orjson) and walking it (`attrs.validate`) only to
check it and write the same text back cost apply more than everything else per record.
This module answers, on the text alone and in compiled regular expressions:

- `image_ok(text)`: is this certainly an item `attrs.validate` accepts after `orjson.loads`,
  written with no name twice in one object (bridge/codec/json_names.py: such text is refused)?
  It recognizes a strict subset: compact JSON (no whitespace, as orjson and the bridge's
  encoders write it), attribute names without escapes, numbers in plain notation of at most
  38 characters, base64 without escapes, nesting up to `DEPTH` levels, valid UTF-8, and
  no name repeated (`names_unique`).
  Anything else is not refused here: the caller then parses and validates as before, which
  decides and names the problem. So the accepted set is never larger than `validate`'s.
- `KeyShape(spec)`: for one table's key schema, whether a Kafka key is already the
  canonical key (`attrs.canonical_key`) byte for byte, and each key attribute's value as
  it appears at the top level of an `image_ok` image.

Why names without escapes: in such text the bytes `"name":` occur exactly where an
attribute named `name` begins (a quote inside a string value is always escaped), so
counting them finds duplicates and nested uses, and two spellings of one name cannot
hide one attribute behind another.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import orjson

from bridge.codec import compiled
from bridge.codec.json_names import member_count, members_of, names_at_most
from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.ports.sink import TableSpec

DEPTH = 3  # M/L levels recognized; deeper images take the parsing path
# (The pattern doubles in size with every level: 3 keeps it ~20 KB, compiled in ~0.1 s.)

# One JSON string: unescaped runs, simple escapes, \u escapes outside the surrogate range
# (a surrogate pair is valid but rare; orjson refuses a lone one, so neither is taken here).
_STR = (
    rb'"(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]'
    rb"|\\u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))*+\""
)
_NAME = rb'"[^"\\\x00-\x1f]*+"'
# `attrs.is_short_number`'s plain form, at most 38 characters: valid by its form alone.
_NUM = rb'"(?=[-.0-9]{1,38}")-?(?:[0-9]++\.?+[0-9]*+|\.[0-9]++)"'
# Exactly what base64.b64decode(validate=True) decodes, without escapes.
_B64 = rb'"(?:[A-Za-z0-9+/]{4})*+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?+"'


def _list(element: bytes, close: bytes = rb"\]") -> bytes:
    """Elements separated by commas up to `close`, with `element` written once: after each
    element comes a comma that does not end the list, or the end itself."""
    return rb"(?:" + element + rb"(?:,(?!" + close + rb")|(?=" + close + rb")))*+" + close


_SCALAR = (
    rb'(?>\{"S":' + _STR + rb"\}"
    rb'|\{"N":' + _NUM + rb"\}"
    rb'|\{"BOOL":(?:true|false)\}'
    rb'|\{"NULL":true\}'
    rb'|\{"B":' + _B64 + rb"\}"
    rb'|\{"SS":\[' + _list(_STR) + rb"\}"
    rb'|\{"NS":\[' + _list(_NUM) + rb"\}"
    rb'|\{"BS":\[' + _list(_B64) + rb"\})"
)


def _nested(inner: bytes) -> bytes:
    return (
        rb"(?>" + _SCALAR + rb'|\{"M":\{' + _list(_NAME + b":" + inner, rb"\}") + rb"\}"
        rb'|\{"L":\[' + _list(inner) + rb"\})"
    )


def _value() -> bytes:
    value = _SCALAR
    for _ in range(DEPTH):
        value = _nested(value)
    return value


def _compile_image(key_names: tuple[str, ...] = ()) -> Callable[[bytes], re.Match[bytes] | None]:
    """The image pattern; with `key_names`, group i captures the value of top-level
    attribute key_names[i - 1] when it is a scalar (a group in a repetition keeps its last
    capture: callers make sure each name occurs once)."""
    member = _NAME + b":" + _value()
    if key_names:
        member = (
            b"(?:"
            + b"|".join(re.escape(orjson.dumps(n)) + b":(" + _SCALAR + b")" for n in key_names)
            + b"|"
            + member
            + b")"
        )
    return re.compile(rb"\{" + _list(member, rb"\}")).fullmatch


def names_unique(text: bytes) -> bool:
    """For text the image pattern accepts: True when it writes no attribute name twice in
    one object (False: the parsing path refuses it, naming the name).

    Quickest proof: the text is what orjson writes for its own parse, which holds each name
    once (true of every image the bridge's producers write; finding the names on the text
    costs more, a regular expression making an object per name). Text spelt otherwise
    (`\\/`, `\\u00e9`) has its names counted (bridge/codec/json_names.py)."""
    try:
        parsed = _loads(text)
    except orjson.JSONDecodeError:
        return False
    if _dumps(parsed) == text:
        return True
    held = members_of(parsed)
    return names_at_most(text) == held or member_count(text) == held


_loads, _dumps = orjson.loads, orjson.dumps


# Compiled on first use (~0.1-0.3 s): most commands never check an image.
_image: Callable[[bytes], re.Match[bytes] | None] | None = None


def image_ok(text: bytes) -> bool:
    """True only if `attrs.validate(orjson.loads(text))` would accept it and the text names
    no attribute twice in one object (False: ask them)."""
    global _image
    if _image is None:
        _image = _compile_image()
    if not text.isascii():
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return _image(text) is not None and names_unique(text)


# Canonical key values (`attrs.canonical_key`): S as orjson writes a string with nothing to
# escape, N as `attrs.normalize_number` leaves it (at most 38 characters, not -0), B as
# non-empty, unescaped base64.
_KEY_VALUE = {
    "S": rb'"[^"\\\x00-\x1f]++"',
    "N": rb'"(?=[-.0-9]{1,38}")(?!-0")-?(?:0|[1-9][0-9]*+)(?:\.[0-9]*[1-9])?+"',
    "B": rb'"(?=[A-Za-z0-9+/])(?:[A-Za-z0-9+/]{4})*+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?+"',
}


class KeyShape:
    """One table's key schema, for checking keys and images on their text."""

    def __init__(self, spec: TableSpec) -> None:
        types = {spec.hash_key: spec.hash_type}
        if spec.range_key is not None:
            types[spec.range_key] = spec.range_type or "S"
        self.names = tuple(types)
        ordered = sorted(types)  # canonical_key sorts attribute names
        pattern = (
            b"\\{"
            + b",".join(
                re.escape(orjson.dumps(name))
                + b":(\\{"
                + re.escape(orjson.dumps(types[name]))
                + b":"
                + _KEY_VALUE[types[name]]
                + b"\\})"
                for name in ordered
            )
            + b"\\}"
        )
        self._canonical: Callable[[bytes], re.Match[bytes] | None] | None = re.compile(
            pattern
        ).fullmatch
        # The pattern must say what canonical_key writes; if a name needs escaping or sorts
        # differently there, the shape is not used (every key then takes the parsing path).
        sample = {
            name: {t: "1" if t == "N" else "AA==" if t == "B" else "a"} for name, t in types.items()
        }
        if self._canonical(attrs.canonical_key(sample)) is None:
            self._canonical = None
        # The same schema for apply's compiled screen (bridge/codec/_apply_core.c): each key
        # attribute's name and type tag as orjson writes them, and its type, in canonical
        # order; None where the pattern above is not used.
        self.compiled: tuple[tuple[bytes, bytes, str], ...] | None = (
            None
            if self._canonical is None
            else tuple((orjson.dumps(n), orjson.dumps(types[n]), types[n]) for n in ordered)
        )
        self._groups = [ordered.index(name) + 1 for name in self.names]
        self._needles = [orjson.dumps(name) + b":" for name in self.names]
        self._image: Callable[[bytes], re.Match[bytes] | None] | None = None  # on first use

    def canonical_values(self, kafka_key: bytes) -> tuple[bytes, ...] | None:
        """If `kafka_key` is `attrs.canonical_key` of a well-formed key of this schema (once
        it is also known to parse: valid UTF-8), each key attribute's value text in it, in
        `names` order (as orjson writes the value: `{"S":"a"}`); else None."""
        if self._canonical is None:
            return None
        found = self._canonical(kafka_key)
        if found is None:
            return None
        return tuple(found.group(i) for i in self._groups)

    def image_keys(self, image: bytes) -> tuple[bytes, ...] | None:
        """If `image` is `image_ok` and each key attribute occurs in it exactly once, at the
        top level, with a scalar value: those values' texts, in `names` order; else None.

        In such text the bytes `"name":` occur exactly where an attribute `name` begins (a
        quote inside a string is escaped, names have no escapes), so one occurrence that
        the pattern captured at the top level is the attribute the parsed image holds."""
        for needle in self._needles:
            if image.count(needle) != 1:
                return None
        if self._image is None:
            self._image = _compile_image(self.names)
        if not image.isascii():
            try:
                image.decode("utf-8")
            except UnicodeDecodeError:
                return None
        found = self._image(image)
        if found is None or not names_unique(image):
            return None
        values = found.groups()
        return None if None in values else values


PENDING: Any = object()  # an image slot whose text is checked but not yet parsed
_NEW_SLOT = ChangeEvent.__dict__["new_image"]
_OLD_SLOT = ChangeEvent.__dict__["old_image"]
_COMPARED = tuple(f.name for f in fields(ChangeEvent) if f.compare)


def _slot_property(slot: Any, text_field: str) -> Any:
    def get(self: ChangeEvent) -> Item | None:
        value = slot.__get__(self, ChangeEvent)
        if value is PENDING:
            # Checked by image_ok when the event was made: cannot fail.
            value = orjson.loads(getattr(self, text_field))
            slot.__set__(self, value)
        return value  # type: ignore[no-any-return]

    def put(self: ChangeEvent, value: Item | None) -> None:
        slot.__set__(self, value)

    return property(get, put)


class TextImageEvent(ChangeEvent):
    """A ChangeEvent whose images were read as text: `new_image_json` / `old_image_json`
    hold each present image's DynamoDB JSON, checked on its text (`image_ok`, or for the
    new image `KeyShape.image_keys`, the same grammar), and `new_image` /
    `old_image` parse it on first read. Reading an image therefore always gives the same
    map the parsing decoder gives (and the event compares equal to that decoder's); a sink
    that stores text never pays for the parse.

    Made by apply's screening (bridge/apply/screening.py) only once every check passed,
    including that the new image holds each key attribute, spelt as in `keys`: so a SQL
    sink may store `new_image_json` as the whole item (`stored_text`)."""

    __slots__ = ()

    new_image = _slot_property(_NEW_SLOT, "new_image_json")
    old_image = _slot_property(_OLD_SLOT, "old_image_json")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChangeEvent):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _COMPARED)

    __hash__ = ChangeEvent.__hash__


def stored_text(event: ChangeEvent) -> bytes | None:
    """The text a SQL sink may store verbatim as the item of a non-delete `event`: its
    new image's checked text (a `TextImageEvent`), else None (serialize the image)."""
    if type(event) is TextImageEvent:
        return event.new_image_json
    return None


def text_image_event(
    table: str,
    op: Op,
    keys: Item,
    version: int,
    origin: Origin,
    new_text: bytes | None,
    old_text: bytes | None,
    shard_id: str | None,
    sequence_number: str | None,
    event_id: str | None,
    created: int | None,
    ttl_expired: bool,
) -> TextImageEvent:
    """A TextImageEvent whose present images are `new_text` / `old_text`, already checked
    on their text (by screening, which checks the rest: see TextImageEvent)."""
    new_image = None if new_text is None else PENDING
    old_image = None if old_text is None else PENDING
    if compiled.CORE is not None:  # the constructor without keyword handling, once per record
        return compiled.CORE.build_event(  # type: ignore[no-any-return]
            TextImageEvent,
            table,
            op,
            keys,
            version,
            origin,
            new_image,
            old_image,
            shard_id,
            sequence_number,
            event_id,
            created,
            ttl_expired,
            new_text,
            old_text,
            None,
        )
    return TextImageEvent(
        table=table,
        op=op,
        keys=keys,
        version=version,
        origin=origin,
        new_image=new_image,
        old_image=old_image,
        shard_id=shard_id,
        sequence_number=sequence_number,
        event_id=event_id,
        approximate_creation_time_ms=created,
        ttl_expired=ttl_expired,
        new_image_json=new_text,
        old_image_json=old_text,
    )
