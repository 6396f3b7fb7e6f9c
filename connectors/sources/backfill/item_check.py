"""A cheap structural check of a parsed wire-form item, for the export hot path.

`fast_item_ok` answers "certainly valid" or "ask `bridge.model.attrs.validate`": whenever it says
no, `validate` runs to decide and to name the problem, so the accepted set is exactly what
`validate` accepts.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from bridge.model import attrs
from bridge.model.errors import AttributeTypeError


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
    """True only if `bridge.model.attrs.validate` would accept the item (False: ask it)."""
    return item_members(item) >= 0


def item_members(item: Any) -> int:
    """For an item parsed from JSON (objects are dicts, nothing else has `items`): how
    many object members its JSON text holds (attribute names, type tags, map entries),
    counted on the parsed item; -1 unless `bridge.model.attrs.validate` would certainly
    accept it (then ask `validate`, which decides and names the problem).

    The count lets the export reader prove that an item's text has no duplicate names,
    which would make it differ from the parsed item's (see `export_files.item_text`).
    One loop per nesting level over every attribute value, no call per common value: this
    runs once per export line, and a recursive version cost a quarter of the whole export
    hot path. Levels are walked breadth first so the depth limit of `validate` holds too.
    """
    if type(item) is not dict:
        return -1
    members = 2 * len(item)
    level: Any = item.values()
    try:
        return _walk(level, members)
    except (AttributeError, ValueError):
        # Not an object (parsed JSON has `items` on objects only) or not exactly one tag:
        # caught once here instead of checked for every attribute value.
        return -1


def _walk(level: Any, members: int) -> int:
    depth = 1
    while level:
        deeper: list[Any] = []
        push = deeper.extend
        for av in level:
            ((tag, value),) = av.items()
            if tag == "S":
                if type(value) is not str:
                    return -1
            elif tag == "N":
                if type(value) is not str:
                    return -1
                # Plain integers of up to 38 digits are valid by their form (inline: most N).
                if not (
                    len(value) <= 38 and value.isdigit() and value.isascii()
                ) and not _is_number(value):
                    return -1
            elif tag == "M":
                if type(value) is not dict:
                    return -1
                if value:
                    if depth >= attrs.MAX_NESTING:
                        return -1
                    members += 2 * len(value)
                    push(value.values())
            elif tag == "L":
                if type(value) is not list:
                    return -1
                if value:
                    if depth >= attrs.MAX_NESTING:
                        return -1
                    members += len(value)
                    push(value)
            elif tag == "BOOL":
                if type(value) is not bool:
                    return -1
            elif tag == "NULL":
                if value is not True:
                    return -1
            elif tag == "SS":
                if type(value) is not list or any(type(v) is not str for v in value):
                    return -1
            elif tag == "NS":
                if type(value) is not list or any(
                    type(v) is not str or not _is_number(v) for v in value
                ):
                    return -1
            elif tag == "B":
                if not _b64_ok(value):
                    return -1
            elif tag == "BS":
                if type(value) is not list or not all(_b64_ok(v) for v in value):
                    return -1
            else:
                return -1
        level = deeper
        depth += 1
    return members
