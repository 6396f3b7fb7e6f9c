"""The Kinesis transport against a scripted Kinesis client, for what moto does not do:
ListShards paging (NextToken without the stream), a closed shard's null NextShardIterator
with ChildShards, expired iterators re-acquired after the last record, throttling retried,
and the raw-body hook of DynamoDB Streams never put on the Kinesis client."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bridge.runtime.settings import Settings, StreamSettings
from connectors.sources.stream.get_records import keep_raw_body
from connectors.sources.stream.kinesis_transport import KinesisTransport
from connectors.sources.stream.shards import TRIM_HORIZON, ShardReader
from tests.kinesis_records import kinesis_data

ARN = "arn:aws:kinesis:us-east-1:1:stream/s"
BASE_US = 1_767_225_600_000_000


def error(code: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, op)


def record(seq: int) -> dict[str, Any]:
    data = kinesis_data(
        "INSERT",
        {"pk": {"S": f"k{seq}"}},
        new_image={"pk": {"S": f"k{seq}"}},
        table="t",
        created_us=BASE_US + seq,
    )
    return {"SequenceNumber": str(seq), "Data": data, "PartitionKey": f"k{seq}"}


class ScriptedKinesis:
    """Shard `shardId-0` holds records 1..4 and is closed; its children are 1 and 2."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_next: list[ClientError] = []

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    def list_shards(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("ListShards", kw))
        if "NextToken" not in kw:
            assert kw == {"StreamARN": ARN}
            return {
                "Shards": [
                    {
                        "ShardId": "shardId-0",
                        "SequenceNumberRange": {
                            "StartingSequenceNumber": "1",
                            "EndingSequenceNumber": "4",
                        },
                    }
                ],
                "NextToken": "page-2",
            }
        assert kw == {"NextToken": "page-2"}, "Kinesis refuses StreamARN with NextToken"
        return {
            "Shards": [
                {"ShardId": "shardId-1", "ParentShardId": "shardId-0"},
                {
                    "ShardId": "shardId-2",
                    "ParentShardId": "shardId-0",
                    "AdjacentParentShardId": "shardId-9",
                },
            ]
        }

    def get_shard_iterator(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("GetShardIterator", kw))
        self._maybe_fail()
        after = int(kw.get("StartingSequenceNumber", 0))
        return {"ShardIterator": str(after)}

    def get_records(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("GetRecords", kw))
        self._maybe_fail()
        after = int(kw["ShardIterator"])
        seqs = [s for s in range(1, 5) if s > after][:2]
        if not seqs:
            return {
                "Records": [],
                "NextShardIterator": None,
                "ChildShards": [
                    {"ShardId": "shardId-1", "ParentShards": ["shardId-0"]},
                    {"ShardId": "shardId-2", "ParentShards": ["shardId-0"]},
                ],
            }
        return {"Records": [record(s) for s in seqs], "NextShardIterator": str(seqs[-1])}


def transport(client: ScriptedKinesis) -> KinesisTransport:
    settings = Settings(stream=StreamSettings(transport="kinesis", stream_name="s"))
    return KinesisTransport(client, settings)  # type: ignore[arg-type]


def test_list_shards_pages_with_the_token_alone_and_keeps_both_parents() -> None:
    kinesis = ScriptedKinesis()
    shards = transport(kinesis).list_shards(ARN, threading.Event())
    assert [s.shard_id for s in shards] == ["shardId-0", "shardId-1", "shardId-2"]
    assert shards[0].closed and shards[0].ending_sequence == "4"
    assert shards[2].parent_ids == ("shardId-0", "shardId-9")


def test_reader_reads_to_the_null_iterator_and_children_come_from_child_shards() -> None:
    kinesis = ScriptedKinesis()
    kt = transport(kinesis)
    reader = ShardReader(kt, ARN, "shardId-0", TRIM_HORIZON, threading.Event())
    assert reader.limit == 10_000
    seqs: list[str] = []
    while True:
        batch = reader.read()
        seqs += [r["dynamodb"]["SequenceNumber"] for r in batch.records]
        if batch.end:
            break
    assert seqs == ["1", "2", "3", "4"]
    assert all(kw.get("StreamARN") == ARN for op, kw in kinesis.calls if op == "GetRecords")
    listed_before = sum(1 for op, _ in kinesis.calls if op == "ListShards")
    children = kt.child_shards(ARN, "shardId-0", threading.Event())
    assert children.filtered and [c.shard_id for c in children.shards] == [
        "shardId-1",
        "shardId-2",
    ]
    assert sum(1 for op, _ in kinesis.calls if op == "ListShards") == listed_before
    # Asked again (e.g. after a restart): the stream is listed in full.
    again = kt.child_shards(ARN, "shardId-0", threading.Event())
    assert not again.filtered and {c.shard_id for c in again.shards} == {"shardId-1", "shardId-2"}


def test_expired_iterator_resumes_after_the_last_record_and_throttling_is_retried() -> None:
    kinesis = ScriptedKinesis()
    reader = ShardReader(transport(kinesis), ARN, "shardId-0", TRIM_HORIZON, threading.Event())
    assert [r["dynamodb"]["SequenceNumber"] for r in reader.read().records] == ["1", "2"]
    kinesis.fail_next = [
        error("ExpiredIteratorException", "GetRecords"),
        error("ProvisionedThroughputExceededException", "GetShardIterator"),
    ]
    assert [r["dynamodb"]["SequenceNumber"] for r in reader.read().records] == ["3", "4"]
    reacquired = [kw for op, kw in kinesis.calls if op == "GetShardIterator"][-1]
    assert reacquired == {
        "StreamARN": ARN,
        "ShardId": "shardId-0",
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "StartingSequenceNumber": "2",
    }


def test_records_are_wire_records_with_exact_times() -> None:
    kinesis = ScriptedKinesis()
    reader = ShardReader(transport(kinesis), ARN, "shardId-0", TRIM_HORIZON, threading.Event())
    rec = reader.read().records[0]
    created = rec["dynamodb"]["ApproximateCreationDateTime"]
    assert int(created.timestamp()) * 1_000_000 + created.microsecond == BASE_US + 1
    assert rec["tableName"] == "t" and rec["dynamodb"]["Keys"] == {"pk": {"S": "k1"}}


def test_unreadable_data_names_the_shard_and_sequence() -> None:
    kinesis = ScriptedKinesis()
    kt = transport(kinesis)
    page = {"Records": [{"SequenceNumber": "77", "Data": b"not json"}], "NextShardIterator": "x"}
    with pytest.raises(Exception, match=r"shardId-0.*77|77.*shardId-0"):
        kt.page(page, ARN, "shardId-0", TRIM_HORIZON)


def test_the_dynamodb_streams_raw_body_hook_is_not_put_on_the_kinesis_client() -> None:
    import boto3

    client = boto3.client(
        "kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    settings = Settings(stream=StreamSettings(transport="kinesis", stream_name="s"))
    reader = ShardReader(
        KinesisTransport(client, settings), ARN, "shardId-0", TRIM_HORIZON, threading.Event()
    )
    assert reader.limit == 10_000
    # Registered by unique id (get_records.keep_raw_body): none on this client.
    emitter = client.meta.events._emitter
    assert "ddb-bridge-get-records-raw-body" not in emitter._unique_id_handlers
    # ...which is where keep_raw_body would have put it.
    keep_raw_body(client)
    assert "ddb-bridge-get-records-raw-body" in emitter._unique_id_handlers
