"""Where a table's change records are read from: DynamoDB Streams or Kinesis Data Streams.

A `Transport` is the seam between the stream reader's machinery (leases, lineage,
checkpoints, idle backoff, metrics: worker.py, leases.py, shards.ShardReader, all one class
each) and the service calls that differ: the stream's ARN for a table, listing shards, the
children of an ended shard, GetShardIterator / GetRecords, and turning a GetRecords page into
DynamoDB Streams records in wire form. `shards.DynamoDBStreamsTransport` is the original
reader's calls; `kinesis_transport.KinesisTransport` the Kinesis ones. The shard shapes both
share (`Shard`, `Children`, the checkpoint sentinels) live here too, so this module imports
no other part of the reader.

Delivery guarantee: none on its own; every error is raised (a botocore ClientError for the
reader's retry and backoff, or a ConfigError / PermanentError naming the table or shard).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.type_defs import SequenceNumberRangeTypeDef, ShardTypeDef

# Checkpoint sentinels, as the KCL writes them.
TRIM_HORIZON = "TRIM_HORIZON"
LATEST = "LATEST"
SHARD_END = "SHARD_END"
SENTINELS = frozenset({TRIM_HORIZON, LATEST, SHARD_END})


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    parent_ids: tuple[str, ...] = ()
    starting_sequence: str | None = None
    ending_sequence: str | None = None  # set once the shard is closed

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None

    @classmethod
    def from_description(cls, shard: ShardTypeDef | Mapping[str, Any]) -> Shard:
        """From DescribeStream's (DynamoDB) or ListShards' (Kinesis) shard: a Kinesis merge
        has two parents, `ParentShardId` and `AdjacentParentShardId`."""
        seq: SequenceNumberRangeTypeDef = shard.get("SequenceNumberRange") or {}
        parents = [shard.get("ParentShardId"), shard.get("AdjacentParentShardId")]
        return cls(
            shard_id=shard["ShardId"],
            parent_ids=tuple(str(p) for p in parents if p),
            starting_sequence=seq.get("StartingSequenceNumber"),
            ending_sequence=seq.get("EndingSequenceNumber"),
        )


@dataclass(frozen=True, slots=True)
class Children:
    shards: list[Shard]
    filtered: bool  # found by a ShardFilter call the endpoint honoured (else: a full listing)


class Transport(ABC):
    """The service calls of one kind of stream; the reader's machinery is shared."""

    # "dynamodb" or "kinesis", as `[stream] transport` names it.
    kind: ClassVar[str]
    # GetRecords' Limit: the largest page the service returns.
    page_limit: ClassVar[int]

    @abstractmethod
    def stream_arn(self, table: str) -> str:
        """The ARN of the stream carrying `table`'s changes (leases are keyed by it)."""

    @abstractmethod
    def list_shards(self, stream_arn: str, stop: threading.Event) -> list[Shard]:
        """Every shard of the stream, parents included while they are retained."""

    @abstractmethod
    def child_shards(self, stream_arn: str, parent_id: str, stop: threading.Event) -> Children:
        """The children of an ended shard (filtered call, else a full listing)."""

    @abstractmethod
    def get_shard_iterator(self, stream_arn: str, shard_id: str, position: str) -> str:
        """An iterator after `position` (a sequence number, TRIM_HORIZON or LATEST); raw:
        botocore's ClientError reaches the reader, which retries and translates."""

    @abstractmethod
    def get_records(self, stream_arn: str, iterator: str, limit: int) -> Mapping[str, Any]:
        """One raw GetRecords response."""

    @abstractmethod
    def page(
        self, response: Mapping[str, Any], stream_arn: str, shard_id: str, position: str
    ) -> tuple[list[Any], str | None]:
        """(DynamoDB Streams records, next iterator or None at a closed shard's end)."""

    @abstractmethod
    def prepare_reader(self) -> None:
        """Called once per ShardReader before its first call (idempotent)."""

    @abstractmethod
    def latest_position(self, shard: Shard) -> str | None:
        """A stable position meaning "from now on" for an open shard, without reading it; None
        when the service has none (then the shard is read to its tip to find one)."""


# A checkpoint of a shard no record of which was read yet, started at a moment (epoch ms):
# what LATEST resolves to on Kinesis (AT_TIMESTAMP iterator). DynamoDB Streams have no
# such iterator and never write it.
AT_TIMESTAMP_PREFIX = "AT_TIMESTAMP:"


def is_sequence_number(position: str) -> bool:
    return position.isdigit()


def iterator_request(position: str, sequence_field: str) -> dict[str, Any]:
    """GetShardIterator's type and sequence number for a checkpoint; `sequence_field` is
    the service's name for it (DynamoDB Streams: SequenceNumber; Kinesis:
    StartingSequenceNumber)."""
    if position in (TRIM_HORIZON, LATEST):
        return {"ShardIteratorType": position}
    if position.startswith(AT_TIMESTAMP_PREFIX):
        at_ms = int(position.removeprefix(AT_TIMESTAMP_PREFIX))
        return {
            "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": datetime.fromtimestamp(at_ms / 1000, UTC),
        }
    return {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", sequence_field: position}


__all__ = [
    "AT_TIMESTAMP_PREFIX",
    "LATEST",
    "SENTINELS",
    "SHARD_END",
    "TRIM_HORIZON",
    "Children",
    "Shard",
    "Transport",
]
