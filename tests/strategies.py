"""Hypothesis strategies for DynamoDB items in wire form (all ten types, nested, sets)."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. 9.99E+125, both signs.
# Built as text from an integer coefficient and an exponent (no Decimal arithmetic, which
# would round to the default context's 28 digits), with the limits drawn often.
MIN_ADJUSTED, MAX_ADJUSTED = -130, 125  # exponent of the leading significant digit


@st.composite
def number_parts(draw: st.DrawFn) -> tuple[bool, int, int]:
    """(negative, coefficient, exponent) of a nonzero DynamoDB number: -c*10**e or c*10**e."""
    coefficient = draw(
        st.one_of(
            st.integers(min_value=1, max_value=10**38 - 1),
            st.integers(min_value=1, max_value=999),
            st.sampled_from([1, 10**37, 10**38 - 1, 10**37 + 1]),
        )
    )
    adjusted = draw(
        st.one_of(
            st.sampled_from([MIN_ADJUSTED, MAX_ADJUSTED, 0, -1, 37]),
            st.integers(min_value=MIN_ADJUSTED, max_value=MAX_ADJUSTED),
        )
    )
    return draw(st.booleans()), coefficient, adjusted - (len(str(coefficient)) - 1)


def spell(negative: bool, coefficient: int, exponent: int, style: int, zeros: int = 0) -> str:
    """One of the spellings DynamoDB accepts for -/+ coefficient * 10**exponent, exactly."""
    digits = str(coefficient) + "0" * zeros  # trailing zeros: same value, more text
    exponent -= zeros
    sign = "-" if negative else ("+" if style == 3 else "")
    if style in (0, 3):  # plain positional: 0.0010, 1200, 12.50
        if exponent >= 0:
            body = digits + "0" * exponent
        elif len(digits) > -exponent:
            body = digits[:exponent] + "." + digits[exponent:]
        else:
            body = "0." + "0" * (-exponent - len(digits)) + digits
    elif style == 1:  # scientific with one digit before the point: 1.2E+3, 5e-130
        rest = digits[1:]
        body = digits[0] + ("." + rest if rest else "") + f"E{exponent + len(rest):+d}"
    else:  # integer coefficient and exponent: 12E1, 123e-5
        body = f"{digits}e{exponent}"
    return sign + body


numbers = st.one_of(
    st.builds(
        lambda parts, style, zeros: spell(*parts, style, zeros),
        number_parts(),
        st.integers(min_value=0, max_value=3),
        st.integers(min_value=0, max_value=3),
    ),
    st.sampled_from(["0", "-0", "0.0", "0E+5", "+0.00"]),
)
texts = st.text(max_size=30)
binaries = st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode())
names = st.text(min_size=1, max_size=12)


def _sets(elem: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(elem, min_size=1, max_size=5, unique=True)


scalars = st.one_of(
    texts.map(lambda v: {"S": v}),
    numbers.map(lambda v: {"N": v}),
    binaries.map(lambda v: {"B": v}),
    st.booleans().map(lambda v: {"BOOL": v}),
    st.just({"NULL": True}),
    _sets(st.text(max_size=10)).map(lambda v: {"SS": v}),
    _sets(st.integers(-(10**12), 10**12).map(str)).map(lambda v: {"NS": v}),
    _sets(binaries).map(lambda v: {"BS": v}),
)

attribute_values: st.SearchStrategy[dict[str, Any]] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda v: {"L": v}),
        st.dictionaries(names, children, max_size=4).map(lambda v: {"M": v}),
    ),
    max_leaves=20,
)

key_values = st.one_of(
    st.text(min_size=1, max_size=20).map(lambda v: {"S": v}),
    numbers.map(lambda v: {"N": v}),
    st.binary(min_size=1, max_size=20).map(lambda b: {"B": base64.b64encode(b).decode()}),
)


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    """An item with hash key `pk` and range key `sk` plus arbitrary attributes."""
    body = draw(
        st.dictionaries(names.filter(lambda n: n not in ("pk", "sk")), attribute_values, max_size=6)
    )
    body["pk"] = draw(key_values)
    body["sk"] = draw(key_values)
    return body
