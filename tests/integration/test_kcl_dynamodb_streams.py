"""KCL 3 through the DynamoDB Streams Kinesis Adapter (the project's launcher, built by Maven)
driving the bridge's record processor, on moto's DynamoDB Streams, a real Kafka broker.

Every event the daemon publishes must be byte for byte the event the native reader makes of
the same stream record (the native reader's own code, `DynamoDBStreamsTransport` and
`KafkaRecordProcessor`, run over the whole stream after the fact), copies included: a kill -9
in the middle of the stream and a restart change no version and leave no gap. The DynamoDB
Streams client speaks HTTP/1.1 JSON to moto directly: no h2c front, no scripted call.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
import pytest

from bridge.kafka.publisher import Publisher
from bridge.runtime.settings import KafkaSettings
from connectors.dynamodb.capture import read_capture
from connectors.sources.stream.kcl.versions import entries_of, read_item, versions_key
from connectors.sources.stream.processor import KafkaRecordProcessor
from connectors.sources.stream.shards import DynamoDBStreamsTransport, ShardReader
from tests.kafka_helpers import read_to_end
from tests.kcl_helpers import (
    Daemon,
    kcl_lease_checkpoints,
    require_streams_daemon,
    write_streams_properties,
)
from tests.producer_fakes import HoldingProducer
from tests.stream_helpers import (
    cli_env,
    create_stream_table,
    launch_stream,
    stop_process,
    wait_for,
    write_config,
)
from tests.streams_front import ScriptedStream, streams_front

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# The KCL's waits, shortened for a test (see test_kcl_daemon.py); small pages, so the kill
# lands between checkpoints inside a burst.
FAST = [
    "--set",
    "failoverTimeMillis=3000",
    "--set",
    "idleTimeBetweenReadsInMillis=200",
    "--set",
    "parentShardPollIntervalMillis=1000",
    "--set",
    "maxRecords=10",
]


class _NoCheckpoints:
    last = "TRIM_HORIZON"

    def checkpoint(
        self, position: str, last_version: int | None, item_versions: bytes = b""
    ) -> None:
        self.last = position


def native_events(endpoint: str, arn: str, table: str) -> dict[str, bytes]:
    """Sequence number -> the event value the native reader publishes for that record: its
    transport, shard reader and record processor over every shard from TRIM_HORIZON."""
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
    transport = DynamoDBStreamsTransport(streams)
    transport.prepare_reader()  # as the native worker does: GetRecords' body as it is
    producer = HoldingProducer()
    publisher = Publisher(KafkaSettings(bootstrap_servers="unused:9092"), producer=producer)  # type: ignore[arg-type]
    from connectors.sources.stream.processor import InitializationInput

    for shard in transport.list_shards(arn, threading.Event()):
        assert not shard.parent_ids, "moto presents one shard per stream"
        processor = KafkaRecordProcessor(publisher, transport="dynamodb")
        processor.initialize(InitializationInput(table, arn, shard.shard_id, "TRIM_HORIZON", 0))
        reader = ShardReader(transport, arn, shard.shard_id, "TRIM_HORIZON", threading.Event())
        while True:
            batch = reader.read()
            if not batch.records:
                break
            processor.process_records(batch.records, _NoCheckpoints())
    from bridge.codec.avro import EventCodec

    codec = EventCodec()
    return {codec.decode(value).sequence_number: value for _t, _k, value in producer.sent}


def write_history(ddb: Any, table: str, first: int, n: int) -> None:
    """`n` writes over 25 items: inserts, updates, deletes, every attribute type."""
    for i in range(first, first + n):
        key = {"pk": {"S": f"item-{i % 25}"}, "sk": {"N": "1"}}
        if i % 7 == 6:
            ddb.delete_item(TableName=table, Key=key)
            continue
        ddb.put_item(
            TableName=table,
            Item={
                **key,
                "n": {"N": str(i)},
                "s": {"S": f"v{i} ünïcode"},
                "b": {"B": bytes([i % 256, 0, 255])},
                "ok": {"BOOL": i % 2 == 0},
                "nil": {"NULL": True},
                "ss": {"SS": ["a", f"s{i}"]},
                "ns": {"NS": ["1", str(i)]},
                "bs": {"BS": [b"\x01", bytes([i % 256])]},
                "m": {"M": {"z": {"N": "1.50"}, "a": {"L": [{"S": "x"}, {"N": "-0"}]}}},
                "empty": {"L": []},
            },
        )


def events_by_sequence(bootstrap: str, topic: str) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    try:
        messages = read_to_end(bootstrap, topic)
    except RuntimeError as exc:
        if "UNKNOWN_TOPIC_OR_PART" not in str(exc):
            raise
        return out
    from bridge.codec.avro import EventCodec

    codec = EventCodec()
    for m in messages:
        out[codec.decode(m.value()).sequence_number].append(m.value())
    return out


def test_the_adapter_daemon_publishes_the_native_events_and_resumes_after_kill_9(
    dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    require_streams_daemon()
    table = unique_name("kcl3")
    lease_table, app = f"{table}-leases", f"ddb-bridge-{table}"
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
    arn = create_stream_table(ddb, table)
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[aws]\nregion = "us-east-1"\n\n[kafka]\npartitions = 3\nreplication_factor = 1\n'
        f'linger_ms = 5\n\n[[tables]]\nname = "{table}"\n\n'
        f'[stream]\nlease_table = "{lease_table}"\n'
    )
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    topic = KafkaSettings(bootstrap_servers=kafka_bootstrap).changes_topic(table)
    write_history(ddb, table, 0, 60)
    props = write_streams_properties(tmp_path, env, config, table, *FAST)
    assert f"dynamoDBStreamArn = {arn}" in props.read_text()

    daemon = Daemon(props, env, tmp_path / "daemon1.log", transport="dynamodb-streams")
    try:
        want = set(native_events(dynamodb_endpoint, arn, table))
        wait_for(
            lambda: want <= set(events_by_sequence(kafka_bootstrap, topic)) or not daemon.alive(),
            timeout_s=120,
            what="the first writes in Kafka",
        )
        assert daemon.alive(), daemon.text()[-4000:]
        took = time.monotonic() - daemon.started
        print(f"daemon start-up to {len(want)} records in Kafka: {took:.1f}s")
        # A checkpoint reached the KCL's lease table (one shard: moto's stream has one).
        wait_for(
            lambda: any(c.isdigit() for c in kcl_lease_checkpoints(ddb, app).values()),
            timeout_s=30,
            what="a KCL checkpoint",
        )
        (shard,) = kcl_lease_checkpoints(ddb, app)
        # 2. A burst, and a kill -9 of the daemon and its processors as soon as the KCL's
        # checkpoint is inside it: what follows the checkpoint is read again after the restart.
        before = set(native_events(dynamodb_endpoint, arn, table))
        write_history(ddb, table, 60, 200)
        inside = set(native_events(dynamodb_endpoint, arn, table)) - before
        wait_for(
            lambda: (kcl_lease_checkpoints(ddb, app).get(shard) in inside) or not daemon.alive(),
            timeout_s=60,
            what="a KCL checkpoint inside the burst",
        )
        assert daemon.alive(), daemon.text()[-4000:]
    finally:
        daemon.kill()
    at_kill = kcl_lease_checkpoints(ddb, app)[shard]
    assert at_kill in inside  # the kill was mid-stream
    # The versions stored for that checkpoint are the native reader's version of its record.
    stored = {
        e.sequence: e.last_version
        for e in entries_of(read_item(ddb, lease_table, versions_key(arn, shard)))
    }
    from bridge.codec.avro import EventCodec

    expected = native_events(dynamodb_endpoint, arn, table)
    assert stored[at_kill] == EventCodec().decode(expected[at_kill]).version

    # 3. Writes while it is down, then a restart: it resumes from its checkpoint.
    write_history(ddb, table, 260, 40)
    daemon2 = Daemon(props, env, tmp_path / "daemon2.log", transport="dynamodb-streams")
    try:
        expected = native_events(dynamodb_endpoint, arn, table)
        wait_for(
            lambda: (
                set(expected) <= set(events_by_sequence(kafka_bootstrap, topic))
                or not daemon2.alive()
            ),
            timeout_s=120,
            what="every record in Kafka after the restart",
        )
        assert daemon2.alive(), daemon2.text()[-4000:]
    finally:
        daemon2.kill()
    published = events_by_sequence(kafka_bootstrap, topic)
    missing = sorted(set(expected) - set(published), key=int)
    assert not missing, f"{len(missing)} records never reached Kafka: {missing[:5]}"
    # Byte for byte the native reader's event, every copy of it (no version changed).
    differ = [s for s, values in published.items() if any(v != expected[s] for v in values)]
    assert differ == [], f"{len(differ)} records differ from the native reader's, e.g. {differ[:3]}"
    # Resumed from the checkpoint, not from the start: nothing at or before it came again.
    again = [s for s, values in published.items() if int(s) <= int(at_kill) and len(values) > 1]
    assert again == [], f"re-published at or before the checkpoint {at_kill}: {again[:5]}"
    assert f"checkpoint={at_kill}" in daemon2.text(), daemon2.text()[-3000:]
    # The capture record, keyed by the DynamoDB stream's ARN, as the native reader writes it.
    capture = read_capture(ddb, lease_table, arn)
    assert capture is not None and capture.table == table
    print(
        f"records: {len(expected)}; re-published after the restart: "
        f"{sum(1 for v in published.values() if len(v) > 1)}"
    )
    # `status` shows the shard the KCL drove, with its processor and checkpoint: not unleased.
    from connectors.sources.migration_state import read_lease_table, stream_status

    streams = boto3.client(
        "dynamodbstreams", endpoint_url=dynamodb_endpoint, region_name="us-east-1"
    )
    status = stream_status(
        ddb, DynamoDBStreamsTransport(streams, ddb), read_lease_table(ddb, lease_table), table
    )
    assert status.captured_since_ms is not None and status.unleased_shards == []
    (row,) = status.shards
    assert row.shard_id == shard and (row.owner or "").startswith("kcl-"), row
    assert row.checkpoint.isdigit() and row.checkpoint_age_s is not None, row


def test_a_split_is_read_parent_first_into_the_native_readers_events(
    dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    """A closed parent and two children, on the scripted front (moto has no split): the KCL
    path publishes every record as the native reader (`ddb-bridge stream`) does, a child's
    versions after its parent's even where its clock reads earlier."""
    require_streams_daemon()
    table = unique_name("kcl3split")
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
    arn = create_stream_table(ddb, table)  # the table and its ARN stay moto's
    stream = ScriptedStream(arn, table)
    parent, left, right = (f"shardId-0000000179000000000{n}-{n}a{n}b{n}c{n}d" for n in (1, 2, 3))
    stream.add_shard(parent)
    stream.add_shard(left, parent)
    stream.add_shard(right, parent)
    base = 1_790_000_100
    for i in range(40):  # the parent: every item's first changes, one second apart
        key = {"pk": {"S": f"item-{i % 8}"}, "sk": {"N": "1"}}
        stream.put(parent, "MODIFY", key, base + i // 4, new={**key, "v": {"N": str(i)}})
    stream.shards[parent].closed = True
    for i in range(40, 80):  # the children: DynamoDB's seconds, some earlier than the parent's
        key = {"pk": {"S": f"item-{i % 8}"}, "sk": {"N": "1"}}
        shard = left if i % 8 < 4 else right
        stream.put(shard, "MODIFY", key, base + (i - 40) // 8, new={**key, "v": {"N": str(i)}})
    want = {r["dynamodb"]["SequenceNumber"] for s in stream.shards.values() for r in s.records}
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)

    def config(name: str) -> Path:
        return write_config(
            tmp_path / f"{name}.toml",
            [table],
            f"{table}-{name}-leases",
            aws={"endpoints": {"dynamodbstreams": front}},
            kafka={"topic_prefix": f"{name}."},
        )

    with streams_front(stream) as front:
        kcl_config = config("kcl")
        props = write_streams_properties(tmp_path, env, kcl_config, table, *FAST)
        assert f"dynamoDBStreamsEndpoint = {front}" in props.read_text()
        daemon = Daemon(props, env, tmp_path / "split.log", transport="dynamodb-streams")
        kcl_topic = KafkaSettings(topic_prefix="kcl.").changes_topic(table)
        try:
            wait_for(
                lambda: (
                    want <= set(events_by_sequence(kafka_bootstrap, kcl_topic))
                    or not daemon.alive()
                ),
                timeout_s=120,
                what="every record of the split in Kafka",
            )
            assert daemon.alive(), daemon.text()[-4000:]
        finally:
            daemon.kill()
        native_log = tmp_path / "native.log"
        native = launch_stream(config("native"), env, native_log)
        native_topic = KafkaSettings(topic_prefix="native.").changes_topic(table)
        try:
            wait_for(
                lambda: want <= set(events_by_sequence(kafka_bootstrap, native_topic)),
                timeout_s=90,
                what="the native reader's events",
            )
        finally:
            stop_process(native)
    kcl = events_by_sequence(kafka_bootstrap, kcl_topic)
    expected = {
        s: values[0] for s, values in events_by_sequence(kafka_bootstrap, native_topic).items()
    }
    differ = [s for s, values in kcl.items() if any(v != expected[s] for v in values)]
    assert differ == [], f"{len(differ)} records differ from the native reader's: {differ[:3]}"
    from bridge.codec.avro import EventCodec

    codec = EventCodec()
    per_item: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for s, value in expected.items():
        event = codec.decode(value)
        per_item[event.keys["pk"]["S"]].append((int(s), event.version))
    for item, pairs in per_item.items():
        versions = [v for _s, v in sorted(pairs)]
        assert versions == sorted(set(versions)), f"{item}: {versions}"
