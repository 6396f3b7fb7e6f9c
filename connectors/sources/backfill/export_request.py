"""Requesting an export: ExportTableToPointInTime, waiting for it, and where its manifest is."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bridge.model.errors import PermanentError
from connectors.dynamodb.aws import translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)


def start_export(
    ddb: DynamoDBClient,
    table_arn: str,
    bucket: str,
    prefix: str | None,
    incremental: tuple[datetime, datetime] | None,
    on_status: Callable[[str, float], None] | None = None,
    poll_s: float = 10.0,
    timeout_s: float = 24 * 3600,
) -> dict[str, Any]:
    """ExportTableToPointInTime, then wait until it completes; returns DescribeExport."""
    request: dict[str, Any] = {
        "TableArn": table_arn,
        "S3Bucket": bucket,
        "ExportFormat": "DYNAMODB_JSON",
    }
    if prefix:
        request["S3Prefix"] = prefix
    if incremental is not None:
        request["ExportType"] = "INCREMENTAL_EXPORT"
        request["IncrementalExportSpecification"] = {
            "ExportFromTime": incremental[0],
            "ExportToTime": incremental[1],
            "ExportViewType": "NEW_AND_OLD_IMAGES",
        }
    try:
        desc = ddb.export_table_to_point_in_time(**request)["ExportDescription"]
    except Exception as exc:
        raise translate(exc, f"ExportTableToPointInTime {table_arn}") from exc
    arn = desc["ExportArn"]
    log.info("export requested", extra={"export": arn, "bucket": bucket})
    started = time.monotonic()
    while True:
        status = desc.get("ExportStatus", "IN_PROGRESS")
        if on_status is not None:
            on_status(status, time.monotonic() - started)
        if status == "COMPLETED":
            return dict(desc)
        if status == "FAILED":
            raise PermanentError(
                f"export {arn} failed: {desc.get('FailureCode')}: {desc.get('FailureMessage')}"
            )
        if time.monotonic() - started > timeout_s:
            raise PermanentError(f"export {arn} still {status} after {timeout_s:.0f}s")
        time.sleep(poll_s)
        try:
            desc = ddb.describe_export(ExportArn=arn)["ExportDescription"]
        except Exception as exc:
            raise translate(exc, f"DescribeExport {arn}") from exc


def manifest_uri(desc: dict[str, Any]) -> str:
    """Where a completed export's manifest summary is (DescribeExport's ExportManifest)."""
    key = desc.get("ExportManifest")
    if not key:
        raise PermanentError(
            f"export {desc.get('ExportArn')} completed, but DescribeExport gives no "
            f"ExportManifest: this endpoint does not write DynamoDB's export layout "
            f"(manifest-summary.json, manifest-files.json), so the export cannot be read "
            f"with checksums. Its files are under s3://{desc.get('S3Bucket')}/"
            f"{desc.get('S3Prefix') or ''}"
        )
    return f"s3://{desc['S3Bucket']}/{key}"
