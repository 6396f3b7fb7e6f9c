"""The inline screens of `attrs.from_boto` / `attrs.from_wire` (strings, short plain numbers,
booleans accepted without a call) accept exactly what the full checks accept."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.model import attrs
from bridge.model.errors import AttributeTypeError
from tests.strategies import numbers

number_like = st.one_of(
    numbers,
    st.text(max_size=45),
    st.text(alphabet="0123456789.-+eE\u0661\u00b2", max_size=42),  # Arabic-Indic 1, superscript 2
    st.from_regex(r"-?[0-9]{0,41}(\.[0-9]{0,41})?", fullmatch=True),
)
odd_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=3), st.lists(st.text(max_size=2))
)


def accepted(convert: Any, item: dict[str, Any]) -> bool:
    try:
        convert(item)
    except AttributeTypeError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(number_like)
def test_number_screen_agrees_with_check_number(text: str) -> None:
    try:
        attrs.check_number(text)
        valid = True
    except AttributeTypeError:
        valid = False
    for convert in (attrs.from_boto, attrs.from_wire):
        item = {"n": {"N": text}, "m": {"M": {"x": {"N": text}}}}
        assert accepted(convert, item) == valid, (convert.__name__, text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["S", "N", "BOOL", "NULL"]), odd_values)
def test_scalar_screens_refuse_what_the_walk_refuses(tag: str, value: Any) -> None:
    valid = (
        (tag == "S" and type(value) is str)
        or (tag == "BOOL" and type(value) is bool)
        or (tag == "NULL" and value is True)
        or (tag == "N" and type(value) is str and accepted(attrs.check_number, value))
    )
    for convert in (attrs.from_boto, attrs.from_wire):
        assert accepted(convert, {"a": {tag: value}}) == valid, (convert.__name__, tag, value)
        assert accepted(convert, {"a": {tag: value, "SS": ["x"]}}) is False


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
            max_size=12,
        ),
        st.text(max_size=8),
    )
)
def test_binary_screen_agrees_with_a_decode_and_encode(text: str) -> None:
    try:
        canonical: str | None = base64.b64encode(base64.b64decode(text, validate=True)).decode()
    except (binascii.Error, ValueError):
        canonical = None
    item = {"b": {"B": text}, "bs": {"BS": [text]}}
    if canonical is None:
        assert not accepted(attrs.from_wire, item)
    else:
        assert attrs.from_wire(item) == {"b": {"B": canonical}, "bs": {"BS": [canonical]}}
