from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.model import attrs
from bridge.model.errors import AttributeTypeError
from bridge.model.event import ChangeEvent, Op, Origin
from tests import strategies
from tests.samples import sample_item


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1.0", "1"),
        ("01", "1"),
        ("1e2", "100"),
        ("-0.00", "0"),
        ("1.50", "1.5"),
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        ("1E-130", "0." + "0" * 129 + "1"),
        ("-7.10E+1", "-71"),
    ],
)
def test_normalize_number(text: str, canonical: str) -> None:
    assert attrs.normalize_number(text) == canonical


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        # DynamoDB's limits: 38 significant digits, 1E-130 .. 9.99…E+125, both signs.
        ("1E-130", "0." + "0" * 129 + "1"),
        ("-1E-130", "-0." + "0" * 129 + "1"),
        ("1E+125", "1" + "0" * 125),
        ("9.9999999999999999999999999999999999999E+125", "9" * 38 + "0" * 88),
        ("-9.9999999999999999999999999999999999999E+125", "-" + "9" * 38 + "0" * 88),
        (
            "1.2345678901234567890123456789012345678E-130",
            "0." + "0" * 129 + "12345678901234567890123456789012345678",
        ),
        ("-12345678901234567890123456789012345671", "-12345678901234567890123456789012345671"),
        ("0.1234567890123456789012345678901234567800", "0.12345678901234567890123456789012345678"),
        ("+5", "5"),  # DynamoDB accepts a plus sign and drops it
        (".5", "0.5"),
        ("5.", "5"),
        ("0.10", "0.1"),
        ("100E-2", "1"),
        ("0E+300", "0"),  # zero has no magnitude to limit
        ("-0E-300", "0"),
        ("000000000000000000000000000000000000000000042", "42"),  # leading zeros do not count
    ],
)
def test_normalize_number_is_exact_over_dynamodbs_range(text: str, canonical: str) -> None:
    assert attrs.normalize_number(text) == canonical


def test_keys_differing_in_the_38th_digit_do_not_collide() -> None:
    """The issue's pair: the default 28-digit context made both -1234…679E+10."""
    a, b = "-12345678901234567890123456789012345671", "-12345678901234567890123456789012345672"
    assert attrs.normalize_number(a) == a and attrs.normalize_number(b) == b
    assert attrs.canonical_key({"pk": {"N": a}}) != attrs.canonical_key({"pk": {"N": b}})
    assert not attrs.av_equal({"N": a}, {"N": b})
    assert not attrs.av_equal({"NS": [a, "1"]}, {"NS": [b, "1"]})


BAD_NUMBERS = [
    "NaN",
    "-nan",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "abc",
    "",
    "1,0",
    "+",
    "-",
    ".",
    "1e",
    "e5",
    "1.2.3",
    "1+2",
    "++1",
    "0x10",
    "1_000",  # Decimal and float accept digit separators; DynamoDB does not
    " 1",  # nor surrounding whitespace
    "1 ",
    "1\n",
    "\u0661\u0662\u0663",  # Arabic-Indic digits: Decimal reads them as 123
    "\uff11\uff12\uff13",  # full-width digits
    "\u00b2",  # superscript two: str.isdigit() says yes
    "1" * 39,  # 39 significant digits
    "1.00000000000000000000000000000000000001",
    "1E+126",
    "-1E+126",
    "10E+125",
    "1E-131",
    "-0.1E-130",
    "1e99999999999999999999",
    "1e-99999999999999999999",
]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("1" * 39, "more than 38 significant digits"),
        ("-1.00000000000000000000000000000000000001E-5", "more than 38 significant digits"),
        ("1" + "0" * 126, "magnitude outside"),  # 1E+126 written out
        ("1E+126", "magnitude outside"),
        ("-1.2345678901234567890123456789012345678E-131", "magnitude outside"),
        ("\u0661", "not a DynamoDB number$"),
    ],
)
def test_rejections_say_why(bad: str, reason: str) -> None:
    with pytest.raises(AttributeTypeError, match=f"^key.id: .* {reason}"):
        attrs.normalize_number(bad, "key.id")


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_bad_numbers_rejected(bad: str) -> None:
    with pytest.raises(AttributeTypeError, match="number"):
        attrs.normalize_number(bad)
    with pytest.raises(AttributeTypeError, match=r"file.json.gz:3\.n"):
        attrs.validate({"n": {"N": bad}}, "file.json.gz:3")
    with pytest.raises(AttributeTypeError, match=r"record 9\.m\.n"):
        attrs.from_boto({"m": {"M": {"n": {"N": bad}}}}, "record 9")
    with pytest.raises(AttributeTypeError, match=r"item\.s"):
        attrs.validate({"s": {"NS": ["1", bad]}})


