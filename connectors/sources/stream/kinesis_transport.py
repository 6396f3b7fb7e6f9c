"""Kinesis Data Streams as the stream reader's transport (Kinesis Data Streams for DynamoDB).

A table streaming to a Kinesis data stream puts each change there as a JSON document of the
DynamoDB Streams record's shape. This transport lists the stream's shards (`ListShards`,
paged by `NextToken`; a merged shard has two parents, `ParentShardId` and
`AdjacentParentShardId`), reads them (`GetShardIterator` / `GetRecords` by `StreamARN`, up
to 10,000 records a page) and turns each page into DynamoDB Streams records in wire form
(`kinesis_records.kinesis_page`), which the shared processor versions with
`KinesisVersioner`.

The children of an ended shard come with its last GetRecords page (`ChildShards`); a shard
whose end was met without them is resolved by a full listing. Kinesis ends a closed shard
with a null `NextShardIterator`; emulators (moto) keep answering empty pages instead, so an
empty page at or past a closed shard's `EndingSequenceNumber`, as the last listing reported
it, also ends it.

Delivery guarantee: none on its own; an unreadable record is a PermanentError naming the
stream, shard and sequence number.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bridge.runtime.settings import Settings
from connectors.dynamodb import aws
from connectors.dynamodb.aws import call_with_backoff, translate
from connectors.dynamodb.kinesis_stream import describe_kinesis_stream, kinesis_stream_name
from connectors.sources.stream.kinesis_records import kinesis_page
from connectors.sources.stream.shards import DynamoDBStreamsTransport
from connectors.sources.stream.transport import (
    AT_TIMESTAMP_PREFIX,
    Children,
    Shard,
    Transport,
    is_sequence_number,
    iterator_request,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_kinesis import KinesisClient

log = logging.getLogger(__name__)

# How far before "now" a LATEST start on Kinesis begins (see `latest_position`).
LATEST_LOOKBACK_MS = 5_000


class KinesisTransport(Transport):
    kind = "kinesis"
    page_limit = 10_000

    def __init__(self, kinesis: KinesisClient, settings: Settings) -> None:
        self.kinesis = kinesis
        self.settings = settings
        self._lock = threading.Lock()
        # Closed shards as the last listing saw them: (stream ARN, shard id) -> shard.
        self._closed: dict[tuple[str, str], Shard] = {}
        # Children reported by an ended shard's last GetRecords page.
        self._children: dict[tuple[str, str], list[Shard]] = {}

    # -- the stream ------------------------------------------------------------------------

    def stream_arn(self, table: str) -> str:
        # Kinesis records carry both images (no view type to check, unlike DynamoDB Streams).
        name = kinesis_stream_name(self.settings, table)
        return describe_kinesis_stream(self.kinesis, name, table).arn

    # -- shards ----------------------------------------------------------------------------

    def list_shards(self, stream_arn: str, stop: threading.Event) -> list[Shard]:
        shards: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamARN": stream_arn}
        while True:
            try:
                page = call_with_backoff(
                    functools.partial(self.kinesis.list_shards, **kwargs), "ListShards", stop
                )
            except ClientError as exc:
                raise translate(exc, f"ListShards {stream_arn}") from exc
            shards.extend(Shard.from_description(s) for s in page.get("Shards", []))
            token = page.get("NextToken")
            if not token:
                break
            # A NextToken names the stream itself: Kinesis refuses both together.
            kwargs = {"NextToken": token}
        with self._lock:
            for shard in shards:
                if shard.closed:
                    self._closed[(stream_arn, shard.shard_id)] = shard
        return shards

    def child_shards(self, stream_arn: str, parent_id: str, stop: threading.Event) -> Children:
        with self._lock:
            reported = self._children.pop((stream_arn, parent_id), None)
        if reported:
            return Children(reported, filtered=True)
        # Kinesis' ListShards has no filter by parent: without the last page's ChildShards
        # (an emulator, or a reader restarted at the end), the stream is listed in full.
        every = self.list_shards(stream_arn, stop)
        return Children([s for s in every if parent_id in s.parent_ids], filtered=False)

    # -- reading ---------------------------------------------------------------------------

    def prepare_reader(self) -> None:
        # Nothing to set up: Kinesis' Data is a blob botocore decodes, and the DynamoDB
        # Streams raw-body hook (get_records.keep_raw_body) is never put on this client.
        return

    def get_shard_iterator(self, stream_arn: str, shard_id: str, position: str) -> str:
        kwargs: dict[str, Any] = {"StreamARN": stream_arn, "ShardId": shard_id}
        kwargs.update(iterator_request(position, "StartingSequenceNumber"))
        return str(self.kinesis.get_shard_iterator(**kwargs)["ShardIterator"])

    def get_records(self, stream_arn: str, iterator: str, limit: int) -> Mapping[str, Any]:
        return self.kinesis.get_records(
            ShardIterator=iterator, Limit=min(limit, self.page_limit), StreamARN=stream_arn
        )

    def page(
        self, response: Mapping[str, Any], stream_arn: str, shard_id: str, position: str
    ) -> tuple[list[Any], str | None]:
        records = kinesis_page(response.get("Records", []), f"stream {stream_arn} shard {shard_id}")
        following: str | None = response.get("NextShardIterator")
        if following is None:
            children = [
                Shard(shard_id=c["ShardId"], parent_ids=tuple(c.get("ParentShards", ())))
                for c in response.get("ChildShards", [])
            ]
            if children:
                with self._lock:
                    self._children[(stream_arn, shard_id)] = children
        elif not records and self._past_end(stream_arn, shard_id, position):
            log.info(
                "closed shard read to its ending sequence number: shard end",
                extra={"stream": stream_arn, "shard": shard_id},
            )
            following = None
        return records, following

    def latest_position(self, shard: Shard) -> str | None:
        # A little before now: a record that arrived as the capture started is read rather
        # than skipped under clock skew between this host and Kinesis' arrival timestamps
        # (an extra, older change is harmless: it carries its own version).
        return f"{AT_TIMESTAMP_PREFIX}{int(time.time() * 1000) - LATEST_LOOKBACK_MS}"

    def _past_end(self, stream_arn: str, shard_id: str, position: str) -> bool:
        with self._lock:
            shard = self._closed.get((stream_arn, shard_id))
        if shard is None or shard.ending_sequence is None:
            return False
        end = int(shard.ending_sequence)
        if not is_sequence_number(position):
            # Read from the start and found nothing: only an empty closed shard is at its end.
            return shard.starting_sequence is not None and end <= int(shard.starting_sequence)
        return int(position) >= end


def make_transport(
    settings: Settings,
    ddb: DynamoDBClient,
    streams: DynamoDBStreamsClient | None = None,
    kinesis: KinesisClient | None = None,
) -> Transport:
    """The `[stream] transport` the settings choose, on the given (or new) clients."""
    if settings.stream.transport == "kinesis":
        return KinesisTransport(
            kinesis if kinesis is not None else aws.client("kinesis", settings.aws), settings
        )
    return DynamoDBStreamsTransport(
        streams if streams is not None else aws.client("dynamodbstreams", settings.aws), ddb
    )


__all__ = ["KinesisTransport", "make_transport"]
