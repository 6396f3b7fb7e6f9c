"""Stream shards: discovery, lineage, and reading one shard with retries.

The calls themselves go through a `Transport` (connectors/sources/stream/transport.py):
DynamoDB Streams or Kinesis Data Streams. For DynamoDB Streams, discovery pages through
`DescribeStream` (`ExclusiveStartShardId`); the children of an ended shard come from one
`DescribeStream` with `ShardFilter` CHILD_SHARDS (`list_shards`, `child_shards` here). A
`ShardReader`, the same for both transports, turns a
checkpoint into an iterator, re-acquires the iterator when it expires (they live 15 minutes),
backs off with full jitter when throttled, and reports a position behind the trim horizon
(`TrimmedDataAccessException`) as a `DataLossError`, never as a silent skip.

Delivery guarantee: none on its own; it hands every record of the shard, in sequence order,
to the caller, who publishes and checkpoints.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bridge.model.errors import ConfigError, DataLossError, PermanentError
from connectors.dynamodb import aws
from connectors.dynamodb.aws import (
    AWS_BACKOFF,
    Interrupted,
    call_with_backoff,
    error_code,
    translate,
)
from connectors.sources.stream.get_records import keep_raw_body
from connectors.sources.stream.text_pages import read_text_page
from connectors.sources.stream.transport import (
    LATEST,
    SENTINELS,
    SHARD_END,
    TRIM_HORIZON,
    Children,
    Shard,
    Transport,
    iterator_request,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_dynamodbstreams.type_defs import RecordTypeDef, StreamDescriptionTypeDef

log = logging.getLogger(__name__)

EXPIRED_ITERATOR = "ExpiredIteratorException"
TRIMMED = "TrimmedDataAccessException"


def _describe(
    streams: DynamoDBStreamsClient, kwargs: dict[str, Any], stop: threading.Event, what: str
) -> StreamDescriptionTypeDef:
    """One DescribeStream page, throttling retried until `stop`; `what` names it in errors."""
    try:
        desc: StreamDescriptionTypeDef = call_with_backoff(
            functools.partial(streams.describe_stream, **kwargs), "DescribeStream", stop
        )["StreamDescription"]
    except ClientError as exc:
        raise translate(exc, f"DescribeStream {what}") from exc
    return desc


def list_shards(
    streams: DynamoDBStreamsClient, stream_arn: str, stop: threading.Event
) -> list[Shard]:
    """Every shard DescribeStream reports, paging through `LastEvaluatedShardId`."""
    shards: list[Shard] = []
    start: str | None = None
    while True:
        kwargs: dict[str, Any] = {"StreamArn": stream_arn}
        if start is not None:
            kwargs["ExclusiveStartShardId"] = start
        desc = _describe(streams, kwargs, stop, stream_arn)
        shards.extend(Shard.from_description(s) for s in desc.get("Shards", []))
        start = desc.get("LastEvaluatedShardId")
        if not start:
            return shards


def child_shards(
    streams: DynamoDBStreamsClient, stream_arn: str, parent_id: str, stop: threading.Event
) -> Children:
    """The children of an ended shard, by `DescribeStream` with `ShardFilter` CHILD_SHARDS.

    One call instead of paging through every shard of the stream. An endpoint that ignores
    the filter (moto, older emulators) answers with shards that are not children of
    `parent_id`; then, and only then, the stream is listed in full and its children picked.
    """
    kwargs: dict[str, Any] = {
        "StreamArn": stream_arn,
        "ShardFilter": {"Type": "CHILD_SHARDS", "ShardId": parent_id},
    }
    found: list[Shard] = []
    honoured = True
    while True:
        desc = _describe(streams, kwargs, stop, f"{stream_arn} children of {parent_id}")
        page = [Shard.from_description(s) for s in desc.get("Shards", [])]
        if any(shard.parent_ids != (parent_id,) for shard in page):
            honoured = False
            break
        found.extend(page)
        start = desc.get("LastEvaluatedShardId")
        if not start:
            break
        kwargs["ExclusiveStartShardId"] = start
    if honoured:
        return Children(found, filtered=True)
    log.info(
        "DescribeStream ignored ShardFilter: listing every shard to find the children",
        extra={"stream": stream_arn, "shard": parent_id},
    )
    every = list_shards(streams, stream_arn, stop)
    return Children([s for s in every if parent_id in s.parent_ids], filtered=False)


@dataclass(frozen=True, slots=True)
class Batch:
    records: list[RecordTypeDef]
    end: bool  # the shard is closed and every record of it was read


class ShardReader:
    """Reads one shard from a checkpoint: sequence number or TRIM_HORIZON / LATEST sentinel.

    A stream shard is a part in the sense of `bridge.ports.source.PartReader`: opened at its lease's
    checkpoint, read a page at a time; `position` is the sequence number to checkpoint once
    the records up to it are acknowledged.
    """

    def __init__(
        self,
        streams: Transport | DynamoDBStreamsClient,
        stream_arn: str,
        shard_id: str,
        checkpoint: str,
        stop: threading.Event,
        limit: int | None = None,
    ) -> None:
        if checkpoint == SHARD_END:
            raise PermanentError(f"shard {shard_id} is already checkpointed {SHARD_END}")
        self.transport = as_transport(streams)
        self.stream_arn = stream_arn
        self.shard_id = shard_id
        self.stop = stop
        self.limit = limit if limit is not None else self.transport.page_limit
        # Where reading resumes after an expired iterator: after the last record returned.
        self.position = checkpoint
        self._iterator: str | None = None
        self._backoff = AWS_BACKOFF.start()
        self._where = {"stream": stream_arn, "shard": shard_id}
        self.transport.prepare_reader()

    def _acquire(self) -> str:
        position = self.position
        try:
            iterator: str = call_with_backoff(
                lambda: self.transport.get_shard_iterator(self.stream_arn, self.shard_id, position),
                "GetShardIterator",
                self.stop,
                self._backoff,
                self._where,
            )
        except ClientError as exc:
            self._raise_trimmed(exc)
            raise translate(exc, f"GetShardIterator shard {self.shard_id}") from exc
        return iterator

    def _raise_trimmed(self, exc: ClientError) -> None:
        if error_code(exc) == TRIMMED:
            raise DataLossError(
                f"shard {self.shard_id} of {self.stream_arn}: position {self.position} is "
                "behind the trim horizon; records between it and the horizon are lost"
            ) from exc

    def read(self) -> Batch:
        """The next page of records (possibly empty); `end` once the shard is closed."""
        while True:
            if self._iterator is None:
                self._iterator = self._acquire()
            iterator = self._iterator
            try:
                page = call_with_backoff(
                    functools.partial(
                        self.transport.get_records, self.stream_arn, iterator, self.limit
                    ),
                    "GetRecords",
                    self.stop,
                    self._backoff,
                    self._where,
                )
            except ClientError as exc:
                if error_code(exc) == EXPIRED_ITERATOR:
                    log.info("shard iterator expired, re-acquiring", extra=self._where)
                    self._iterator = None
                    continue
                self._raise_trimmed(exc)
                raise translate(exc, f"GetRecords shard {self.shard_id}") from exc
            records, self._iterator = self.transport.page(
                page, self.stream_arn, self.shard_id, self.position
            )
            if records:
                self.position = records[-1]["dynamodb"]["SequenceNumber"]
            return Batch(records, end=self._iterator is None)


def resolve_latest(
    streams: Transport | DynamoDBStreamsClient,
    stream_arn: str,
    shard: Shard,
    stop: threading.Event,
) -> str:
    """A position that means what LATEST means now, but stays put: `SHARD_END` for a closed
    shard (nothing more will come); for an open one, the sequence number of its last record
    (read from the start of the shard, without publishing), or TRIM_HORIZON when it holds none.

    A LATEST iterator is only good for 15 minutes and names no position, so a lease that kept
    `LATEST` until its first checkpoint made a later owner skip every write in between. An
    early stop (an empty page before the real end) only moves the position back: lossless.
    A transport with a position of its own for "now" (Kinesis: AT_TIMESTAMP) gives that
    instead: reading a shard of a year's retention to its tip would cost the whole shard.
    """
    if shard.closed:
        return SHARD_END
    transport = as_transport(streams)
    at_now = transport.latest_position(shard)
    if at_now is not None:
        return at_now
    reader = ShardReader(transport, stream_arn, shard.shard_id, TRIM_HORIZON, stop)
    last: str | None = None
    while True:
        if stop.is_set():
            raise Interrupted(f"resolving LATEST on shard {shard.shard_id}")
        batch = reader.read()
        if batch.records:
            last = batch.records[-1]["dynamodb"]["SequenceNumber"]
        if batch.end or not batch.records:
            return last if last is not None else TRIM_HORIZON


NEW_IMAGE_VIEWS = frozenset({"NEW_IMAGE", "NEW_AND_OLD_IMAGES"})
ENABLE_HINT = (
    "enable it with: aws dynamodb update-table --table-name {table} "
    "--stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"
)


def stream_arn_of(ddb: DynamoDBClient, table: str) -> str:
    """The table's current stream ARN; ConfigError when it has none or lacks new images."""
    desc = aws.describe_table(ddb, table)
    spec = desc.get("StreamSpecification") or {}
    arn = desc.get("LatestStreamArn")
    if not spec.get("StreamEnabled") or not arn:
        raise ConfigError(
            f"table {table!r} has no DynamoDB stream; " + ENABLE_HINT.format(table=table)
        )
    view = spec.get("StreamViewType")
    if view not in NEW_IMAGE_VIEWS:
        raise ConfigError(
            f"table {table!r} has stream view type {view}, which lacks the new image; "
            "change it (disable the stream, then "
            + ENABLE_HINT.format(table=table)
            + "; a new stream means a new back-fill)"
        )
    return str(arn)


