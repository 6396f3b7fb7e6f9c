"""The real Java KCL MultiLangDaemon (amazon-kclpy's jars) driving the bridge's record processor
against moto's Kinesis and DynamoDB and a real Kafka broker.

moto answers the KCL through two adjustments the tests make, not the bridge: an h2c front
(tests/h2c_proxy.py: the KCL's Kinesis client speaks only HTTP/2) and `-Daws.cborEnabled=false`
(moto reads JSON, not CBOR). Timing knobs (`--set`) only shorten the KCL's waits.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
import pytest

from bridge.codec.avro import EventCodec
from bridge.runtime.settings import KafkaSettings
from connectors.dynamodb.capture import read_capture
from connectors.sources.stream.kcl.versions import entries_of, read_item, versions_key
from tests.h2c_proxy import h2c_front
from tests.kafka_helpers import drain_more
from tests.kcl_helpers import Daemon, kcl_lease_checkpoints, require_daemon, write_properties
from tests.kinesis_records import MICROSECOND, MILLISECOND, kinesis_data
from tests.kinesis_stream_helpers import create_kinesis_stream, kinesis_client
from tests.stream_helpers import cli_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

# The KCL's waits, shortened for a test: shard sync idle, lease expiry (a killed daemon's
# lease is taken over after it), pause between polls of an idle shard.
FAST = [
    "--set", "shardSyncIntervalMillis=2000",
    "--set", "failoverTimeMillis=3000",
    "--set", "idleTimeBetweenReadsInMillis=200",
    # Small pages, so the kill below lands between checkpoints inside a burst.
    "--set", "maxRecords=10",
]  # fmt: skip

BASE_US = 1_790_000_000_000_000  # 2026-09-21, µs


def put(kinesis: Any, stream: str, table: str, changes: list[tuple[str, int, str]]) -> list[str]:
    """Put changes (key, created µs, precision) in order on the one-shard stream; returns
    their sequence numbers, in the same order."""
    records = [
        {
            "Data": kinesis_data(
                "MODIFY",
                {"pk": {"S": key}},
                new_image={"pk": {"S": key}, "n": {"N": str(created_us)}},
                table=table,
                created_us=created_us,
                precision=precision,
            ),
            "PartitionKey": key,
        }
        for key, created_us, precision in changes
    ]
    out = kinesis.put_records(StreamName=stream, Records=records)
    assert out.get("FailedRecordCount", 0) == 0, out
    return [r["SequenceNumber"] for r in out["Records"]]


def read_events(bootstrap: str, topic: str, seqs: set[str], timeout_s: float) -> list[Any]:
    """Read the topic until every sequence number was seen (or time is up); every event."""
    codec = EventCodec()
    deadline = time.monotonic() + timeout_s
    events: list[Any] = []
    while time.monotonic() < deadline:
        events = [codec.decode(m.value()) for m in drain(bootstrap, topic, 2.0)]
        if seqs <= {e.sequence_number for e in events}:
            return events
    return events


def drain(bootstrap: str, topic: str, timeout_s: float) -> list[Any]:
    """The topic's records; none while the processor has not created it yet."""
    try:
        return drain_more(bootstrap, topic, timeout_s)
    except RuntimeError as exc:
        if "UNKNOWN_TOPIC_OR_PART" not in str(exc):
            raise
        time.sleep(1)
        return []


