"""DynamoDB's TTL rule, in one place: which items the TTL service may still delete.

DynamoDB deletes an item some time (up to days) after the epoch-seconds Number in its TTL
attribute has passed, but only when that time lies within the last five years: older values
are ignored, so such items live on (and are migrated like any other). A TTL attribute that is
not a Number is ignored too. Where the rule applies: docs/design.md, section 11.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bridge.model import attrs
from bridge.model.errors import AttributeTypeError

HORIZON_S = 5 * 365 * 24 * 3600


def pending_deletion(item: dict[str, Any] | None, ttl_attribute: str | None, now_s: float) -> bool:
    """Whether DynamoDB's TTL service has expired `item` and may delete it at any moment."""
    if item is None or not ttl_attribute:
        return False
    av = item.get(ttl_attribute)
    value = av.get("N") if type(av) is dict else None
    if type(value) is not str:
        return False
    try:
        expires = attrs.parse_number(value)  # exact, and only what DynamoDB calls a number
    except AttributeTypeError:
        return False
    # Compare as Decimal: a float would round a 38-digit value and misplace the boundary.
    now = Decimal(repr(now_s))
    return now - HORIZON_S <= expires < now
