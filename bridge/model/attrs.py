"""The DynamoDB type codec: attribute maps kept exactly, in one internal form.

Internally an item is a dict of DynamoDB JSON attribute values in *wire form*: the same JSON
AWS writes in its exports and that `keys`/`new_image`/`old_image` carry on the wire —
numbers as decimal strings (never floats), binary as base64 text. boto3's low-level clients
return binary as `bytes`; `from_boto` converts once at the source, `to_boto` converts back
for sinks that speak the DynamoDB API.

Numbers are handled exactly over DynamoDB's whole range (38 significant digits, magnitudes
1E-130 .. 9.99…E+125): parsed, compared and canonicalized without the thread's 28-digit
decimal context, and a text DynamoDB would refuse is an AttributeTypeError naming where.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Subnormal,
    Underflow,
)
from typing import Any

import orjson

from bridge.model.errors import AttributeTypeError

Item = dict[str, Any]
"""An attribute map in wire form: {"name": {"S": "x"}, "n": {"N": "1"}, "b": {"B": "AAE="}}."""

SCALAR_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL"})
SET_TYPES = frozenset({"SS", "NS", "BS"})
ALL_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"})


def _b64(value: Any, where: str) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise AttributeTypeError(f"{where}: binary value must be bytes, got {type(value).__name__}")


def _unb64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise AttributeTypeError(f"{where}: binary value must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttributeTypeError(f"{where}: invalid base64 in binary value") from exc


def _one_type(av: Any, where: str) -> tuple[str, Any]:
    if not isinstance(av, dict) or len(av) != 1:
        raise AttributeTypeError(f"{where}: an attribute value must be an object with one type tag")
    ((tag, value),) = av.items()
    return tag, value


def from_boto(item: dict[str, Any], where: str = "item") -> Item:
    """Convert a boto3 low-level attribute map (binary as bytes) to wire form, validating it."""
    if type(item) is not dict:
        raise AttributeTypeError(f"{where}: an attribute map must be an object")
    return _map_from_boto(item, where)


def _map_from_boto(item: dict[str, Any], where: str) -> Item:
    return {name: _av_from_boto(av, where, name) for name, av in item.items()}


def _at(parent: str, name: str | int) -> str:
    """Where a value sits, for an error message: built only when there is an error."""
    return f"{parent}[{name}]" if type(name) is int else f"{parent}.{name}"


def _check_av(av: Any, parent: str, name: str | int) -> tuple[str, Any]:
    """The checks `from_boto` and `from_wire` share, with their messages: one type tag, the
    value's type, numbers that parse. A binary value is left to each (bytes in boto3's form,
    base64 text in the wire form); the path for an error message is built only on an error.
    (The compiled core, bridge/codec/_core.c, takes the hot path; this is its reference.)"""
    if type(av) is not dict or len(av) != 1:
        raise AttributeTypeError(
            f"{_at(parent, name)}: an attribute value must be an object with one type tag"
        )
    ((tag, value),) = av.items()
    if tag == "S":
        if type(value) is not str:
            raise AttributeTypeError(f"{_at(parent, name)}: S value must be a string")
    elif tag == "N":
        if type(value) is not str:
            raise AttributeTypeError(f"{_at(parent, name)}: N value must be a string")
        if not is_short_number(value):
            parse_number(value, _at(parent, name))
    elif tag == "M":
        if type(value) is not dict:
            raise AttributeTypeError(f"{_at(parent, name)}: M value must be an object")
    elif tag == "BOOL":
        if type(value) is not bool:
            raise AttributeTypeError(f"{_at(parent, name)}: BOOL value must be true or false")
    elif tag == "L":
        if type(value) is not list:
            raise AttributeTypeError(f"{_at(parent, name)}: L value must be a list")
    elif tag == "NULL":
        if value is not True:
            raise AttributeTypeError(f"{_at(parent, name)}: NULL value must be true")
    elif tag == "SS" or tag == "NS":
        if type(value) is not list or not all(type(v) is str for v in value):
            raise AttributeTypeError(f"{_at(parent, name)}: {tag} value must be a list of strings")
        if tag == "NS":
            for v in value:
                check_number(v, _at(parent, name))
    elif tag == "BS":
        if type(value) is not list:
            raise AttributeTypeError(f"{_at(parent, name)}: BS value must be a list")
    elif tag != "B":
        raise AttributeTypeError(f"{_at(parent, name)}: unknown DynamoDB attribute type {tag!r}")
    return tag, value


def _av_from_boto(av: Any, parent: str, name: str | int) -> Any:
    tag, value = _check_av(av, parent, name)
    if tag == "M":
        return {"M": _map_from_boto(value, _at(parent, name))}
    if tag == "L":
        here = _at(parent, name)
        return {"L": [_av_from_boto(v, here, i) for i, v in enumerate(value)]}
    if tag == "B":
        return {"B": _b64(value, _at(parent, name))}
    if tag == "BS":
        return {"BS": [_b64(v, _at(parent, name)) for v in value]}
    return av


def from_wire(item: Any, where: str = "item") -> Item:
    """Validate a freshly parsed wire-form attribute map as `from_boto` validates boto3's form,
    and return the map `from_boto` would have made of the same record: binary values in
    canonical base64 (rewritten in place when not; the map must be the caller's own).

    For records read from DynamoDB JSON text (a raw GetRecords response): accepts and
    refuses what `from_boto` does, and refuses base64 that is not valid (which boto3's
    lenient decoder would have read by dropping characters).
    """
    if type(item) is not dict:
        raise AttributeTypeError(f"{where}: an attribute map must be an object")
    _map_from_wire(item, where)
    return item


def _map_from_wire(item: dict[str, Any], where: str) -> None:
    for name, av in item.items():
        _av_from_wire(av, where, name)


# Base64 exactly as b64encode writes it: the alphabet, `=` padding only to a multiple of 4,
# and zero bits in the last character's unused low bits (4 before `==`, 2 before `=`). Such
# a text decodes and re-encodes to itself, so one match spares the round trip.
_CANONICAL_B64 = re.compile(
    r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?"
).fullmatch


def _canonical_b64(value: Any, parent: str, name: str | int) -> str:
    if type(value) is not str:
        raise AttributeTypeError(f"{_at(parent, name)}: binary value must be base64 text")
    if _CANONICAL_B64(value) is not None:
        return value
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttributeTypeError(f"{_at(parent, name)}: invalid base64 in binary value") from exc
    canonical = base64.b64encode(data).decode("ascii")
    return value if canonical == value else canonical


def _av_from_wire(av: Any, parent: str, name: str | int) -> None:
    # The same checks and messages as _av_from_boto (_check_av), in place.
    tag, value = _check_av(av, parent, name)
    if tag == "M":
        _map_from_wire(value, _at(parent, name))
    elif tag == "L":
        here = _at(parent, name)
        for i, v in enumerate(value):
            _av_from_wire(v, here, i)
    elif tag == "B":
        canonical = _canonical_b64(value, parent, name)
        if canonical is not value:
            av["B"] = canonical
    elif tag == "BS":
        av["BS"] = [_canonical_b64(v, parent, name) for v in value]


def validate(item: Any, where: str = "item") -> Item:
    """Check that a wire-form attribute map (e.g. parsed from an export line) is well formed."""
    if not isinstance(item, dict):
        raise AttributeTypeError(f"{where}: an item must be an object")
    for name, av in item.items():
        _validate_av(av, f"{where}.{name}")
    return item


# DynamoDB nests documents at most 32 levels deep. Deeper input can only come from another
# producer; refusing it (with a margin) keeps it from JSON encoders' recursion limits
# (orjson: 255) in the sinks, where it would fail outside any per-item error handling.
MAX_NESTING = 64


def _validate_av(av: Any, where: str, depth: int = 1) -> None:
    # Hot path: apply screens every consumed record's image with this. Exact type checks
    # (JSON parsing yields exact types), the common tags first, no helper calls for them.
    if type(av) is not dict or len(av) != 1:
        raise AttributeTypeError(f"{where}: an attribute value must be an object with one type tag")
    ((tag, value),) = av.items()
    if tag == "S":
        if type(value) is not str:
            raise AttributeTypeError(f"{where}: S value must be a string")
    elif tag == "N":
        if type(value) is not str:
            raise AttributeTypeError(f"{where}: N value must be a decimal string")
        check_number(value, where)
    elif tag == "M":
        if type(value) is not dict:
            raise AttributeTypeError(f"{where}: M value must be an object")
        if depth >= MAX_NESTING and value:
            raise AttributeTypeError(f"{where}: nested more than {MAX_NESTING} levels deep")
        for k, v in value.items():
            _validate_av(v, f"{where}.{k}", depth + 1)
    elif tag == "BOOL":
        if type(value) is not bool:
            raise AttributeTypeError(f"{where}: BOOL value must be true or false")
    elif tag == "L":
        if type(value) is not list:
            raise AttributeTypeError(f"{where}: L value must be a list")
        if depth >= MAX_NESTING and value:
            raise AttributeTypeError(f"{where}: nested more than {MAX_NESTING} levels deep")
        for i, v in enumerate(value):
            _validate_av(v, f"{where}[{i}]", depth + 1)
    elif tag == "SS" or tag == "NS":
        if type(value) is not list:
            raise AttributeTypeError(f"{where}: {tag} value must be a list")
        for v in value:
            if type(v) is not str:
                raise AttributeTypeError(f"{where}: {tag} members must be strings")
            if tag == "NS":
                check_number(v, where)
    elif tag == "B":
        _unb64(value, where)
    elif tag == "NULL":
        if value is not True:
            raise AttributeTypeError(f"{where}: NULL value must be true")
    elif tag == "BS":
        if type(value) is not list:
            raise AttributeTypeError(f"{where}: BS value must be a list")
        for v in value:
            _unb64(v, where)
    else:
        raise AttributeTypeError(f"{where}: unknown DynamoDB attribute type {tag!r}")


def to_boto(item: Item) -> dict[str, Any]:
    """Convert a wire-form attribute map to boto3's low-level form (binary as bytes)."""
    return {name: _av_to_boto(av) for name, av in item.items()}


def _av_to_boto(av: dict[str, Any]) -> dict[str, Any]:
    ((tag, value),) = av.items()
    if tag == "B":
        return {"B": base64.b64decode(value)}
    if tag == "BS":
        return {"BS": [base64.b64decode(v) for v in value]}
    if tag == "L":
        return {"L": [_av_to_boto(v) for v in value]}
    if tag == "M":
        return {"M": {k: _av_to_boto(v) for k, v in value.items()}}
    return av


# -- numbers ---------------------------------------------------------------------------------
# DynamoDB's number space is exactly a decimal context: 38 significant digits and adjusted
# exponents (that of the leading digit) from -130 to +125, i.e. magnitudes 1E-130 up to
# 9.9999999999999999999999999999999999999E+125. With every condition trapped, converting a
# text in this context either is exact or raises, so nothing is ever rounded. It is a
# private Context object used through its methods: the thread's current context (28 digits
# by default, shared with other code) is neither read nor changed. Its sticky flags are set
# concurrently but never read; only the traps matter.
_DYNAMODB = Context(
    prec=38,
    Emin=-130,
    Emax=125,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, Inexact, Overflow, Underflow, Subnormal, DivisionByZero],
)
# For arithmetic on N values (e.g. an expiry time minus a float clock): wide enough that any
# DynamoDB number and any float's exact value combine exactly — their digits span at most
# 10^308 .. 10^-1074 — and trapping Inexact, so a result is never silently rounded.
EXACT = Context(
    prec=1400,
    Emin=-2000,
    Emax=2000,
    traps=[InvalidOperation, Inexact, Overflow, Underflow, Subnormal, DivisionByZero],
)
# DynamoDB's number grammar: sign? digits with at most one point, exponent? — ASCII digits
# only. Decimal() alone would also take NaN, Infinity, `1_000`, surrounding whitespace and
# any Unicode digit (`١٢٣` is 123 to it), none of which DynamoDB accepts.
_SYNTAX = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?").fullmatch
# The hot path: a plain decimal (no exponent) of at most 38 digits is within DynamoDB's
# range whatever they are (its smallest nonzero magnitude is 1E-38), so its form suffices.
_PLAIN = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)").fullmatch
# A plain decimal that is already canonical: no leading zero (but `0.5`), no trailing zero
# after the point, no point without digits after it. (`-0` is excluded separately.)
_CANONICAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]*[1-9])?").fullmatch
_MAX_DIGITS = 38


