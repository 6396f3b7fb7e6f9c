"""The capture record: since when, and how completely, `ddb-bridge stream` captures a stream.

One item per stream ARN in the lease table (`leaseKey = "capture#<stream ARN>"`), written
when the stream producer first starts on that stream. The back-fill reads it to check the
precondition of last-write-wins (stream captured from before `T - margin`, no trimmed gap); a
data-loss alarm (a checkpoint behind the trim horizon) is appended to it for `status`.
A re-enabled stream has a new ARN, hence a new capture record: the old one cannot vouch
for it. The back-fill's check: docs/design.md, section 6.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from connectors.dynamodb.aws import error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CAPTURE_PREFIX = "capture#"


@dataclass(frozen=True)
class CaptureRecord:
    table: str
    stream_arn: str
    # When the producer first started on this stream; with LATEST, written only once every
    # root shard's lease holds a concrete position, so every later write is captured.
    started_at_ms: int
    initial_position: str  # TRIM_HORIZON or LATEST
    data_loss: list[dict[str, Any]] = field(default_factory=list)  # shard_id, at_ms, message


def ensure_lease_table(ddb: DynamoDBClient, name: str) -> None:
    """Create the lease table (on-demand billing) if it does not exist, and wait for it."""
    try:
        ddb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise translate(exc, f"CreateTable {name}") from exc
    ddb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


def record_capture_start(
    ddb: DynamoDBClient,
    lease_table: str,
    table: str,
    stream_arn: str,
    initial_position: str,
    now_ms: int | None = None,
) -> CaptureRecord:
    """Write the capture record if this stream has none yet; return the one that holds."""
    started = now_ms if now_ms is not None else int(time.time() * 1000)
    try:
        ddb.put_item(
            TableName=lease_table,
            Item={
                "leaseKey": {"S": CAPTURE_PREFIX + stream_arn},
                "tableName": {"S": table},
                "streamArn": {"S": stream_arn},
                "captureStartedAt": {"N": str(started)},
                "initialPosition": {"S": initial_position},
            },
            ConditionExpression="attribute_not_exists(leaseKey)",
        )
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise translate(exc, f"PutItem {lease_table} capture record") from exc
    record = read_capture(ddb, lease_table, stream_arn)
    assert record is not None  # it was just written, or already there
    return record


def record_data_loss(
    ddb: DynamoDBClient, lease_table: str, stream_arn: str, shard_id: str, message: str
) -> None:
    entry = {
        "M": {
            "shardId": {"S": shard_id},
            "atMs": {"N": str(int(time.time() * 1000))},
            "message": {"S": message},
        }
    }
    try:
        ddb.update_item(
            TableName=lease_table,
            Key={"leaseKey": {"S": CAPTURE_PREFIX + stream_arn}},
            UpdateExpression="SET dataLoss = list_append(if_not_exists(dataLoss, :empty), :e)",
            ExpressionAttributeValues={":e": {"L": [entry]}, ":empty": {"L": []}},
        )
    except ClientError as exc:
        raise translate(exc, f"UpdateItem {lease_table} data-loss alarm") from exc


def read_capture(ddb: DynamoDBClient, lease_table: str, stream_arn: str) -> CaptureRecord | None:
    try:
        item = ddb.get_item(
            TableName=lease_table,
            Key={"leaseKey": {"S": CAPTURE_PREFIX + stream_arn}},
            ConsistentRead=True,
        ).get("Item")
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None  # no lease table: nothing was ever captured
        raise translate(exc, f"GetItem {lease_table} capture record") from exc
    if item is None:
        return None
    return capture_from_item(item)


def capture_from_item(item: dict[str, Any]) -> CaptureRecord:
    return CaptureRecord(
        table=item["tableName"]["S"],
        stream_arn=item["streamArn"]["S"],
        started_at_ms=int(item["captureStartedAt"]["N"]),
        initial_position=item["initialPosition"]["S"],
        data_loss=[
            {
                "shard_id": e["M"]["shardId"]["S"],
                "at_ms": int(e["M"]["atMs"]["N"]),
                "message": e["M"]["message"]["S"],
            }
            for e in item.get("dataLoss", {}).get("L", [])
        ],
    )
