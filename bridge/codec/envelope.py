"""A direct encoder for the change-event envelope: the publish hot path, in a few joins.

fastavro's generic writer costs ~4-6 µs per record here, more than the rest of the
conversion; the envelope is a flat record of strings, enums, longs, nullable unions and a
boolean, which Avro's binary encoding turns into a handful of byte strings. `compile_encoder`
builds this encoder only when the schema is exactly the layout it knows (checked field by
field, including enum symbols); otherwise it returns None and the codec uses fastavro. A
property test holds its output byte-identical to fastavro's for arbitrary events.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from bridge.codec import compiled
from bridge.codec.json_names import repeat_in
from bridge.model.errors import DecodeError
from bridge.model.event import ChangeEvent, Op, Origin

# The layout this encoder writes: (field name, Avro type as in the schema JSON).
_LAYOUT: list[tuple[str, Any]] = [
    ("table", "string"),
    ("op", ("enum", ["INSERT", "MODIFY", "REMOVE", "SNAPSHOT"])),
    ("origin", ("enum", ["STREAM", "SCAN", "EXPORT", "INCREMENTAL_EXPORT"])),
    ("version", "long"),
    ("keys", "string"),
    ("new_image", ["null", "string"]),
    ("old_image", ["null", "string"]),
    ("shard_id", ["null", "string"]),
    ("sequence_number", ["null", "string"]),
    ("event_id", ["null", "string"]),
    ("approximate_creation_time_ms", ["null", "long"]),
    ("ttl_expired", "boolean"),
]


def _zigzag_varint(n: int) -> bytes:
    """A long as Avro writes it: zigzag, then 7 bits a byte, least significant first."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_NULL = b"\x00"  # union branch 0
_SOME = b"\x02"  # union branch 1
_FALSE = b"\x00"
_TRUE = b"\x01"
_length = _zigzag_varint


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return _length(len(data)) + data


def _json(item: dict[str, Any]) -> bytes:
    data = orjson.dumps(item)
    return _length(len(data)) + data


def _json_text(data: bytes) -> bytes:
    return _length(len(data)) + data


def _shape(field_type: Any) -> Any:
    if isinstance(field_type, dict) and field_type.get("type") == "enum":
        return ("enum", list(field_type["symbols"]))
    return field_type


def compile_encoder(
    schema_json: dict[str, Any], use_core: bool = True
) -> Callable[[ChangeEvent], bytes] | None:
    """The fast encoder for `schema_json`, or None when the schema is not the known layout.

    With `use_core` and the compiled core in use (bridge/codec/compiled.py), the core encodes
    and this Python encoder, its reference, takes what the core leaves to it."""
    fields = [(f["name"], _shape(f["type"])) for f in schema_json.get("fields", [])]
    if fields != _LAYOUT:
        return None
    op_index = {name: _zigzag_varint(i) for i, name in enumerate(_LAYOUT[1][1][1])}
    origin_index = {name: _zigzag_varint(i) for i, name in enumerate(_LAYOUT[2][1][1])}

    def encode(event: ChangeEvent) -> bytes:
        new, old = event.new_image, event.old_image
        shard, seq, eid = event.shard_id, event.sequence_number, event.event_id
        created = event.approximate_creation_time_ms
        return b"".join(
            (
                _string(event.table),
                op_index[event.op],
                origin_index[event.origin],
                _zigzag_varint(event.version),
                _json(event.keys),
                _NULL
                if new is None
                else _SOME
                + (
                    _json(new) if event.new_image_json is None else _json_text(event.new_image_json)
                ),
                _NULL
                if old is None
                else _SOME
                + (
                    _json(old) if event.old_image_json is None else _json_text(event.old_image_json)
                ),
                _NULL if shard is None else _SOME + _string(shard),
                _NULL if seq is None else _SOME + _string(seq),
                _NULL if eid is None else _SOME + _string(eid),
                _NULL if created is None else _SOME + _zigzag_varint(created),
                _TRUE if event.ttl_expired else _FALSE,
            )
        )

    if not use_core or compiled.CORE is None:
        return encode
    encode_event = compiled.CORE.encode_event

    def encode_compiled(event: ChangeEvent) -> bytes:
        body: bytes | None = encode_event(event)
        return encode(event) if body is None else body

    return encode_compiled