class DynamoDBStreamsTransport(Transport):
    """DynamoDB Streams: the table's own stream (DescribeTable's LatestStreamArn)."""

    kind = "dynamodb"
    page_limit = 1000

    def __init__(self, streams: DynamoDBStreamsClient, ddb: DynamoDBClient | None = None) -> None:
        self.streams = streams
        self.ddb = ddb

    def stream_arn(self, table: str) -> str:
        if self.ddb is None:
            raise ConfigError(f"table {table!r}: no DynamoDB client to look its stream up")
        return stream_arn_of(self.ddb, table)

    def list_shards(self, stream_arn: str, stop: threading.Event) -> list[Shard]:
        return list_shards(self.streams, stream_arn, stop)

    def child_shards(self, stream_arn: str, parent_id: str, stop: threading.Event) -> Children:
        return child_shards(self.streams, stream_arn, parent_id, stop)

    def prepare_reader(self) -> None:
        # GetRecords' body as the DynamoDB JSON it is, not botocore's per-attribute
        # conversion (connectors/sources/stream/get_records.py).
        keep_raw_body(self.streams)

    def get_shard_iterator(self, stream_arn: str, shard_id: str, position: str) -> str:
        kwargs: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard_id}
        kwargs.update(iterator_request(position, "SequenceNumber"))
        return str(self.streams.get_shard_iterator(**kwargs)["ShardIterator"])

    def get_records(self, stream_arn: str, iterator: str, limit: int) -> Mapping[str, Any]:
        return self.streams.get_records(ShardIterator=iterator, Limit=limit)

    def page(
        self, response: Mapping[str, Any], stream_arn: str, shard_id: str, position: str
    ) -> tuple[list[Any], str | None]:
        return read_text_page(response, f"stream {stream_arn} shard {shard_id}")

    def latest_position(self, shard: Shard) -> str | None:
        # No AT_TIMESTAMP iterator here; at most 24 h of records to read to the tip.
        return None


def as_transport(streams: Transport | DynamoDBStreamsClient) -> Transport:
    """`streams` as a Transport: a bare DynamoDB Streams client (or a test double of one)
    becomes the DynamoDB Streams transport, so existing callers keep working."""
    if isinstance(streams, Transport):
        return streams
    return DynamoDBStreamsTransport(streams)


__all__ = [
    "LATEST",
    "SENTINELS",
    "SHARD_END",
    "TRIM_HORIZON",
    "Batch",
    "Children",
    "DynamoDBStreamsTransport",
    "Shard",
    "ShardReader",
    "child_shards",
    "list_shards",
    "resolve_latest",
    "stream_arn_of",
]
