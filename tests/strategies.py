"""Hypothesis strategies for DynamoDB items in wire form (all ten types, nested, sets)."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. 9.99E+125.
numbers = st.builds(
    lambda digits, exp, neg: ("-" if neg else "") + str(Decimal(digits).scaleb(exp)),
    st.integers(min_value=0, max_value=10**38 - 1),
    st.integers(min_value=-120, max_value=80),
    st.booleans(),
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