_OPS = {i: op for i, op in enumerate(Op)}
_ORIGINS = {i: origin for i, origin in enumerate(Origin)}


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at `pos`: (value, next position). Negative lengths fail later checks."""
    b = data[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    n = b & 0x7F
    shift = 7
    pos += 1
    while b & 0x80:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


_VARINT_END = re.compile(rb"[\x80-\xff]{0,7}[\x00-\x7f]").match


def _long_fast(data: bytes, pos: int) -> tuple[int, int]:
    """`_long` for varints of up to 8 bytes (every version until the year 3111) without a
    loop per byte: the bytes as one integer, their 7-bit groups packed in three steps."""
    found = _VARINT_END(data, pos)
    if found is None:
        return _long(data, pos)  # longer, or cut off: the general decoder says which
    end = found.end()
    n = int.from_bytes(data[pos:end], "little")
    n = (n & 0x007F007F007F007F) | ((n & 0x7F007F007F007F00) >> 1)
    n = (n & 0x00003FFF00003FFF) | ((n & 0x3FFF00003FFF0000) >> 2)
    n = (n & 0x000000000FFFFFFF) | ((n & 0x0FFFFFFF00000000) >> 4)
    return (n >> 1) ^ -(n & 1), end


def _span(data: bytes, pos: int) -> tuple[int, int]:
    """A length-prefixed string at `pos`: (start, end) of its bytes, checked against the data."""
    n, start = _long(data, pos)
    end = start + n
    if n < 0 or end > len(data):
        raise EnvelopeError(f"a {n}-byte string runs past the end", start)
    return start, end


# Reads a length-prefixed string at a position: (start, end) of its bytes.
Span = Callable[[bytes, int], tuple[int, int]]


def _branch(data: bytes, pos: int) -> tuple[int, int]:
    """The branch index of a ["null", X] union: 0 or 1."""
    b = data[pos]
    if b > 2 or b == 1:  # zigzag 0 -> 0 (null), zigzag 2 -> 1 (value)
        raise EnvelopeError(f"union branch byte {b} out of range", pos)
    return b >> 1, pos + 1


def _optional(data: bytes, pos: int, span: Span = _span) -> tuple[bytes | None, int]:
    """A ["null", "string"] (or "bytes") union at `pos`: the value's bytes, or None."""
    i, pos = _branch(data, pos)
    if not i:
        return None, pos
    a, pos = span(data, pos)
    return data[a:pos], pos


def _optional_str(data: bytes, pos: int, span: Span = _span) -> tuple[str | None, int]:
    """A ["null", "string"] union at `pos`: the text, or None."""
    raw, pos = _optional(data, pos, span)
    return None if raw is None else raw.decode(), pos


