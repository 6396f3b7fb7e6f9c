"""Counting a JSON text's member names on the text (bridge/codec/json_names.py): every name,
nothing inside string values, whatever the escapes and whitespace; a repeat is named."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.codec.image_text import names_unique
from bridge.codec.json_names import (
    member_count,
    members_of,
    names_at_most,
    repeat_in,
    repeated_name,
)
from tests.strategies import items

# Strings rich in what could fool a scan: quotes, backslashes, colons, braces.
tricky = st.text(alphabet='"\\:{}[],ab \t\n\u00e9\U0001f600', max_size=8)
documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), tricky),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(tricky, inner, max_size=3)
    ),
    max_leaves=12,
)


def members(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(members(v) for v in value.values())
    if isinstance(value, list):
        return sum(members(v) for v in value)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=documents, ascii=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_every_name_is_counted_and_nothing_else(
    value: Any, ascii: bool, indent: int | None
) -> None:
    for text in (orjson.dumps(value), json.dumps(value, ensure_ascii=ascii, indent=indent)):
        assert member_count(text) == members(value)
        assert repeat_in(text, orjson.loads(text)) is None


@settings(max_examples=300, deadline=None)
@given(value=documents, ascii=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_the_quick_counts_bound_and_match_the_exact_one(
    value: Any, ascii: bool, indent: int | None
) -> None:
    for text in (orjson.dumps(value), json.dumps(value, ensure_ascii=ascii, indent=indent)):
        assert names_at_most(text) >= member_count(text) == members_of(orjson.loads(text))


@settings(max_examples=200, deadline=None)
@given(item=items(), where=st.integers(min_value=0), escape=st.booleans())
def test_names_unique_is_false_exactly_for_a_repeat(item: Any, where: int, escape: bool) -> None:
    """On image texts: True for any item as written, False once a name is written twice."""
    text = json.dumps(item, separators=(",", ":")) if escape else orjson.dumps(item).decode()
    assert names_unique(text.encode())
    names = list(item)
    name = names[where % len(names)]
    twice = text[:-1] + "," + json.dumps(name) + ':{"NULL":true}}'
    assert not names_unique(twice.encode())
    assert repeated_name(twice) == name


def test_a_repeat_is_named_at_any_level_and_spelling() -> None:
    for text, name in [
        ('{"a":1,"a":2}', "a"),
        ('{"x":{"M":{"b":1,"c":{"b":2},"b":3}}}', "b"),
        ('[{"k":1},{"k":1,"k":1}]', "k"),
        ('{"\\u00e9":1, "é" :2}', "é"),
        ('{"\\ud83d\\ude00":1,"\U0001f600":2}', "\U0001f600"),
    ]:
        assert repeated_name(text) == name
        message = repeat_in(text.encode(), orjson.loads(text))
        assert message is not None and f"attribute name {name!r} appears twice" in message
    assert repeated_name('{"a":{"b":1},"b":{"a":1}}') is None  # one name in two objects
