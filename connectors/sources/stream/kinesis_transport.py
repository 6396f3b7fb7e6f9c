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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bridge.errors import ConfigError
from bridge.settings import Settings
from connectors.dynamodb.aws import call_with_backoff, error_code, translate
from connectors.sources.stream.kinesis_records import kinesis_page
from connectors.sources.stream.transport import (
    LATEST,
    TRIM_HORIZON,
    Children,
    Shard,
    Transport,
    iterator_request,
)

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

log = logging.getLogger(__name__)

NAME_HINT = (
    'set [stream] stream_name = "<kinesis stream>" (or kinesis_stream in the table\'s '
    "[[tables]] entry)"
)


def _stream_ref(name: str) -> dict[str, str]:
    """DescribeStreamSummary's argument: a configured name may also be a full ARN."""
    return {"StreamARN": name} if name.startswith("arn:") else {"StreamName": name}


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
        self._summaries: dict[str, Mapping[str, Any]] = {}

    # -- the stream ------------------------------------------------------------------------

    def stream_name(self, table: str) -> str:
        """The configured Kinesis stream of `table`; ConfigError naming the fix when none."""
        for conf in self.settings.tables:
            if conf.name == table and conf.kinesis_stream:
                return conf.kinesis_stream
        if self.settings.stream.stream_name:
            return self.settings.stream.stream_name
        raise ConfigError(
            f'table {table!r}: [stream] transport = "kinesis" needs the Kinesis data stream '
            f"the table streams to; {NAME_HINT}"
        )

    def describe(self, name: str, table: str | None = None) -> Mapping[str, Any]:
        """DescribeStreamSummary of a configured stream (name or ARN)."""
        try:
            summary: Mapping[str, Any] = call_with_backoff(
                lambda: self.kinesis.describe_stream_summary(**_stream_ref(name))[
                    "StreamDescriptionSummary"
                ],
                "DescribeStreamSummary",
            )
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                whose = f"table {table!r}: " if table else ""
                raise ConfigError(
                    f"{whose}Kinesis data stream {name!r} does not exist; create it and turn "
                    "on Kinesis streaming for the table (aws dynamodb "
                    "enable-kinesis-streaming-destination --table-name <table> --stream-arn "
                    f"<arn>), or {NAME_HINT}"
                ) from exc
            raise translate(exc, f"DescribeStreamSummary {name}") from exc
        self._summaries[str(summary["StreamARN"])] = summary
        return summary

    def stream_arn(self, table: str) -> str:
        # Kinesis records carry both images (no view type to check, unlike DynamoDB Streams).
        return str(self.describe(self.stream_name(table), table)["StreamARN"])

    def retention_ms(self, stream_arn: str) -> int:
        summary = self.describe(stream_arn)
        return int(summary["RetentionPeriodHours"]) * 3600 * 1000

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
        kwargs.update(iterator_request(position))
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

    def _past_end(self, stream_arn: str, shard_id: str, position: str) -> bool:
        with self._lock:
            shard = self._closed.get((stream_arn, shard_id))
        if shard is None or shard.ending_sequence is None:
            return False
        end = int(shard.ending_sequence)
        if position in (TRIM_HORIZON, LATEST):
            # Read from the start and found nothing: only an empty closed shard is at its end.
            return shard.starting_sequence is not None and end <= int(shard.starting_sequence)
        return int(position) >= end


__all__ = ["KinesisTransport"]
