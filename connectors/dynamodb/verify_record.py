"""The outcome of the last `verify` of a table against a target, kept in the lease table.

One item per table and target (`leaseKey = "verify#<table>#<target>"`), overwritten by each
run: the lease table is already the bridge's state store (leases, capture records, back-fill
runs), and `status` reads the outcome from there to judge cut-over readiness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bridge.status.report import VerifyOutcome
from connectors.dynamodb.aws import error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

VERIFY_PREFIX = "verify#"


def verify_key(table: str, target: str) -> str:
    return f"{VERIFY_PREFIX}{table}#{target}"


def record_verify(ddb: DynamoDBClient, lease_table: str, outcome: VerifyOutcome) -> bool:
    """Store `outcome`; False when the lease table does not exist (nothing else ran yet)."""
    item: dict[str, Any] = {
        "leaseKey": {"S": verify_key(outcome.table, outcome.target)},
        "kind": {"S": "verify"},
        "tableName": {"S": outcome.table},
        "target": {"S": outcome.target},
        "startedAtMs": {"N": str(outcome.started_at_ms)},
        "finishedAtMs": {"N": str(outcome.finished_at_ms)},
        "sourceItems": {"N": str(outcome.source_items)},
        "targetRowsChecked": {"N": str(outcome.target_rows_checked)},
        "missing": {"N": str(outcome.missing)},
        "extra": {"N": str(outcome.extra)},
        "different": {"N": str(outcome.different)},
        "sampleRate": {"N": repr(outcome.sample_rate)},
    }
    try:
        ddb.put_item(TableName=lease_table, Item=item)
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise translate(exc, f"PutItem {lease_table} verify outcome") from exc
    return True


def outcome_from_item(item: dict[str, Any]) -> VerifyOutcome:
    return VerifyOutcome(
        table=item["tableName"]["S"],
        target=item["target"]["S"],
        started_at_ms=int(item["startedAtMs"]["N"]),
        finished_at_ms=int(item["finishedAtMs"]["N"]),
        source_items=int(item["sourceItems"]["N"]),
        target_rows_checked=int(item["targetRowsChecked"]["N"]),
        missing=int(item["missing"]["N"]),
        extra=int(item["extra"]["N"]),
        different=int(item["different"]["N"]),
        sample_rate=float(item["sampleRate"]["N"]),
    )
