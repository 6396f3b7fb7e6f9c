"""A cheap structural check of a parsed wire-form item, for the export hot path.

`fast_item_ok` answers "certainly valid" or "ask `bridge.attrs.validate`": whenever it says
no, `validate` runs to decide and to name the problem, so the accepted set is exactly what
`validate` accepts.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from bridge import attrs
from bridge.errors import AttributeTypeError


def _b64_ok(value: Any) -> bool:
    if type(value) is not str:
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_number(text: str) -> bool:
    # Short plain numbers are valid by their form alone; the rest (long, or with an
    # exponent, whose range needs checking) take the exact check. A regex with `\d`
    # would also have let non-ASCII digits through.
    if attrs.is_short_number(text):
        return True
    try:
        attrs.check_number(text)
    except AttributeTypeError:
        return False
    return True


def fast_item_ok(item: Any) -> bool:
    """True only if `bridge.attrs.validate` would accept the item (False: ask it).

    Iterative, one loop over every attribute value, no call per value: this runs once per
    export line, and a recursive version cost a quarter of the whole export hot path.
    """
    if type(item) is not dict:
        return False
    stack = list(item.values())
    pop, push = stack.pop, stack.extend
    while stack:
        av = pop()
        if type(av) is not dict or len(av) != 1:
            return False
        ((tag, value),) = av.items()
        kind = type(value)
        if tag == "S":
            if kind is not str:
                return False
        elif tag == "N":
            if kind is not str or not _is_number(value):
                return False
        elif tag == "M":
            if kind is not dict:
                return False
            push(value.values())
        elif tag == "L":
            if kind is not list:
                return False
            push(value)
        elif tag == "BOOL":
            if kind is not bool:
                return False
        elif tag == "NULL":
            if value is not True:
                return False
        elif tag == "SS":
            if kind is not list or any(type(v) is not str for v in value):
                return False
        elif tag == "NS":
            if kind is not list or any(type(v) is not str or not _is_number(v) for v in value):
                return False
        elif tag == "B":
            if not _b64_ok(value):
                return False
        elif tag == "BS":
            if kind is not list or not all(_b64_ok(v) for v in value):
                return False
        else:
            return False
    return True
