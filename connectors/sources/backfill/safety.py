"""The precondition of last-write-wins, checked before any back-fill publishes.

`check_capture` refuses a back-fill unless the table's current stream has been captured by
`ddb-bridge stream`, without a trimmed gap, from before `T - margin` (T: the run's version
boundary), explaining what is missing. The stream is the table's DynamoDB stream, or, with
`[stream] transport = "kinesis"`, the Kinesis data stream it streams to: the capture record
is then the one written under that stream's ARN (by `ddb-bridge stream` or the KCL processor)
and the retention is the Kinesis stream's own.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bridge.model.errors import PermanentError
from connectors.dynamodb.aws import describe_table
from connectors.dynamodb.capture import read_capture
from connectors.dynamodb.kinesis_stream import KinesisStream

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

# DynamoDB Streams keep a record for 24 hours: a TRIM_HORIZON capture started at S covers
# the stream from S minus that retention on (or from the stream's creation, if later). A
# Kinesis data stream keeps them for its RetentionPeriodHours (24 h to a year).
STREAM_RETENTION_MS = 24 * 3600 * 1000


class UnsafeBackfillError(PermanentError):
    """The stream capture does not cover the back-fill's version boundary."""


@dataclass(frozen=True)
class Coverage:
    stream_arn: str
    covered_from_ms: int
    needed_from_ms: int
    initial_position: str


def _parse_label(label: str) -> int:
    """LatestStreamLabel is the stream's creation time (ISO 8601, UTC, no zone suffix)."""
    moment = datetime.fromisoformat(label.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def needed_from_ms(start_us: int, margin_s: int) -> int:
    """The first moment whose stream events must be captured: `floor_s(T) - margin`."""
    return (math.floor(start_us / 1_000_000) - margin_s) * 1000


def check_capture(
    ddb: DynamoDBClient,
    lease_table: str,
    table: str,
    start_us: int,
    margin_s: int,
    kinesis: KinesisStream | None = None,
) -> Coverage:
    """Raise UnsafeBackfillError unless the stream capture covers `T - margin` without a gap.

    `kinesis`: the table's Kinesis data stream, when that is the transport that captures it.
    """
    bypass = "Pass --no-stream for a back-fill-only migration, or --force to override."
    # The capturing stream: its ARN, creation (ms), retention, name for messages, label.
    arn: str | None
    created: int | None
    label: str | None = None
    if kinesis is not None:
        arn, created, retention_ms = kinesis.arn, kinesis.created_ms, kinesis.retention_ms
        what = "Kinesis data stream"
    else:
        desc = describe_table(ddb, table)
        spec = desc.get("StreamSpecification") or {}
        arn = desc.get("LatestStreamArn")
        if not spec.get("StreamEnabled") or not arn:
            raise UnsafeBackfillError(
                f"table {table} has no enabled DynamoDB stream, so writes made while the "
                f"back-fill runs would be lost. Enable a stream (NEW_AND_OLD_IMAGES) and run "
                f"`ddb-bridge stream` first. {bypass}"
            )
        label = desc.get("LatestStreamLabel")
        try:
            created = _parse_label(label) if label else None
        except ValueError:
            created = None
        retention_ms, what = STREAM_RETENTION_MS, "stream"
    return _check_record(
        ddb,
        lease_table,
        table,
        start_us,
        margin_s,
        str(arn),
        bypass,
        created=created,
        retention_ms=retention_ms,
        what=what,
        label=label,
    )


def _check_record(
    ddb: DynamoDBClient,
    lease_table: str,
    table: str,
    start_us: int,
    margin_s: int,
    arn: str,
    bypass: str,
    *,
    created: int | None,
    retention_ms: int,
    what: str,
    label: str | None = None,
) -> Coverage:
    """The capture record of stream `arn` against the run's T: `created` is the stream's
    creation (ms), `retention_ms` how long it keeps a record."""
    record = read_capture(ddb, lease_table, arn)
    if record is None:
        raise UnsafeBackfillError(
            f"the {what} {arn} of table {table} is not being captured: no capture record in "
            f"lease table {lease_table}. Start `ddb-bridge stream` (initial_position "
            f"TRIM_HORIZON) before the back-fill. {bypass}"
        )
    if record.data_loss:
        first = record.data_loss[0]
        raise UnsafeBackfillError(
            f"the capture of stream {arn} has a trimmed gap ({len(record.data_loss)} data-loss "
            f"alarm(s), first on shard {first['shard_id']}: {first['message']}); a back-fill "
            f"cannot restore the lost changes correctly. {bypass}"
        )
    needed = needed_from_ms(start_us, margin_s)
    if record.initial_position == "LATEST":
        covered = record.started_at_ms
    else:
        if created is None:
            raise UnsafeBackfillError(
                f"cannot tell when stream {arn} was created (LatestStreamLabel {label!r}), so "
                f"its capture cannot be shown to cover the back-fill. {bypass}"
            )
        # A TRIM_HORIZON capture started at S read everything the stream still held then.
        covered = max(created, record.started_at_ms - retention_ms)
    if covered > needed:
        raise UnsafeBackfillError(
            f"the stream capture of table {table} covers changes from {_iso(covered)} on "
            f"({record.initial_position} capture started {_iso(record.started_at_ms)}), but "
            f"this back-fill's version needs every change from {_iso(needed)} on (T minus the "
            f"{margin_s}s skew margin). Changes in between would be overwritten by older "
            f"snapshot data. Use a newer export or scan. {bypass}"
        )
    log.info(
        "stream capture covers the back-fill",
        extra={"table": table, "stream": arn, "covered_from": _iso(covered)},
    )
    return Coverage(arn, covered, needed, record.initial_position)