def is_short_number(text: str) -> bool:
    """True for a plain number of at most 38 digits: valid by its form alone (a fast
    pre-check: False means "ask check_number", not "invalid")."""
    size = len(text)
    if size <= _MAX_DIGITS:
        return (text.isdigit() and text.isascii()) or _PLAIN(text) is not None
    # Up to 40 characters may still be 38 digits with a sign and a point.
    return (
        size <= _MAX_DIGITS + 2
        and _PLAIN(text) is not None
        and size - ("-" in text) - ("." in text) <= _MAX_DIGITS
    )


def parse_number(text: str, where: str = "number") -> Decimal:
    """A DynamoDB N value as an exact Decimal; AttributeTypeError for anything DynamoDB
    would refuse (bad syntax, more than 38 significant digits, outside 1E-130..9.99E+125)."""
    if type(text) is not str or _SYNTAX(text) is None:
        raise AttributeTypeError(f"{where}: {text!r} is not a DynamoDB number")
    try:
        return _DYNAMODB.create_decimal(text)
    except (Overflow, Subnormal) as exc:  # before Inexact: Overflow and Underflow are Inexact
        raise AttributeTypeError(
            f"{where}: {text!r} is not a DynamoDB number: magnitude outside "
            "1E-130 .. 9.9999999999999999999999999999999999999E+125"
        ) from exc
    except Inexact as exc:
        raise AttributeTypeError(
            f"{where}: {text!r} is not a DynamoDB number: more than 38 significant digits"
        ) from exc
    except ArithmeticError as exc:
        raise AttributeTypeError(f"{where}: {text!r} is not a DynamoDB number") from exc


