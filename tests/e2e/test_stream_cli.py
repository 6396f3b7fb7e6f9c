"""`ddb-bridge stream` end to end: 5,000 writes over 500 keys to a moto table while the daemon
runs as a subprocess, SIGKILLed mid-way and restarted; the topic must hold every stream record
at least once, with versions strictly increasing per key and duplicates identical."""

from __future__ import annotations

import itertools
import random
import signal
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bridge.codec.avro import EventCodec
from bridge.model.event import ChangeEvent
from bridge.model.versioning import StreamVersioner
from bridge.runtime.settings import KafkaSettings
from connectors.sources.stream.leases import LeaseTable
from tests.kafka_helpers import drain_more
from tests.stream_helpers import (
    cli_env,
    create_stream_table,
    launch_stream,
    read_stream,
    stop_process,
    wait_for,
    wait_log,
    write_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WRITES = 5_000
KEYS = 500


def key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i:04d}"}, "sk": {"N": str(i % 7)}}


def writer(ddb: Any, table: str, done: list[int], failed: list[BaseException]) -> None:
    rng = random.Random(7)
    try:
        for n in range(WRITES):
            i = rng.randrange(KEYS)
            roll = rng.random()
            if roll < 0.5:
                ddb.put_item(
                    TableName=table, Item={**key(i), "n": {"N": str(n)}, "s": {"S": "x" * (n % 50)}}
                )
            elif roll < 0.8:
                ddb.update_item(
                    TableName=table,
                    Key=key(i),
                    UpdateExpression="SET n = :n, tags = :t",
                    ExpressionAttributeValues={":n": {"N": str(n)}, ":t": {"SS": [f"t{n % 5}"]}},
                )
            else:
                ddb.delete_item(TableName=table, Key=key(i))
            done[0] = n + 1
    except BaseException as exc:
        failed.append(exc)


def test_sigkill_and_restart_lose_nothing_and_keep_versions(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("e2e-stream")
    arn = create_stream_table(ddb_client, table)
    lease_table = unique_name("leases")
    config = write_config(tmp_path / "bridge.toml", [table], lease_table, lease_duration_ms=2000)
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    log_path = tmp_path / "stream.log"
    leases = LeaseTable(ddb_client, lease_table, "reader", 1.0)

    def checkpoint() -> str | None:
        found = leases.list({arn})
        return found[0].checkpoint if found else None

    first = launch_stream(config, env, log_path)
    second = None
    done, failed = [0], []  # type: ignore[var-annotated]
    thread = threading.Thread(target=writer, args=(ddb_client, table, done, failed), daemon=True)
    try:
        wait_log(log_path, "stream started", first)
        thread.start()
        wait_for(lambda: done[0] >= 2_000, 120, "2,000 writes")
        wait_for(lambda: (checkpoint() or "").isdigit(), 30, "a first checkpoint")
        assert stop_process(first, signal.SIGKILL) == -signal.SIGKILL
        killed_after = done[0]
        second = launch_stream(config, env, log_path)
        thread.join(300)
        assert not failed, failed
        assert done[0] == WRITES and killed_after < WRITES
        records = read_stream(streams_client, arn)
        last_seq = records[-1]["dynamodb"]["SequenceNumber"]
        wait_for(lambda: checkpoint() == last_seq, 90, "the restarted daemon to catch up")
        assert stop_process(second, signal.SIGTERM) == 0, log_path.read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                stop_process(proc, signal.SIGKILL)

    log_text = log_path.read_text()
    assert log_text.count("stream started") == 2
    topic = KafkaSettings(topic_prefix="ddb.").changes_topic(table)
    codec = EventCodec()
    events: list[ChangeEvent] = [
        codec.decode(m.value()) for m in drain_more(kafka_bootstrap, topic)
    ]

    # Every stream record, at least once.
    by_seq: dict[str, list[ChangeEvent]] = defaultdict(list)
    for event in events:
        assert event.sequence_number is not None
        by_seq[event.sequence_number].append(event)
    stream_seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    missing = [s for s in stream_seqs if s not in by_seq]
    assert not missing, f"{len(missing)} of {len(stream_seqs)} stream records not in Kafka"
    assert set(by_seq) == set(stream_seqs), "records in Kafka that the stream does not have"

    # Duplicates (re-published after the SIGKILL) are identical, version included.
    duplicates = 0
    for copies in by_seq.values():
        duplicates += len(copies) - 1
        assert all(copy == copies[0] for copy in copies[1:]), copies

    # Versions are exactly those of docs/design.md §5, computed independently from the
    # stream, so per key they strictly increase in DynamoDB's order.
    versioner = StreamVersioner()
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        event = by_seq[record["dynamodb"]["SequenceNumber"]][0]
        assert event.version == versioner.next(record["dynamodb"]["ApproximateCreationDateTime"])
        assert event.op.value == record["eventName"]
        per_key[event.key_bytes()].append(event.version)
    for versions in per_key.values():
        assert all(a < b for a, b in itertools.pairwise(versions))
    assert len(per_key) > KEYS * 0.9
    print(
        f"\nstream e2e: {WRITES} writes, {len(records)} stream records, {len(events)} Kafka "
        f"records ({duplicates} duplicates after SIGKILL at write {killed_after}), "
        f"{len(per_key)} keys"
    )


def run_cli(config: Path, env: dict[str, str], *extra: str, timeout_s: float = 60) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "ddb_bridge.cli.main", "stream", "--config", str(config), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@pytest.mark.parametrize("view", [None, "KEYS_ONLY", "OLD_IMAGE"])
def test_tables_without_new_images_are_refused_with_the_fix(
    view: str | None,
    ddb_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("refused")
    create_stream_table(ddb_client, table, view=view)
    config = write_config(tmp_path / "bridge.toml", [table], unique_name("leases"))
    result = run_cli(config, cli_env(dynamodb_endpoint, kafka_bootstrap))
    assert result.returncode == 2, result.stderr
    assert "configuration error" in result.stderr
    assert table in result.stderr
    assert (
        f"aws dynamodb update-table --table-name {table} --stream-specification "
        "StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES" in result.stderr
    )
    if view is not None:
        assert view in result.stderr


def test_max_runtime_and_sigint_stop_cleanly_and_release_the_lease(
    ddb_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("clean")
    arn = create_stream_table(ddb_client, table)
    lease_table = unique_name("leases")
    config = write_config(tmp_path / "bridge.toml", [table], lease_table)
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    ddb_client.put_item(TableName=table, Item=key(1))
    result = run_cli(config, env, "--max-runtime-s", "3", "--worker-id", "timed")
    assert result.returncode == 0, result.stderr
    assert "stream started" in result.stderr and "stream worker stopped" in result.stderr
    lease = LeaseTable(ddb_client, lease_table, "reader", 1.0).list({arn})[0]
    assert lease.owner is None and lease.checkpoint.isdigit() and lease.last_version

    ddb_client.put_item(TableName=table, Item=key(2))
    log_path = tmp_path / "sigint.log"
    proc = launch_stream(config, env, log_path, "--table", table)
    wait_log(log_path, "stream started", proc)
    wait_for(
        lambda: (
            LeaseTable(ddb_client, lease_table, "reader", 1.0).list({arn})[0].checkpoint
            != lease.checkpoint
        ),
        30,
        "the second record checkpointed",
    )
    assert stop_process(proc, signal.SIGINT) == 0, log_path.read_text()
    after = LeaseTable(ddb_client, lease_table, "reader", 1.0).list({arn})[0]
    assert after.owner is None and after.last_version and after.last_version > lease.last_version
