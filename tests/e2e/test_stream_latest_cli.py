"""`initial_position = "LATEST"` survives a SIGKILL before the first checkpoint: the restarted
`ddb-bridge stream` resumes where the first one started, so every write made while no
producer ran reaches Kafka, and what was written before the first start stays out."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.codec.avro import EventCodec
from bridge.runtime.settings import KafkaSettings
from connectors.dynamodb.capture import read_capture
from connectors.sources.stream.leases import LeaseTable
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


def put(ddb: Any, table: str, name: str) -> None:
    ddb.put_item(TableName=table, Item={"pk": {"S": name}, "sk": {"N": "0"}})


def test_sigkill_before_the_first_checkpoint_loses_no_write_made_in_the_gap(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("latest")
    arn = create_stream_table(ddb_client, table)
    lease_table = unique_name("leases")
    config = write_config(tmp_path / "bridge.toml", [table], lease_table, lease_duration_ms=2000)
    config.write_text(config.read_text() + 'initial_position = "LATEST"\n')
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    log_path = tmp_path / "stream.log"
    leases = LeaseTable(ddb_client, lease_table, "reader", 1.0)
    for i in range(5):
        put(ddb_client, table, f"before{i}")

    started_ms = int(time.time() * 1000)
    first = launch_stream(config, env, log_path)
    second = None
    try:
        wait_log(log_path, "shard processing starts", first)
        # SIGKILL before the first checkpoint: nothing has been written since the start.
        assert [lease.checkpoint for lease in leases.list({arn})] != []
        assert stop_process(first, signal.SIGKILL) == -signal.SIGKILL
        gap = [f"gap{i}" for i in range(20)]
        for name in gap:
            put(ddb_client, table, name)
        second = launch_stream(config, env, log_path)
        wait_until(
            lambda: log_path.read_text().count("shard processing starts") == 2,
            60,
            "the restarted producer to take the lease over",
        )
        put(ddb_client, table, "after")
        last = read_stream(streams_client, arn)[-1]["dynamodb"]["SequenceNumber"]
        wait_until(
            lambda: [lease.checkpoint for lease in leases.list({arn})] == [last],
            60,
            "the restarted producer to checkpoint the last write",
        )
        assert stop_process(second, signal.SIGTERM) == 0, log_path.read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                stop_process(proc, signal.SIGKILL)

    codec = EventCodec()
    topic = KafkaSettings().changes_topic(table)
    published = {
        codec.decode(m.value()).keys["pk"]["S"] for m in drain_more(kafka_bootstrap, topic)
    }
    missing = [name for name in [*gap, "after"] if name not in published]
    assert not missing, f"writes made while no producer ran are missing from Kafka: {missing}"
    assert not {f"before{i}" for i in range(5)} & published, "LATEST published older writes"
    # The back-fill's safety check trusts this: capture began after the positions were fixed.
    capture = read_capture(ddb_client, lease_table, arn)
    assert capture is not None and capture.initial_position == "LATEST"
    assert capture.started_at_ms >= started_ms
