"""An item near DynamoDB's 400 KB limit, put then modified (NEW_AND_OLD_IMAGES: both images
in one event, over 1 MB encoded), goes through `ddb-bridge stream` and `ddb-bridge apply` into
SQLite; and a record Kafka refuses for its size stops the stream with an alarm naming the
table, the key, the size and the setting, instead of a retry loop."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from bridge.codec.avro import EventCodec
from bridge.model import attrs
from bridge.runtime.settings import KafkaSettings, SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from connectors.sources.stream.leases import LeaseTable
from tests.apply_harness import ApplyProcess, table_spec
from tests.apply_harness import write_config as write_apply_config
from tests.kafka_helpers import drain_more
from tests.stream_helpers import (
    cli_env,
    create_stream_table,
    launch_stream,
    read_stream,
    stop_process,
    wait_log,
    write_config,
)
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEY = {"pk": {"S": "big-1"}, "sk": {"N": "7"}}


def big_item(seed: int) -> dict[str, Any]:
    """~387 KB as DynamoDB counts it: 200 KB of binary (base64 on the wire, in both images)
    and 150,000 characters of text that JSON must escape (quotes, backslashes, control
    characters) or carries as multi-byte UTF-8."""
    text = (f'{seed}"\\\x01é' * 40_000)[:150_000]
    return {**KEY, "b": {"B": os.urandom(200_000)}, "s": {"S": text}, "n": {"N": str(seed)}}


def put_and_modify(ddb: Any, table: str) -> dict[str, Any]:
    ddb.put_item(TableName=table, Item=big_item(1))
    ddb.put_item(TableName=table, Item=big_item(2))  # a MODIFY carrying two ~390 KB images
    source = ddb.get_item(TableName=table, Key=KEY, ConsistentRead=True)["Item"]
    return attrs.from_boto(source)


def test_a_390_kb_item_modified_goes_through_stream_and_apply_into_sqlite(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("big").replace("-", "_")
    arn = create_stream_table(ddb_client, table)
    lease_table = unique_name("leases")
    config = write_config(tmp_path / "stream.toml", [table], lease_table)
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    log_path = tmp_path / "stream.log"
    expected = put_and_modify(ddb_client, table)
    records = read_stream(streams_client, arn)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
    leases = LeaseTable(ddb_client, lease_table, "reader", 1.0)

    def checkpoint() -> str | None:
        found = leases.list({arn})
        return found[0].checkpoint if found else None

    stream = launch_stream(config, env, log_path)
    try:
        wait_log(log_path, "stream started", stream)
        last = records[-1]["dynamodb"]["SequenceNumber"]
        wait_until(lambda: checkpoint() == last, 60, "the MODIFY to be acknowledged")
        assert stop_process(stream, signal.SIGTERM) == 0, log_path.read_text()
    finally:
        if stream.poll() is None:
            stop_process(stream, signal.SIGKILL)

    topic = KafkaSettings().changes_topic(table)
    values = [m.value() for m in drain_more(kafka_bootstrap, topic)]
    assert max(len(v) for v in values) > 1_000_000  # over librdkafka's default limit
    assert EventCodec().decode(max(values, key=len)).old_image is not None

    db = tmp_path / "target.db"
    apply_config = write_apply_config(
        tmp_path / "apply.toml",
        kafka_bootstrap,
        "local",
        {"type": "sqlite", "path": db},
        [table],
    )
    apply = ApplyProcess(apply_config, "--create-schema")
    reader = SqliteSink(SqliteTarget(type="sqlite", path=str(db)))
    try:
        apply.wait_joined()
        reader.open([table_spec(table)])
        apply.wait_until(lambda: reader.read_items(table, [KEY]) == [expected], timeout_s=90)
        assert apply.terminate() == 0, apply.output
    finally:
        reader.close()
        if apply.proc.poll() is None:
            apply.kill()
    assert "dead letter" not in apply.output


def test_a_record_kafka_refuses_stops_the_stream_with_a_named_alarm(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("refused")
    arn = create_stream_table(ddb_client, table)
    lease_table = unique_name("leases")
    # The topic exists already, with a limit below the largest event (but above the INSERT,
    # about 270 KB compressed): the operator's topic, which the stream must not alter, but
    # warn about.
    topic = KafkaSettings().changes_topic(table)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created = admin.create_topics(
        [NewTopic(topic, 3, 1, config={"max.message.bytes": "900000"})], request_timeout=30
    )
    created[topic].result(30)
    # The refusal here comes from the producer's own limit (librdkafka's default, the one
    # that wedged the stream before), checked before anything reaches the broker; a topic's
    # refusal is the next test.
    config = write_config(
        tmp_path / "bridge.toml",
        [table],
        lease_table,
        kafka={"extra": {"message.max.bytes": 1000000}},
    )
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    log_path = tmp_path / "stream.log"
    put_and_modify(ddb_client, table)
    insert = read_stream(streams_client, arn)[0]["dynamodb"]["SequenceNumber"]

    stream = launch_stream(config, env, log_path)
    started = time.monotonic()
    try:
        code = stream.wait(60)  # stops by itself: no retry loop
    finally:
        stop_process(stream, signal.SIGKILL)
    assert time.monotonic() - started < 60
    output = log_path.read_text()
    assert code == 1, output
    assert f"{topic} has max.message.bytes=900000" in output
    alarm = next(line for line in output.splitlines() if line.startswith("ddb-bridge: error:"))
    assert f"table {table}" in alarm
    assert '{"pk":{"S":"big-1"},"sk":{"N":"7"}}' in alarm
    assert '"message.max.bytes" (now 1000000)' in alarm
    size = int(alarm.split(" bytes before compression")[0].rsplit(" ", 1)[1])
    assert size > 1_000_000
    # The INSERT (one image) went through; nothing was checkpointed past the refused MODIFY,
    # so a restart with the limit raised publishes it.
    lease = LeaseTable(ddb_client, lease_table, "reader", 1.0).list({arn})[0]
    assert lease.checkpoint in ("TRIM_HORIZON", insert)
    assert "MODIFY" not in {
        EventCodec().decode(m.value()).op.value for m in drain_more(kafka_bootstrap, topic)
    }


def test_an_existing_topic_that_refuses_the_event_stops_the_stream_naming_its_setting(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("topic-refuses")
    arn = create_stream_table(ddb_client, table)
    lease_table = unique_name("leases")
    topic = KafkaSettings().changes_topic(table)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    # Compressed, the INSERT (one image, mostly base64 of random bytes) is about 270 KB and
    # the MODIFY about twice that: the topic takes the first and refuses the second.
    admin.create_topics(
        [NewTopic(topic, 3, 1, config={"max.message.bytes": "400000"})], request_timeout=30
    )[topic].result(30)
    config = write_config(tmp_path / "bridge.toml", [table], lease_table)
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    log_path = tmp_path / "stream.log"
    put_and_modify(ddb_client, table)
    insert = read_stream(streams_client, arn)[0]["dynamodb"]["SequenceNumber"]

    stream = launch_stream(config, env, log_path)
    try:
        code = stream.wait(60)  # stops by itself: no retry loop
    finally:
        stop_process(stream, signal.SIGKILL)
    output = log_path.read_text()
    assert code == 1, output
    assert f"{topic} has max.message.bytes=400000" in output
    alarm = next(line for line in output.splitlines() if line.startswith("ddb-bridge: error:"))
    assert f"table {table} (topic {topic})" in alarm
    assert '{"pk":{"S":"big-1"},"sk":{"N":"7"}}' in alarm
    assert f"--entity-name {topic} --add-config max.message.bytes=" in alarm
    lease = LeaseTable(ddb_client, lease_table, "reader", 1.0).list({arn})[0]
    assert lease.checkpoint in ("TRIM_HORIZON", insert)
