"""The Kinesis data stream a table's changes go to (Kinesis Data Streams for DynamoDB).

Shared by the stream reader's Kinesis transport (connectors/sources/stream/
kinesis_transport.py) and the back-fill's safety check, which must not import each other:
which stream a table uses (`[[tables]] kinesis_stream`, else `[stream] stream_name`), and what
DescribeStreamSummary says of it (ARN, creation time, retention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bridge.model.errors import ConfigError
from bridge.runtime.settings import Settings
from connectors.dynamodb.aws import call_with_backoff, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

NAME_HINT = (
    'set [stream] stream_name = "<kinesis stream>" (or kinesis_stream in the table\'s '
    "[[tables]] entry)"
)


@dataclass(frozen=True, slots=True)
class KinesisStream:
    arn: str
    created_ms: int
    retention_ms: int


def kinesis_stream_name(settings: Settings, table: str) -> str:
    """The configured Kinesis stream (name or ARN) of `table`; ConfigError naming the fix."""
    for conf in settings.tables:
        if conf.name == table and conf.kinesis_stream:
            return conf.kinesis_stream
    if settings.stream.stream_name:
        return settings.stream.stream_name
    raise ConfigError(
        f'table {table!r}: [stream] transport = "kinesis" needs the Kinesis data stream the '
        f"table streams to; {NAME_HINT}"
    )


# A start-up lookup: retried a few times (seconds), then Unavailable (exit 75), rather than
# backing off for ever while the command looks hung and an endpoint typo goes unsaid.
START_ATTEMPTS = 6


def describe_kinesis_stream(
    kinesis: KinesisClient, name: str, table: str | None = None
) -> KinesisStream:
    """DescribeStreamSummary of a stream given by name or ARN; ConfigError when missing."""
    ref = {"StreamARN": name} if name.startswith("arn:") else {"StreamName": name}
    try:
        summary: dict[str, Any] = call_with_backoff(
            lambda: dict(kinesis.describe_stream_summary(**ref)["StreamDescriptionSummary"]),
            "DescribeStreamSummary",
            attempts=START_ATTEMPTS,
        )
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            whose = f"table {table!r}: " if table else ""
            raise ConfigError(
                f"{whose}Kinesis data stream {name!r} does not exist; create it and turn on "
                "Kinesis streaming for the table (aws dynamodb "
                "enable-kinesis-streaming-destination --table-name <table> --stream-arn <arn>), "
                f"or {NAME_HINT}"
            ) from exc
        raise translate(exc, f"DescribeStreamSummary {name}") from exc
    return KinesisStream(
        arn=str(summary["StreamARN"]),
        created_ms=int(summary["StreamCreationTimestamp"].timestamp() * 1000),
        retention_ms=int(summary["RetentionPeriodHours"]) * 3600 * 1000,
    )


__all__ = ["KinesisStream", "describe_kinesis_stream", "kinesis_stream_name"]