def test_canonical_key_sorted_compact_normalized() -> None:
    key = attrs.canonical_key({"sk": {"N": "01.50"}, "pk": {"S": "ü"}, "b": {"B": "AAE="}})
    assert key == '{"b":{"B":"AAE="},"pk":{"S":"ü"},"sk":{"N":"1.5"}}'.encode()


def test_stream_and_scan_forms_give_identical_key_bytes() -> None:
    """The same item read from a stream (boto3, binary as bytes) and from a scan/export."""
    item = sample_item(7)
    boto_keys = {"pk": {"S": "user#0000007"}, "sk": {"N": "7.0"}}
    record = {
        "eventID": "e1",
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 1, 1, tzinfo=UTC),
            "Keys": boto_keys,
            "NewImage": attrs.to_boto(item),
            "SequenceNumber": "100",
        },
    }
    from_stream = ChangeEvent.from_stream_record("t", record, version=1, shard_id="shard-1")
    from_scan = ChangeEvent.snapshot(
        "t", attrs.from_boto(attrs.to_boto(item)), ("pk", "sk"), 1, Origin.SCAN
    )
    from_export = ChangeEvent.from_export_line("t", {"Item": item}, ("pk", "sk"), 1, "f:1")
    assert from_stream.key_bytes() == from_scan.key_bytes() == from_export.key_bytes()
    assert from_stream.new_image == from_scan.new_image == item


def test_from_boto_converts_binary_and_validates() -> None:
    converted = attrs.from_boto(
        {
            "b": {"B": b"\x00\xff"},
            "bs": {"BS": [b"a", b""]},
            "l": {"L": [{"M": {"x": {"B": b"z"}}}]},
        }
    )
    assert converted == {
        "b": {"B": base64.b64encode(b"\x00\xff").decode()},
        "bs": {"BS": ["YQ==", ""]},
        "l": {"L": [{"M": {"x": {"B": "eg=="}}}]},
    }
    assert attrs.to_boto(converted)["l"]["L"][0]["M"]["x"]["B"] == b"z"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"a": {"X": "1"}}, "unknown DynamoDB attribute type 'X'"),
        ({"a": {"N": "one"}}, "not a DynamoDB number"),
        ({"a": {"S": "x", "N": "1"}}, "one type tag"),
        ({"a": {"L": [{"M": {"deep": {"Q": 1}}}]}}, r"a\[0\]\.deep: unknown"),
        ({"a": {"B": "%%%"}}, "invalid base64"),
        ({"a": {"NULL": False}}, "NULL value must be true"),
    ],
)
def test_validate_names_the_bad_attribute(item: dict, message: str) -> None:
    with pytest.raises(AttributeTypeError, match=message):
        attrs.validate(item, "file.json.gz:3")


def test_ttl_removal_is_flagged() -> None:
    record = {
        "eventName": "REMOVE",
        "userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},
        "dynamodb": {
            "Keys": {"pk": {"S": "a"}},
            "OldImage": {"pk": {"S": "a"}},
            "SequenceNumber": "5",
            "ApproximateCreationDateTime": datetime(2026, 1, 1, tzinfo=UTC),
        },
    }
    event = ChangeEvent.from_stream_record("t", record, 1, "s")
    assert event.op is Op.REMOVE and event.ttl_expired and event.new_image is None
    record["userIdentity"] = {"Type": "User", "PrincipalId": "someone"}
    assert not ChangeEvent.from_stream_record("t", record, 1, "s").ttl_expired