class EnvelopeError(ValueError):
    """The body does not decode as the envelope; `offset` is where decoding stopped."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def compile_decoder(schema_json: dict[str, Any]) -> Callable[[bytes, int], ChangeEvent] | None:
    """The fast decoder for bodies written with `schema_json`, or None if it is not the layout.

    Returns `decode(data, start) -> ChangeEvent`, raising EnvelopeError on a corrupt body.
    """
    fields = [(f["name"], _shape(f["type"])) for f in schema_json.get("fields", [])]
    if fields != _LAYOUT:
        return None
    if [op.value for op in Op] != _LAYOUT[1][1][1] or [o.value for o in Origin] != _LAYOUT[2][1][1]:
        return None  # the Python enums must list the symbols in schema order

    def decode(data: bytes, pos: int) -> ChangeEvent:
        # Straight-line but for the optional fields' helpers: this runs once per consumed
        # record.
        try:
            a, pos = _span(data, pos)
            table = data[a:pos].decode()
            i, pos = _long(data, pos)
            op = _OPS[i]
            i, pos = _long(data, pos)
            origin = _ORIGINS[i]
            version, pos = _long(data, pos)
            a, pos = _span(data, pos)
            keys_text = data[a:pos]
            keys = orjson.loads(keys_text)
            new_image = old_image = created = None
            new_text, pos = _optional(data, pos)
            if new_text is not None:
                new_image = orjson.loads(new_text)
            old_text, pos = _optional(data, pos)
            if old_text is not None:
                old_image = orjson.loads(old_text)
            shard_id, pos = _optional_str(data, pos)
            sequence_number, pos = _optional_str(data, pos)
            event_id, pos = _optional_str(data, pos)
            i, pos = _branch(data, pos)
            if i:
                created, pos = _long(data, pos)
            flag = data[pos]
            pos += 1
        except IndexError as exc:
            raise EnvelopeError("body ends early", len(data)) from exc
        except KeyError as exc:
            raise EnvelopeError(f"enum index {exc.args[0]} out of range", pos) from exc
        except (UnicodeDecodeError, orjson.JSONDecodeError) as exc:
            raise EnvelopeError(f"invalid text or JSON in a field: {exc}", pos) from exc
        if flag > 1:
            raise EnvelopeError(f"boolean byte {flag}", pos)
        if pos != len(data):
            raise EnvelopeError(f"{len(data) - pos} trailing bytes", pos)
        if (
            type(keys) is not dict
            or (new_image is not None and type(new_image) is not dict)
            or (old_image is not None and type(old_image) is not dict)
        ):
            raise EnvelopeError("keys and images must be JSON objects", pos)
        check_names(keys_text, keys, new_text, new_image, old_text, old_image)
        return ChangeEvent(
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
            ttl_expired=flag == 1,
        )

    return decode


def check_names(
    keys_text: bytes | str,
    keys: Any,
    new_text: bytes | str | None,
    new_image: Any,
    old_text: bytes | str | None,
    old_image: Any,
) -> None:
    """DecodeError naming a name written twice in one object of the keys or an image: the
    text is then not one item (bridge/codec/json_names.py), whichever decoder read it."""
    for what, text, parsed in (
        ("keys", keys_text, keys),
        ("new_image", new_text, new_image),
        ("old_image", old_text, old_image),
    ):
        if text is not None:
            repeat = repeat_in(text, parsed)
            if repeat is not None:
                raise DecodeError(f"{what}: {repeat}")


# Op and origin as their one-byte encodings (zigzag of the symbol index).
_OP_BYTE = {2 * i: op for i, op in enumerate(Op)}
_ORIGIN_BYTE = {2 * i: origin for i, origin in enumerate(Origin)}

TextParts = tuple[
    str,  # table
    Op,
    Origin,
    int,  # version
    dict[str, Any],  # keys, parsed
    bytes,  # keys, as text
    bytes | None,  # new image text, not checked
    bytes | None,  # old image text, not checked
    str | None,  # shard_id
    str | None,  # sequence_number
    str | None,  # event_id
    int | None,  # approximate_creation_time_ms
    bool,  # ttl_expired
]
"""A decoded envelope with its images left as text (apply's pass-through, see
`compile_text_decoder`). A tuple: this is made once per consumed record."""


def compile_text_decoder(
    schema_json: dict[str, Any], use_core: bool = True
) -> Callable[[bytes, int], TextParts | None] | None:
    """A decoder that leaves images as text, for bodies written with `schema_json` (None
    if it is not the layout).

    `decode(data, start)` returns the parts, or None whenever it is not certain: a body
    the parsing decoder (`compile_decoder`) would refuse, an encoding it accepts but this
    one does not expect (a long varint where one byte is usual). None means "ask the
    parsing decoder", which decides and names the problem. The images are NOT checked:
    the caller must check their text (bridge/codec/image_text.py) before trusting them; once it
    has, the parsing decoder returns the same event, with the images parsed from that text.

    With `use_core` and the compiled core in use, the core decodes (this Python decoder is
    its reference: where the core answers, it answers the same).
    """
    if compile_decoder(schema_json) is None:
        return None
    if use_core and compiled.CORE is not None:
        return compiled.CORE.decode_text  # type: ignore[no-any-return]
    names: dict[bytes, str] = {}  # table names seen, to skip decoding them per record

    def string(data: bytes, pos: int) -> tuple[int, int]:
        b = data[pos]
        if b < 0x80 and not b & 1:  # one byte, non-negative: a short string
            return pos + 1, pos + 1 + (b >> 1)
        return _span(data, pos)

    def decode(data: bytes, pos: int) -> TextParts | None:
        # Straight-line on purpose, like compile_decoder's: this runs once per record.
        try:
            a, pos = string(data, pos)
            raw = data[a:pos]
            table = names.get(raw)
            if table is None:
                table = raw.decode()
                if len(names) < 1024:  # a foreign producer's names must not grow it forever
                    names[raw] = table
            op = _OP_BYTE.get(data[pos])
            origin = _ORIGIN_BYTE.get(data[pos + 1])
            if op is None or origin is None:
                return None
            version, pos = _long_fast(data, pos + 2)
            a, pos = string(data, pos)
            keys_text = data[a:pos]
            keys = orjson.loads(keys_text)
            if type(keys) is not dict:
                return None
            created = None
            # An image's text is checked against the data's end (_span), not read unchecked.
            new_text, pos = _optional(data, pos)
            old_text, pos = _optional(data, pos)
            shard_id, pos = _optional_str(data, pos, string)
            sequence_number, pos = _optional_str(data, pos, string)
            event_id, pos = _optional_str(data, pos, string)
            b = data[pos]
            if b == 2:
                created, pos = _long_fast(data, pos + 1)
            elif b == 0:
                pos += 1
            else:
                return None
            flag = data[pos]
        except (IndexError, ValueError):  # EnvelopeError, UnicodeDecodeError, JSON errors
            return None
        if flag > 1 or pos + 1 != len(data):
            return None
        return (
            table,
            op,
            origin,
            version,
            keys,
            keys_text,
            new_text,
            old_text,
            shard_id,
            sequence_number,
            event_id,
            created,
            flag == 1,
        )

    return decode
