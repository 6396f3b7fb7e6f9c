"""Deterministic sample items covering every DynamoDB type, for integration tests and benches."""

from __future__ import annotations

import base64
from typing import Any

# Numbers at DynamoDB's edges: both exponent limits, 38 significant digits, both signs, and
# the two keys that Python's default 28-digit decimal context made one number.
COLLIDING_NUMBERS = (
    "-12345678901234567890123456789012345671",
    "-12345678901234567890123456789012345672",
)
EXTREME_NUMBERS = (
    "1E-130",
    "-1E-130",
    "1.2345678901234567890123456789012345678E-130",
    "1E+125",
    "9.9999999999999999999999999999999999999E+125",
    "-9.9999999999999999999999999999999999999E+125",
    *COLLIDING_NUMBERS,
    "0.10000000000000000000000000000000000001",
)


def sample_item(i: int, pad: int = 120) -> dict[str, Any]:
    """Wire-form item `i`: all ten types, nesting, a 38-digit number, Unicode, empty values."""
    return {
        "pk": {"S": f"user#{i:07d}"},
        "sk": {"N": str(i % 97)},
        "name": {"S": f"Zoë Łukasz 名前 {i} " + "x" * pad},
        "balance": {"N": "12345678901234567890.123456789012345678"},
        "small": {"N": f"-{i}.5E-3"},
        "blob": {"B": base64.b64encode(bytes([i % 256, 0, 255])).decode()},
        "active": {"BOOL": i % 2 == 0},
        "nothing": {"NULL": True},
        "tags": {"SS": ["a", f"t{i % 7}"]},
        "scores": {"NS": ["1", "2.5", str(i)]},
        "bins": {
            "BS": [base64.b64encode(b"\x00\x01").decode(), base64.b64encode(b"\x02").decode()]
        },
        "hist": {"L": [{"N": "1"}, {"S": "two"}, {"M": {"deep": {"L": [{"BOOL": False}]}}}]},
        "attrs": {"M": {"color": {"S": "red"}, "size": {"N": "42"}, "empty": {"S": ""}}},
        "empty_bin": {"B": ""},
    }


def to_boto_item(item: dict[str, Any]) -> dict[str, Any]:
    from bridge.model import attrs

    return attrs.to_boto(item)
