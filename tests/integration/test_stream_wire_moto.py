"""The stream worker reading GetRecords' JSON body (get_records.py) against the moto server
and a real Kafka: it publishes byte for byte what the boto3 path makes of the same records,
and GetRecords' errors still reach the reader as ClientErrors with their codes."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bridge.codec.avro import EventCodec
from bridge.model.event import ChangeEvent
from bridge.model.versioning import StreamVersioner
from connectors.sources.stream.get_records import RAW_BODY, WireRecords, keep_raw_body
from connectors.sources.stream.leases import LeaseTable
from connectors.sources.stream.shards import TRIM_HORIZON, ShardReader
from connectors.sources.stream.worker import StreamWorker
from tests.kafka_helpers import consume_all
from tests.samples import EXTREME_NUMBERS, sample_item, to_boto_item
from tests.stream_helpers import create_stream_table, read_stream, running, stream_settings
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def own_streams_client(endpoint: str) -> Any:
    return boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")


def write_changes(ddb: Any, table: str, count: int) -> None:
    for i in range(count):
        item = sample_item(i, pad=5)
        item["edge"] = {"N": EXTREME_NUMBERS[i % len(EXTREME_NUMBERS)]}
        ddb.put_item(TableName=table, Item=to_boto_item(item))
    for i in range(0, count, 4):
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": f"user#{i:07d}"}, "sk": {"N": str(i % 97)}},
            UpdateExpression="SET #b = :b",
            ExpressionAttributeNames={"#b": "blob"},
            ExpressionAttributeValues={":b": {"B": bytes([i, 255, 0, 7])}},
        )
    for i in range(0, count, 5):
        ddb.delete_item(
            TableName=table, Key={"pk": {"S": f"user#{i:07d}"}, "sk": {"N": str(i % 97)}}
        )


def test_get_records_returns_the_body_and_errors_stay_client_errors(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    table = unique_name("wirebody")
    arn = create_stream_table(ddb_client, table)
    write_changes(ddb_client, table, 3)
    streams = own_streams_client(dynamodb_endpoint)
    plain = own_streams_client(dynamodb_endpoint)
    assert keep_raw_body(streams) and keep_raw_body(streams)  # idempotent
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    page = streams.get_records(ShardIterator=iterator)
    assert page.get("Records") is None and b'"Records"' in page[RAW_BODY]
    # Only the client it was registered on: another client still parses.
    assert plain.get_records(ShardIterator=iterator)["Records"]
    with pytest.raises(ClientError) as caught:
        streams.get_records(ShardIterator="not-an-iterator")
    with pytest.raises(ClientError) as unhooked:
        plain.get_records(ShardIterator="not-an-iterator")
    # The error as a client without the hook sees it (tests/unit/test_get_records_errors.py
    # does the same for throttling, expired iterators and trimmed data).
    error = caught.value.response["Error"]
    assert error["Code"] and error["Message"], error
    assert error == unhooked.value.response["Error"]
    assert type(caught.value).__name__ == type(unhooked.value).__name__

    import threading

    reader = ShardReader(streams, arn, shard, TRIM_HORIZON, threading.Event())
    batch = reader.read()
    assert isinstance(batch.records, WireRecords) and len(batch.records) == 5
    assert reader.position == batch.records[-1]["dynamodb"]["SequenceNumber"]


def test_worker_on_the_wire_path_publishes_what_the_boto3_path_would(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
) -> None:
    table = unique_name("wire")
    arn = create_stream_table(ddb_client, table)
    settings = stream_settings(dynamodb_endpoint, kafka_bootstrap, [table], unique_name("leases"))
    worker = StreamWorker(settings, worker_id=f"wire-{uuid.uuid4().hex[:4]}")
    with running(worker) as outcome:
        assert worker.started.wait(30), outcome
        write_changes(ddb_client, table, 24)
        # The fixture's client has no hook: botocore's parsed records, the boto3 path.
        records = read_stream(streams_client, arn)
        assert len(records) == 24 + 6 + 5
        leases = LeaseTable(ddb_client, settings.stream.lease_table, "reader", 1.0)
        last = records[-1]["dynamodb"]["SequenceNumber"]
        wait_until(lambda: leases.list({arn})[0].checkpoint == last, 30, "checkpoint at the end")
    assert outcome.get("code") == 0, outcome

    codec = EventCodec()
    versioner = StreamVersioner(0)  # one shard, no parents: the worker starts from 0
    shard_id = leases.list({arn})[0].shard_id
    expected = set()
    for record in records:
        version = versioner.next(record["dynamodb"]["ApproximateCreationDateTime"])
        event = ChangeEvent.from_stream_record(table, record, version, shard_id)
        expected.add((event.key_bytes(), codec.encode(event)))
    messages = consume_all(kafka_bootstrap, settings.kafka.changes_topic(table), len(records))
    published = {(m.key(), m.value()) for m in messages}
    assert published == expected
