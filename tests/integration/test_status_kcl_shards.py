"""`status` on a table the Java KCL reads: the shards the bridge's KCL processor drives show
with the processor as owner and the checkpoint it recorded versions for, not as unleased."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest

from connectors.dynamodb.capture import ensure_lease_table, record_capture_start
from connectors.sources.migration_state import read_lease_table, stream_status
from connectors.sources.stream.kcl.versions import KclVersions
from connectors.sources.stream.shards import DynamoDBStreamsTransport
from tests.stream_helpers import create_stream_table, put_items

pytestmark = pytest.mark.integration


def test_a_shard_the_kcl_processor_checkpointed_is_shown_with_its_owner(
    dynamodb_endpoint: str, unique_name: Any
) -> None:
    table, leases = unique_name("kclstatus"), unique_name("kclstatus-leases")
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
    streams = boto3.client(
        "dynamodbstreams", endpoint_url=dynamodb_endpoint, region_name="us-east-1"
    )
    arn = create_stream_table(ddb, table)
    put_items(ddb, table, 0, 3)
    ensure_lease_table(ddb, leases)
    record_capture_start(ddb, leases, table, arn, "TRIM_HORIZON")
    transport = DynamoDBStreamsTransport(streams, ddb)
    (shard,) = transport.list_shards(arn, threading.Event())
    records = streams.get_records(
        ShardIterator=streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    )
    first = records["Records"][0]["dynamodb"]["SequenceNumber"]
    versions = KclVersions(ddb, leases, table, arn, shard.shard_id)
    versions.load("TRIM_HORIZON")
    versions.record(first, 1_790_000_000_000_000)

    status = stream_status(ddb, transport, read_lease_table(ddb, leases), table)
    assert status.unleased_shards == []
    (row,) = status.shards
    assert row.shard_id == shard.shard_id and row.owner == versions.fenced.owner
    assert row.checkpoint == first and row.checkpoint_age_s is not None
    assert row.unread == 2  # the two records after the checkpoint
