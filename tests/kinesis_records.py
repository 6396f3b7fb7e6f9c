"""Kinesis records as DynamoDB writes them to a Kinesis data stream (test data).

The layout is AWS's documented one for Kinesis Data Streams for DynamoDB: one JSON document
per change with `awsRegion`, `eventID`, `eventName`, `userIdentity`, `recordFormat`,
`tableName`, `eventSource` and a `dynamodb` object (`ApproximateCreationDateTime` in epoch
milliseconds, or microseconds with `ApproximateCreationDateTimePrecision` MICROSECOND;
`Keys`, `NewImage`, `OldImage`, `SizeBytes`). Images are DynamoDB JSON (B as base64 text).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

MILLISECOND = "MILLISECOND"
MICROSECOND = "MICROSECOND"


def kinesis_document(
    event_name: str,
    keys: dict[str, Any],
    new_image: dict[str, Any] | None = None,
    old_image: dict[str, Any] | None = None,
    *,
    table: str,
    created_us: int,
    precision: str | None = MICROSECOND,
    event_id: str | None = None,
    user_identity: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The document (before encoding). `precision` None leaves the field out, as records
    written before the option existed do; the number is then in milliseconds."""
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": created_us
        if precision == MICROSECOND
        else created_us // 1000,
        "Keys": keys,
        "SizeBytes": len(orjson.dumps([keys, new_image, old_image])),
    }
    if precision is not None:
        ddb["ApproximateCreationDateTimePrecision"] = precision
    if new_image is not None:
        ddb["NewImage"] = new_image
    if old_image is not None:
        ddb["OldImage"] = old_image
    return {
        "awsRegion": "us-east-1",
        "eventID": event_id or str(uuid.uuid4()),
        "eventName": event_name,
        "userIdentity": user_identity,
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": ddb,
        "eventSource": "aws:dynamodb",
    }


def kinesis_data(*args: Any, **kwargs: Any) -> bytes:
    """A Kinesis record's Data for one change: `kinesis_document`'s arguments, encoded."""
    return orjson.dumps(kinesis_document(*args, **kwargs))