def test_daemon_publishes_and_resumes_after_kill_9(
    dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    require_daemon()
    table = unique_name("kcl")
    stream, lease_table, app = f"{table}-changes", f"{table}-leases", f"ddb-bridge-{table}"
    kinesis = kinesis_client(dynamodb_endpoint)
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
    arn = create_kinesis_stream(kinesis, stream)
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[aws]\nregion = "us-east-1"\n\n[kafka]\npartitions = 3\nreplication_factor = 1\n'
        f'linger_ms = 5\n\n[[tables]]\nname = "{table}"\n\n'
        f'[stream]\nlease_table = "{lease_table}"\n'
    )
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    topic = KafkaSettings(bootstrap_servers=kafka_bootstrap).changes_topic(table)

    # 1. Changes with distinct µs times (version = the time), then four changes of one item in
    # one millisecond at MILLISECOND precision (versions: that ms's first µs slots, in shard order).
    first = [(f"a{i}", BASE_US + i * 1000, MICROSECOND) for i in range(30)]
    tick = BASE_US + 40_000
    first += [("tie", tick + 7, MILLISECOND) for _ in range(4)]
    expected: dict[str, int] = {}  # sequence number -> version
    seqs = put(kinesis, stream, table, first)
    for n, (seq, (_key, created, _p)) in enumerate(zip(seqs, first, strict=True)):
        expected[seq] = created if n < 30 else tick + (n - 30)

    with h2c_front(dynamodb_endpoint) as kinesis_url:
        props = write_properties(
            tmp_path, env, config, table, stream, "--kinesis-endpoint", kinesis_url, *FAST
        )
        daemon = Daemon(props, env, tmp_path / "daemon1.log")
        try:
            events = read_events(kafka_bootstrap, topic, set(seqs), 90)
            startup_s = time.monotonic() - daemon.started
            print(f"daemon start-up to the first {len(first)} records in Kafka: {startup_s:.1f}s")
            assert {e.sequence_number for e in events} >= set(seqs), daemon.text()[-3000:]
            # A checkpoint reached the KCL's lease table, its version the bridge's.
            wait_for(
                lambda: kcl_lease_checkpoints(ddb, app).get("shardId-000000000000", "").isdigit(),
                timeout_s=20,
                what="a KCL checkpoint",
            )
            checkpoint = kcl_lease_checkpoints(ddb, app)["shardId-000000000000"]
            item = read_item(ddb, lease_table, versions_key(arn, "shardId-000000000000"))
            pairs = {e.sequence: e.last_version for e in entries_of(item)}
            assert pairs[checkpoint] == expected[checkpoint]
            # The capture record, keyed by the Kinesis stream's ARN, for the back-fill's check.
            capture = read_capture(ddb, lease_table, arn)
            assert capture is not None and capture.table == table

            # 2. More changes: 200 of one item in one millisecond (versions: the next free µs
            # of it, in shard order), and a kill -9 of the daemon and its processor as soon as
            # the KCL's checkpoint is inside them: what follows it is read again after restart.
            tick2 = BASE_US + 100_000
            seqs2 = put(kinesis, stream, table, [("burst", tick2 + 3, MILLISECOND)] * 200)
            for n, seq in enumerate(seqs2):
                expected[seq] = tick2 + n
            inside = set(seqs2[:-1])
            wait_for(
                lambda: kcl_lease_checkpoints(ddb, app)["shardId-000000000000"] in inside,
                timeout_s=30,
                what="a KCL checkpoint inside the burst",
            )
        finally:
            daemon.kill()
        assert not daemon.alive()
        before_restart = kcl_lease_checkpoints(ddb, app)["shardId-000000000000"]

        # 3. Changes while it is down, then a restart: it resumes from its checkpoint.
        third = [(f"c{i}", BASE_US + 200_000 + i * 1000, MICROSECOND) for i in range(10)]
        for seq, (_key, created, _p) in zip(put(kinesis, stream, table, third), third, strict=True):
            expected[seq] = created
        daemon2 = Daemon(props, env, tmp_path / "daemon2.log")
        try:
            restart = time.monotonic()
            events = read_events(kafka_bootstrap, topic, set(expected), 90)
            print(f"restart to every record in Kafka: {time.monotonic() - restart:.1f}s")
        finally:
            daemon2.kill()
    log2 = daemon2.text()

    # Every record's key and version is there; duplicates carry identical versions.
    by_seq: dict[str, set[int]] = defaultdict(set)
    count: dict[str, int] = defaultdict(int)
    for e in events:
        by_seq[e.sequence_number].add(e.version)
        count[e.sequence_number] += 1
    missing = set(expected) - set(by_seq)
    assert not missing, f"{len(missing)} records never reached Kafka; daemon log:\n{log2[-3000:]}"
    assert {s: v for s, v in by_seq.items() if len(v) > 1} == {}
    assert {s: min(v) for s, v in by_seq.items()} == expected
    # Resumed from the checkpoint, not from the start: nothing at or before it came again.
    assert before_restart.isdigit()
    again = [s for s in expected if int(s) <= int(before_restart) and count[s] > 1]
    assert again == [], f"re-published at or before the checkpoint {before_restart}: {again[:5]}"
    assert f"checkpoint={before_restart}" in log2, log2[-3000:]
    assert before_restart in inside  # the kill was mid-stream
    print(f"re-published after the restart: {sum(1 for c in count.values() if c > 1)}")
