"""Has every record of the DynamoDB stream reached Kafka? Its positions, counted on both sides.

The demo and the end-to-end tests wait for this before they wait for apply's lag to reach 0:
"caught up" is then exact, not a guess from a quiet period.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.codec.avro import EventCodec
from bridge.model.event import Origin

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_dynamodbstreams.type_defs import ShardTypeDef


class SeenPositions:
    """A `TopicTail` callback (demo/topic_tail.py): (shard, sequence number) of each event read."""

    def __init__(self, codec: EventCodec | None = None) -> None:
        self.positions: set[tuple[str, str]] = set()
        self.other_origins = 0  # events not from the stream: the back-fill's
        self._codec = codec or EventCodec()

    def __call__(self, value: bytes) -> None:
        event = self._codec.decode(value)
        if event.origin is not Origin.STREAM:
            self.other_origins += 1
        elif event.shard_id and event.sequence_number:
            self.positions.add((event.shard_id, event.sequence_number))


def stream_positions(client: DynamoDBStreamsClient, stream_arn: str) -> set[tuple[str, str]]:
    """(shard, sequence number) of every record the stream holds now (writers stopped)."""
    shards: list[ShardTypeDef] = []
    kwargs: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        desc = client.describe_stream(**kwargs)["StreamDescription"]
        shards.extend(desc["Shards"])
        last = desc.get("LastEvaluatedShardId")
        if not last:
            break
        kwargs["ExclusiveStartShardId"] = last
    found: set[tuple[str, str]] = set()
    for shard in shards:
        iterator = client.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        ).get("ShardIterator")
        while iterator:
            resp = client.get_records(ShardIterator=iterator, Limit=1000)
            for record in resp["Records"]:
                found.add((shard["ShardId"], record["dynamodb"]["SequenceNumber"]))
            if not resp["Records"]:
                break
            iterator = resp.get("NextShardIterator")
    return found