def check_number(text: str, where: str = "number") -> None:
    """Raise AttributeTypeError unless `text` is a number DynamoDB accepts (see parse_number)."""
    if not is_short_number(text):
        parse_number(text, where)


def normalize_number(text: str, where: str = "number") -> str:
    """The canonical text of a number: `1.0`, `01`, `1e0` all become `1`; never an exponent.

    Exact over DynamoDB's whole range: two texts give the same result exactly when they
    are the same number. Raises AttributeTypeError for a text DynamoDB would refuse.
    """
    if (
        type(text) is str
        and len(text) <= _MAX_DIGITS
        and ((text.isdigit() and text.isascii() and text[0] != "0") or _CANONICAL(text))
        and text != "-0"
    ):
        return text  # fast path: already canonical (and so valid)
    d = parse_number(text, where)
    if d.is_zero():
        return "0"  # also -0, 0.00, 0E+9
    # normalize() only drops trailing zeros of a value that already fits the context: exact.
    return format(_DYNAMODB.normalize(d), "f")


def _number_identity(text: Any) -> tuple[bool, Any]:
    """What number equality compares: the canonical text, or (for a value DynamoDB would
    refuse, e.g. a corrupted target) the raw text, which equals only itself."""
    if type(text) is not str:
        return False, repr(text)
    try:
        return True, normalize_number(text)
    except AttributeTypeError:
        return False, text