def test_incremental_export_lines() -> None:
    keys = {"pk": {"S": "a"}}
    put = ChangeEvent.from_export_line(
        "t",
        {
            "Keys": keys,
            "NewImage": {"pk": {"S": "a"}, "v": {"N": "2"}},
            "OldImage": {"pk": {"S": "a"}},
        },
        ("pk",),
        9,
        "f:1",
    )
    delete = ChangeEvent.from_export_line("t", {"Keys": keys, "OldImage": keys}, ("pk",), 9, "f:2")
    assert put.op is Op.SNAPSHOT and put.origin is Origin.INCREMENTAL_EXPORT
    assert delete.op is Op.REMOVE and delete.new_image is None
    with pytest.raises(AttributeTypeError, match="f:3: export line has neither"):
        ChangeEvent.from_export_line("t", {"Nope": 1}, ("pk",), 9, "f:3")


def test_missing_key_attribute_is_named() -> None:
    with pytest.raises(AttributeTypeError, match="key attribute 'sk' is missing"):
        ChangeEvent.snapshot("t", {"pk": {"S": "a"}}, ("pk", "sk"), 1, Origin.SCAN, "scan seg 0")


@settings(max_examples=300, deadline=None)
@given(strategies.items())
def test_boto_round_trip(item: dict) -> None:
    assert attrs.from_boto(attrs.to_boto(item)) == item
    assert attrs.validate(attrs.loads(attrs.dumps(item))) == item


@settings(max_examples=300, deadline=None)
@given(strategies.numbers)
def test_equal_numbers_have_equal_canonical_text(text: str) -> None:
    from decimal import Decimal

    canonical = attrs.normalize_number(text)
    assert Decimal(canonical) == Decimal(text)  # Decimal comparison is exact
    assert attrs.normalize_number(canonical) == canonical
    assert "E" not in canonical and "e" not in canonical


@settings(max_examples=300, deadline=None)
@given(
    strategies.number_parts(),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3),
)
def test_every_spelling_of_a_number_gives_one_key(
    parts: tuple[bool, int, int], style_a: int, style_b: int, zeros: int
) -> None:
    a = strategies.spell(*parts, style_a)
    b = strategies.spell(*parts, style_b, zeros)  # e.g. 0.1 and 0.10, 1E+2 and 100
    assert attrs.canonical_key({"k": {"N": a}}) == attrs.canonical_key({"k": {"N": b}})
    assert attrs.av_equal({"N": a}, {"N": b})


@settings(max_examples=300, deadline=None)
@given(strategies.number_parts(), st.integers(min_value=0, max_value=3))
def test_neighbouring_numbers_have_different_keys(parts: tuple[bool, int, int], style: int) -> None:
    """The next number up in the last of 38 digits (where the value allows) is another key."""
    negative, coefficient, exponent = parts
    width = len(str(coefficient))
    coefficient, exponent = coefficient * 10 ** (38 - width), exponent - (38 - width)
    if coefficient == 10**38 - 1:
        coefficient -= 2  # the largest coefficient has no neighbour above it
    a = strategies.spell(negative, coefficient, exponent, style)
    b = strategies.spell(negative, coefficient + 1, exponent, style)
    assert attrs.canonical_key({"k": {"N": a}}) != attrs.canonical_key({"k": {"N": b}})
    assert not attrs.av_equal({"N": a}, {"N": b})


@settings(max_examples=300, deadline=None)
@given(strategies.numbers, strategies.numbers)
def test_keys_are_equal_exactly_when_values_are(a: str, b: str) -> None:
    from decimal import Decimal

    same_value = Decimal(a) == Decimal(b)
    assert (attrs.normalize_number(a) == attrs.normalize_number(b)) is same_value
    assert attrs.av_equal({"N": a}, {"N": b}) is same_value
