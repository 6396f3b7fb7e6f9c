"""Back-fill building blocks without services: safety coverage, TTL, fast checks, budget."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.model import attrs
from bridge.model.errors import AttributeTypeError
from connectors.dynamodb.capture import CAPTURE_PREFIX
from connectors.sources.backfill.budget import Budget
from connectors.sources.backfill.item_check import fast_item_ok
from connectors.sources.backfill.safety import UnsafeBackfillError, check_capture
from tests.samples import sample_item
from tests.strategies import attribute_values, items

ARN = "arn:aws:dynamodb:us-east-1:1:table/t/stream/2026-01-01T00:00:00.000"
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
CREATED_MS = int(CREATED.timestamp() * 1000)


class FakeDdb:
    """DescribeTable and the capture record's GetItem, scripted."""

    def __init__(self, stream: bool = True, capture: dict[str, Any] | None = None) -> None:
        self.stream = stream
        self.capture = capture

    def describe_table(self, TableName: str) -> dict[str, Any]:
        table: dict[str, Any] = {"TableName": TableName}
        if self.stream:
            table["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
            table["LatestStreamArn"] = ARN
            table["LatestStreamLabel"] = "2026-01-01T00:00:00.000"
        return {"Table": table}

    def get_item(self, TableName: str, Key: dict[str, Any], ConsistentRead: bool) -> Any:
        assert Key["leaseKey"]["S"] == CAPTURE_PREFIX + ARN
        return {"Item": self.capture} if self.capture else {}


def capture(started_ms: int, position: str = "TRIM_HORIZON", loss: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "leaseKey": {"S": CAPTURE_PREFIX + ARN},
        "tableName": {"S": "t"},
        "streamArn": {"S": ARN},
        "captureStartedAt": {"N": str(started_ms)},
        "initialPosition": {"S": position},
    }
    if loss:
        item["dataLoss"] = {
            "L": [
                {
                    "M": {
                        "shardId": {"S": "shardId-1"},
                        "atMs": {"N": "1"},
                        "message": {"S": "trimmed"},
                    }
                }
            ]
        }
    return item


HOUR_MS = 3600 * 1000


def at(ms: int) -> int:
    return ms * 1000  # microseconds


def test_refuses_without_stream_or_capture() -> None:
    with pytest.raises(UnsafeBackfillError, match="no enabled DynamoDB stream"):
        check_capture(FakeDdb(stream=False), "leases", "t", at(CREATED_MS + HOUR_MS), 5)
    with pytest.raises(UnsafeBackfillError, match="not being captured"):
        check_capture(FakeDdb(), "leases", "t", at(CREATED_MS + HOUR_MS), 5)


def test_trim_horizon_capture_covers_back_to_stream_creation_or_24h() -> None:
    # Capture started 2h after the stream was created: the stream still held everything.
    ddb = FakeDdb(capture=capture(CREATED_MS + 2 * HOUR_MS))
    cov = check_capture(ddb, "leases", "t", at(CREATED_MS + HOUR_MS), 5)
    assert cov.covered_from_ms == CREATED_MS
    # ...but not before the stream existed (T - margin earlier than its creation).
    with pytest.raises(UnsafeBackfillError, match="covers changes from"):
        check_capture(ddb, "leases", "t", at(CREATED_MS + 3000), 5)
    # Capture started 30h after creation: only the last 24h were still in the stream.
    late = FakeDdb(capture=capture(CREATED_MS + 30 * HOUR_MS))
    check_capture(late, "leases", "t", at(CREATED_MS + 7 * HOUR_MS), 5)
    with pytest.raises(UnsafeBackfillError):
        check_capture(late, "leases", "t", at(CREATED_MS + 5 * HOUR_MS), 5)


def test_latest_capture_covers_from_its_start_and_margin_counts() -> None:
    start = CREATED_MS + 10 * HOUR_MS
    ddb = FakeDdb(capture=capture(start, "LATEST"))
    check_capture(ddb, "leases", "t", at(start + 5000), 5)  # T - 5 s == capture start
    with pytest.raises(UnsafeBackfillError, match="5s skew margin"):
        check_capture(ddb, "leases", "t", at(start + 4000), 5)


def test_data_loss_refuses() -> None:
    ddb = FakeDdb(capture=capture(CREATED_MS, loss=True))
    with pytest.raises(UnsafeBackfillError, match="trimmed gap"):
        check_capture(ddb, "leases", "t", at(CREATED_MS + HOUR_MS), 5)


@settings(max_examples=300, deadline=None)
@given(items())
def test_fast_check_accepts_valid_items(item: dict[str, Any]) -> None:
    attrs.validate(item)
    assert fast_item_ok(item)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=3),
        st.one_of(
            attribute_values,
            st.dictionaries(
                st.sampled_from(["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M", "X"]),
                st.one_of(
                    st.text(max_size=5),
                    st.integers(),
                    st.booleans(),
                    st.none(),
                    st.lists(st.text(max_size=3), max_size=2),
                ),
                max_size=2,
            ),
        ),
        max_size=3,
    )
)
def test_fast_check_never_accepts_what_validate_rejects(item: dict[str, Any]) -> None:
    try:
        attrs.validate(item)
        valid = True
    except AttributeTypeError:
        valid = False
    if fast_item_ok(item):
        assert valid


@pytest.mark.parametrize(
    "bad",
    [
        {"a": {"X": "1"}},
        {"a": {"N": "1e"}},
        {"a": {"N": "NaN"}},
        {"a": {"B": "not base64!"}},
        {"a": {"S": 1}},
        {"a": {"M": {"b": {"Q": 1}}}},
        {"a": {"L": [{"S": "x"}, {"BOOL": "true"}]}},
        {"a": {"S": "x", "N": "1"}},
        {"a": {"NULL": False}},
        {"a": {"NS": ["1", "x"]}},
        {"a": {"N": "\u0661\u0662"}},  # Arabic-Indic digits: `\\d` matches them
        {"a": {"NS": ["1", "\uff11"]}},  # a full-width digit
        {"a": {"N": "1" * 39}},  # more than 38 significant digits
        {"a": {"N": "1E+126"}},  # beyond DynamoDB's range
        {"a": {"N": "-1e-131"}},
    ],
)
def test_fast_check_rejects_malformed_values(bad: dict[str, Any]) -> None:
    assert not fast_item_ok(bad)
    with pytest.raises(AttributeTypeError):
        attrs.validate(bad)


def test_fast_check_accepts_sample_items() -> None:
    assert all(fast_item_ok(sample_item(i)) for i in range(50))


def test_budget_holds_the_item_rate() -> None:
    budget = Budget(items_per_s=2000)
    start = time.monotonic()
    for _ in range(10):
        budget.wait()
        budget.spend(500, 0)  # 5,000 items; the first 2,000 are the initial burst
    elapsed = time.monotonic() - start
    assert 1.1 <= elapsed <= 3.0


def test_budget_rcu_limit_and_unlimited() -> None:
    unlimited = Budget()
    start = time.monotonic()
    for _ in range(1000):
        unlimited.wait()
        unlimited.spend(1000, 1000)
    assert time.monotonic() - start < 0.5
    rcu = Budget(rcu_per_s=100)
    start = time.monotonic()
    for _ in range(4):
        rcu.wait()
        rcu.spend(0, 50)  # 200 RCU at 100/s with a 100 burst: about 1 s
    assert 0.4 <= time.monotonic() - start <= 2.5