def _canonical_av(av: dict[str, Any]) -> dict[str, Any]:
    ((tag, value),) = av.items()
    if tag == "N":
        return {"N": normalize_number(value)}
    return av


def canonical_key(keys: Item) -> bytes:
    """The Kafka key of an item: sorted-attribute, space-free DynamoDB JSON, numbers normalized.

    Keys are S, N or B only (DynamoDB's rule), so no nested structure needs canonicalizing.
    The same item gives the same bytes whether it came from a stream, a scan or an export.
    """
    # Per published record: most keys are strings or already-canonical numbers, which are
    # written as they are, without building a normalized copy.
    for av in keys.values():
        if type(av) is not dict or len(av) != 1:
            break
        number = av.get("N")
        if number is not None and normalize_number(number) != number:
            break
    else:
        return orjson.dumps(keys, option=orjson.OPT_SORT_KEYS)
    return orjson.dumps(
        {name: _canonical_av(av) for name, av in keys.items()}, option=orjson.OPT_SORT_KEYS
    )


def dumps(item: Item) -> str:
    """Wire-form attribute map to DynamoDB JSON text."""
    return orjson.dumps(item).decode("utf-8")


def loads(text: str | bytes) -> Item:
    """DynamoDB JSON text to a wire-form attribute map (not validated: see `validate`)."""
    value = orjson.loads(text)
    if not isinstance(value, dict):
        raise AttributeTypeError("DynamoDB JSON must be an object")
    return value


def extract_keys(item: Item, key_names: tuple[str, ...], where: str = "item") -> Item:
    """The key attributes of an item, in key-schema order; a missing key attribute is an error."""
    try:
        return {name: item[name] for name in key_names}
    except KeyError as exc:
        raise AttributeTypeError(f"{where}: key attribute {exc.args[0]!r} is missing") from exc


def number_equal(a: str, b: str) -> bool:
    """Exact numeric equality (`0.1` = `0.10`); a text DynamoDB would refuse equals only itself."""
    return a == b or _number_identity(a) == _number_identity(b)


def items_equal(a: Item, b: Item) -> bool:
    """Semantic equality of two items: numbers compared as decimals, sets as sets."""
    if a.keys() != b.keys():
        return False
    return all(av_equal(a[k], b[k]) for k in a)


def av_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ((ta, va),) = a.items()
    ((tb, vb),) = b.items()
    if ta != tb:
        return False
    if ta == "N":
        return number_equal(va, vb)
    if ta == "NS":
        if va == vb:
            return True
        return {_number_identity(x) for x in va} == {_number_identity(x) for x in vb}
    if ta in ("SS", "BS"):
        return set(va) == set(vb)
    if ta == "L":
        return len(va) == len(vb) and all(av_equal(x, y) for x, y in zip(va, vb, strict=True))
    if ta == "M":
        return items_equal(va, vb)
    return bool(va == vb)
