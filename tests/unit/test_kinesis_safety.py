"""The back-fill's safety check when the table is captured from a Kinesis data stream: the
capture record is looked up by the Kinesis stream's ARN, and coverage uses that stream's
retention (RetentionPeriodHours), not DynamoDB Streams' 24 h."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.dynamodb.capture import CAPTURE_PREFIX
from connectors.dynamodb.kinesis_stream import KinesisStream
from connectors.sources.backfill.safety import UnsafeBackfillError, check_capture

DDB_ARN = "arn:aws:dynamodb:us-east-1:1:table/t/stream/2026-01-01T00:00:00.000"
KINESIS_ARN = "arn:aws:kinesis:us-east-1:1:stream/t-changes"
CREATED_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
HOUR_MS = 3600 * 1000
WEEK = KinesisStream(KINESIS_ARN, created_ms=CREATED_MS, retention_ms=168 * HOUR_MS)


class FakeDdb:
    """Capture records by lease key; DescribeTable reports a DynamoDB stream too, which the
    Kinesis path must not use."""

    def __init__(self, captures: dict[str, int]) -> None:
        self.captures = captures  # stream ARN -> capture start (ms)

    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {
            "Table": {
                "TableName": TableName,
                "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
                "LatestStreamArn": DDB_ARN,
                "LatestStreamLabel": "2026-01-01T00:00:00.000",
            }
        }

    def get_item(self, TableName: str, Key: dict[str, Any], ConsistentRead: bool) -> Any:
        arn = Key["leaseKey"]["S"].removeprefix(CAPTURE_PREFIX)
        if arn not in self.captures:
            return {}
        return {
            "Item": {
                "leaseKey": Key["leaseKey"],
                "tableName": {"S": "t"},
                "streamArn": {"S": arn},
                "captureStartedAt": {"N": str(self.captures[arn])},
                "initialPosition": {"S": "TRIM_HORIZON"},
            }
        }


def at(ms: int) -> int:
    return ms * 1000


def test_a_dynamodb_stream_capture_does_not_cover_a_kinesis_transport() -> None:
    ddb = FakeDdb({DDB_ARN: CREATED_MS})
    with pytest.raises(UnsafeBackfillError, match=f"Kinesis data stream {KINESIS_ARN}"):
        check_capture(ddb, "leases", "t", at(CREATED_MS + HOUR_MS), 5, kinesis=WEEK)
    # The DynamoDB Streams path is unchanged: that capture covers it.
    check_capture(ddb, "leases", "t", at(CREATED_MS + HOUR_MS), 5)


def test_kinesis_retention_decides_coverage() -> None:
    # Capture started 100 h after the stream's creation: a 7-day stream still held it all.
    ddb = FakeDdb({KINESIS_ARN: CREATED_MS + 100 * HOUR_MS})
    cov = check_capture(ddb, "leases", "t", at(CREATED_MS + HOUR_MS), 5, kinesis=WEEK)
    assert cov.covered_from_ms == CREATED_MS and cov.stream_arn == KINESIS_ARN
    # With 24 h of retention the same capture covers only its last day.
    day = KinesisStream(KINESIS_ARN, created_ms=CREATED_MS, retention_ms=24 * HOUR_MS)
    with pytest.raises(UnsafeBackfillError, match="covers changes from"):
        check_capture(ddb, "leases", "t", at(CREATED_MS + HOUR_MS), 5, kinesis=day)
    check_capture(ddb, "leases", "t", at(CREATED_MS + 77 * HOUR_MS), 5, kinesis=day)
