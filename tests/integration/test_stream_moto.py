"""The stream worker against the moto server (real DynamoDB + Streams HTTP API) and a real
Kafka: live writes, several workers sharing shards, a killed worker's shards
taken over after lease expiry."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op
from bridge.runtime.metrics import REGISTRY
from connectors.dynamodb.capture import read_capture
from connectors.sources.stream.leases import LeaseTable
from connectors.sources.stream.worker import StreamWorker
from tests.producer_fakes import HoldingProducer
from tests.samples import sample_item, to_boto_item
from tests.stream_helpers import (
    cli_env,
    create_stream_table,
    guard_checkpoints,
    launch_stream,
    read_stream,
    running,
    stop_process,
    stream_settings,
    wait_log,
    write_config,
)
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def consume_events(
    bootstrap: str, topics: list[str], expected_seqs: set[tuple[str, str]], timeout_s: float = 60
) -> list[ChangeEvent]:
    """Read the topics until every (table, sequence number) expected has been seen."""
    codec = EventCodec()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    events: list[ChangeEvent] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"consume error: {msg.error()}")
                events.append(codec.decode(msg.value()))
            seen = {(e.table, e.sequence_number) for e in events}
            if expected_seqs <= seen:
                return events
    finally:
        consumer.close()
    missing = expected_seqs - {(e.table, e.sequence_number) for e in events}
    raise AssertionError(
        f"{len(missing)} stream records never reached Kafka, e.g. {sorted(missing)[:3]}"
    )


def owners(ddb: Any, lease_table: str, arns: set[str]) -> Counter[str | None]:
    return Counter(lease.owner for lease in LeaseTable(ddb, lease_table, "reader", 1.0).list(arns))


def test_live_puts_updates_deletes_reach_kafka(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
) -> None:
    table = unique_name("live")
    arn = create_stream_table(ddb_client, table)
    settings = stream_settings(dynamodb_endpoint, kafka_bootstrap, [table], unique_name("leases"))
    worker = StreamWorker(settings, worker_id="solo")
    with running(worker) as outcome:
        assert worker.started.wait(30), outcome
        for i in range(30):
            ddb_client.put_item(TableName=table, Item=to_boto_item(sample_item(i, pad=10)))
        for i in range(0, 30, 3):
            ddb_client.update_item(
                TableName=table,
                Key={"pk": {"S": f"user#{i:07d}"}, "sk": {"N": str(i % 97)}},
                UpdateExpression="SET #n = :n",
                ExpressionAttributeNames={"#n": "name"},
                ExpressionAttributeValues={":n": {"S": f"renamed {i}"}},
            )
        for i in range(0, 30, 5):
            ddb_client.delete_item(
                TableName=table, Key={"pk": {"S": f"user#{i:07d}"}, "sk": {"N": str(i % 97)}}
            )
        records = read_stream(streams_client, arn)
        assert len(records) == 46
        last_seq = records[-1]["dynamodb"]["SequenceNumber"]
        leases = LeaseTable(ddb_client, settings.stream.lease_table, "reader", 1.0)
        wait_until(
            lambda: leases.list({arn})[0].checkpoint == last_seq, 30, "checkpoint at the end"
        )
    assert outcome.get("code") == 0, outcome

    expected = {(table, r["dynamodb"]["SequenceNumber"]) for r in records}
    events = consume_events(kafka_bootstrap, [settings.kafka.changes_topic(table)], expected)
    by_seq = {e.sequence_number: e for e in events}
    for record in records:
        event = by_seq[record["dynamodb"]["SequenceNumber"]]
        assert event.op == Op(record["eventName"])
        if event.op is Op.REMOVE:
            assert event.new_image is None and event.old_image is not None
        else:
            assert event.new_image is not None
            assert attrs.items_equal(
                event.new_image, attrs.from_boto(record["dynamodb"]["NewImage"])
            )
    first_put = by_seq[records[0]["dynamodb"]["SequenceNumber"]]
    assert first_put.new_image is not None
    assert attrs.items_equal(first_put.new_image, sample_item(0, pad=10))
    versions = [by_seq[r["dynamodb"]["SequenceNumber"]].version for r in records]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert REGISTRY.get("ddb_bridge_stream_records_published_total", table=table) == 46
    lease = LeaseTable(ddb_client, settings.stream.lease_table, "reader", 1.0).list({arn})[0]
    assert lease.owner is None and lease.last_version == versions[-1]


def test_two_then_three_workers_share_shards(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
) -> None:
    # moto gives every table exactly one shard: six tables make six shards to share.
    tables = {unique_name("share"): "" for _ in range(6)}
    for table in tables:
        tables[table] = create_stream_table(ddb_client, table)
    arns = set(tables.values())
    lease_table = unique_name("leases")
    # A roomy lease duration: renewals must not lapse when other test runs load the CPU.
    settings = stream_settings(
        dynamodb_endpoint, kafka_bootstrap, list(tables), lease_table, lease_duration_ms=3000
    )
    workers = [StreamWorker(settings, worker_id=f"w{i}") for i in range(3)]
    with running(workers[0]) as o0, running(workers[1]) as o1:
        assert workers[0].started.wait(30) and workers[1].started.wait(30), (o0, o1)
        wait_until(
            lambda: owners(ddb_client, lease_table, arns) in ({"w0": 3, "w1": 3},),
            30,
            "two workers holding three shards each",
        )
        with running(workers[2]) as o2:
            wait_until(
                lambda: owners(ddb_client, lease_table, arns) == {"w0": 2, "w1": 2, "w2": 2},
                30,
                "three workers holding two shards each",
            )
            time.sleep(2)  # stable: nobody steals back
            assert owners(ddb_client, lease_table, arns) == {"w0": 2, "w1": 2, "w2": 2}
            for table in tables:
                for i in range(5):
                    ddb_client.put_item(TableName=table, Item=to_boto_item(sample_item(i, pad=5)))
            expected = {
                (table, r["dynamodb"]["SequenceNumber"])
                for table, arn in tables.items()
                for r in read_stream(streams_client, arn)
            }
            assert len(expected) == 30
            events = consume_events(
                kafka_bootstrap, [settings.kafka.changes_topic(t) for t in tables], expected
            )
    for outcome in (o0, o1, o2):
        assert outcome.get("code") == 0, outcome
    versions: dict[tuple[str, str | None], set[int]] = {}
    for event in events:
        versions.setdefault((event.table, event.sequence_number), set()).add(event.version)
    assert all(len(v) == 1 for v in versions.values()), "a duplicate with another version"
    # Each shard was published by the worker that held it, and all were released at the end.
    assert owners(ddb_client, lease_table, arns) == {None: 6}


def test_killed_worker_shards_are_taken_over_after_expiry(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("kill")
    arn = create_stream_table(ddb_client, table)
    lease_table = unique_name("leases")
    duration_ms = 2000
    config = write_config(tmp_path / "bridge.toml", [table], lease_table, duration_ms)
    log_path = tmp_path / "stream.log"
    proc = launch_stream(
        config, cli_env(dynamodb_endpoint, kafka_bootstrap), log_path, "--worker-id", "victim"
    )
    try:
        wait_log(log_path, "stream started", proc)
        wait_until(lambda: owners(ddb_client, lease_table, {arn}) == {"victim": 1}, 30, "lease")
        for i in range(10):
            ddb_client.put_item(TableName=table, Item=to_boto_item(sample_item(i, pad=5)))
        settings = stream_settings(
            dynamodb_endpoint, kafka_bootstrap, [table], lease_table, duration_ms
        )
        survivor = StreamWorker(settings, worker_id="survivor")
        with running(survivor) as outcome:
            assert survivor.started.wait(30)
            time.sleep(1)
            # One shard, one live holder: the survivor must not steal it.
            assert owners(ddb_client, lease_table, {arn}) == {"victim": 1}
            killed_at = time.monotonic()
            stop_process(proc, signal.SIGKILL)
            wait_until(
                lambda: owners(ddb_client, lease_table, {arn}) == {"survivor": 1}, 30, "takeover"
            )
            took_after = time.monotonic() - killed_at
            for i in range(10, 20):
                ddb_client.put_item(TableName=table, Item=to_boto_item(sample_item(i, pad=5)))
            records = read_stream(streams_client, arn)
            expected = {(table, r["dynamodb"]["SequenceNumber"]) for r in records}
            assert len(expected) == 20
            events = consume_events(
                kafka_bootstrap, [settings.kafka.changes_topic(table)], expected
            )
    finally:
        if proc.poll() is None:
            stop_process(proc, signal.SIGKILL)
    assert outcome.get("code") == 0, outcome
    # Expiry is judged on the survivor's clock: a whole lease duration without renewal
    # (less the one renewal interval the victim may have missed before dying).
    assert took_after >= duration_ms / 1000 - 0.7, took_after
    assert took_after < 10, took_after
    versions: dict[str | None, set[int]] = {}
    for event in events:
        versions.setdefault(event.sequence_number, set()).add(event.version)
    assert all(len(v) == 1 for v in versions.values()), "a re-published record changed version"


def test_a_new_stream_arn_gets_new_leases_and_a_new_capture_record(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    # moto even reuses the shard id across streams: only the ARN in leaseKey tells them apart.
    table = unique_name("reenable")
    old_arn = create_stream_table(ddb_client, table)
    lease_table = unique_name("leases")
    settings = stream_settings(dynamodb_endpoint, "unused:9092", [table], lease_table)
    producer = HoldingProducer(arrive_after_polls=2)

    def worker() -> StreamWorker:
        publisher = Publisher(settings.kafka, producer=producer)
        made = StreamWorker(settings, worker_id="w", publisher=publisher, create_topics=False)
        guard_checkpoints(made.leases, producer)
        return made

    def published() -> list[str]:
        with producer.lock:
            return [EventCodec().decode(value).keys["pk"]["S"] for _t, _k, value in producer.sent]

    for i in range(3):
        ddb_client.put_item(TableName=table, Item={"pk": {"S": f"old{i}"}, "sk": {"N": "0"}})
    with running(worker()):
        wait_until(lambda: len(published()) == 3, 30, "the old stream's records")
        wait_until(
            lambda: (
                LeaseTable(ddb_client, lease_table, "r", 1.0).list({old_arn})[0].checkpoint
                != "TRIM_HORIZON"
            ),
            30,
            "a checkpoint on the old stream",
        )
    # moto cannot re-enable a disabled stream (StreamAlreadyEnabledException); re-creating the
    # table is the same situation for the worker: same table name, a new stream ARN.
    ddb_client.delete_table(TableName=table)
    new_arn = create_stream_table(ddb_client, table)
    assert new_arn != old_arn
    for i in range(2):
        ddb_client.put_item(TableName=table, Item={"pk": {"S": f"new{i}"}, "sk": {"N": "0"}})
    with running(worker()) as outcome:
        wait_until(lambda: len(published()) == 5, 30, "the new stream's records")
        time.sleep(0.3)
    assert outcome.get("code") == 0, outcome
    # Read from the new stream's TRIM_HORIZON, not from the old stream's checkpoint.
    assert published() == ["old0", "old1", "old2", "new0", "new1"]
    for arn in (old_arn, new_arn):
        capture = read_capture(ddb_client, lease_table, arn)
        assert capture is not None and capture.initial_position == "TRIM_HORIZON"
        assert capture.table == table and not capture.data_loss
    assert len(LeaseTable(ddb_client, lease_table, "r", 1.0).list({old_arn, new_arn})) == 2
