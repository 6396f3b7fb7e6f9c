"""`ddb-bridge audit` end to end: real broker, real CLI, the archive read back with fastavro."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from bridge.audit.records import change_time_ms
from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import ensure_topics
from bridge.runtime.settings import KafkaSettings
from tests.audit_helpers import (
    AuditProcess,
    Published,
    assert_exactly_once,
    count_records,
    make_events,
    publish,
    read_local,
    read_s3,
    write_config,
)
from tests.metrics_helpers import free_port, sample, wait_health

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _tables(unique_name: Any, n: int = 3) -> list[str]:
    return [unique_name(f"aud{i}") for i in range(n)]


def test_archives_every_event_once_in_partition_order(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    tables = _tables(unique_name)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=3, replication_factor=1)
    truth = publish(kafka, [e for t in tables for e in make_events(t, 300)])
    assert {p.partition for p in truth} == {0, 1, 2}, "events should reach every partition"
    root = tmp_path / "archive"
    config = write_config(tmp_path / "bridge.toml", kafka_bootstrap, tables)

    port = free_port()
    audit = AuditProcess(
        config, "--root", str(root), "--max-events", "40", "--max-seconds", "1",
        "--group", unique_name("audit"), "--metrics-port", str(port),
    )  # fmt: skip
    audit.wait_until(lambda: count_records(read_local(root)) >= len(truth))
    # audit is a daemon like stream and apply: /healthz ready, its progress on /metrics.
    assert wait_health(port, 200, audit.proc)["daemon"] == "audit"
    assert (sample(port, "ddb_bridge_last_progress_timestamp_seconds", daemon="audit") or 0) > 0
    assert audit.terminate() == 0, audit.output
    files = read_local(root)
    assert_exactly_once(files, truth)
    assert len(files) > len(tables) * 4, "rotation by --max-events should make many files"
    assert not list((root / "_staging").iterdir()), "staging files left behind"
    assert "Traceback" not in audit.output


def test_kill_9_mid_file_then_restart_archives_every_event_exactly_once(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    tables = _tables(unique_name)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=3, replication_factor=1)
    truth = publish(kafka, [e for t in tables for e in make_events(t, 2000)])
    root = tmp_path / "archive"
    config = write_config(tmp_path / "bridge.toml", kafka_bootstrap, tables)
    group = unique_name("audit")
    args = ("--root", str(root), "--max-events", "60", "--max-seconds", "2", "--group", group)

    first = AuditProcess(config, *args)
    staging = root / "_staging"

    def writing_after_some_commits() -> bool:
        return (
            len(read_local_names(root)) >= 6
            and staging.exists()
            and any(p.name.endswith(".tmp") for p in staging.iterdir())
        )

    first.wait_until(writing_after_some_commits)
    first.kill()
    archived_at_kill = count_records(read_local(root))
    assert 0 < archived_at_kill < len(truth), "the kill should come mid-archive"

    second = AuditProcess(config, *args)
    second.wait_until(lambda: count_records(read_local(root)) >= len(truth), timeout_s=120)
    assert second.terminate() == 0, second.output
    assert_exactly_once(read_local(root), truth)


def read_local_names(root: Path) -> list[Path]:
    return list(root.glob("table=*/date=*/hour=*/*.avro"))


def test_json_lines_mode(kafka_bootstrap: str, unique_name: Any, tmp_path: Path) -> None:
    tables = _tables(unique_name, 2)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=3, replication_factor=1)
    truth = publish(kafka, [e for t in tables for e in make_events(t, 150)])
    root = tmp_path / "archive"
    config = write_config(tmp_path / "bridge.toml", kafka_bootstrap, tables)
    audit = AuditProcess(
        config, "--root", str(root), "--format", "jsonl", "--max-events", "25",
        "--max-seconds", "1", "--group", unique_name("audit"),
    )  # fmt: skip
    audit.wait_until(lambda: count_records(read_local(root, "jsonl")) >= len(truth))
    assert audit.terminate() == 0, audit.output
    files = read_local(root, "jsonl")
    assert_exactly_once(files, truth)
    row = files[0].records[0]
    # Images are nested JSON in this format, not DynamoDB JSON text.
    assert row["keys"]["pk"]["S"].startswith("k") and isinstance(row["new_image"], dict)
    assert not read_local(root, "avro")


@pytest.mark.integration
def test_s3_destination_on_moto_survives_kill_9_exactly_once(
    kafka_bootstrap: str, dynamodb_endpoint: str, s3_client: Any, unique_name: Any, tmp_path: Path
) -> None:
    tables = _tables(unique_name, 2)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=3, replication_factor=1)
    truth = publish(kafka, [e for t in tables for e in make_events(t, 1200)])
    bucket = unique_name("audit")
    s3_client.create_bucket(Bucket=bucket)
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        tables,
        aws={"endpoint_url": dynamodb_endpoint, "region": "us-east-1"},
    )
    group = unique_name("audit")
    args = (
        "--root", f"s3://{bucket}/archive/v1", "--max-events", "50", "--max-seconds", "2",
        "--group", group, "--staging-dir", str(tmp_path / "staging"),
    )  # fmt: skip

    def archived() -> int:
        return count_records(read_s3(s3_client, bucket, "archive/v1"))

    first = AuditProcess(config, *args)
    first.wait_until(lambda: archived() > 0)
    first.kill()
    assert archived() < len(truth), "the kill should come mid-archive"

    second = AuditProcess(config, *args)
    second.wait_until(lambda: archived() >= len(truth), timeout_s=120)
    assert second.terminate() == 0, second.output
    files = read_s3(s3_client, bucket, "archive/v1")
    assert_exactly_once(files, truth)
    intents = s3_client.list_objects_v2(Bucket=bucket, Prefix="archive/v1/_audit/")
    assert intents.get("KeyCount", 0) > 0, "intents live under the root's _audit/"


def test_an_undecodable_record_stops_audit_naming_it_after_archiving_what_came_before(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table = unique_name("audbad")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=3, replication_factor=1)
    ensure_topics(kafka, [table])
    topic = kafka.changes_topic(table)
    events = make_events(table, 20)
    codec = EventCodec()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for event in events[:10]:
        producer.produce(topic, codec.encode(event), event.key_bytes(), partition=0)
    producer.produce(topic, b"not avro", b"k", partition=0)  # offset 10
    for event in events[10:]:
        producer.produce(topic, codec.encode(event), event.key_bytes(), partition=0)
    assert producer.flush(30) == 0
    before = [
        Published(topic, 0, i, e.event_id or "", change_time_ms(e))
        for i, e in enumerate(events[:10])
    ]
    root = tmp_path / "archive"
    config = write_config(tmp_path / "bridge.toml", kafka_bootstrap, [table])

    audit = AuditProcess(config, "--root", str(root), "--group", unique_name("audit"))
    assert audit.wait(60) == 1
    assert f"cannot archive {topic} partition 0 offset 10" in audit.output, audit.output
    # Everything before the bad record is archived (and committed); nothing after it.
    assert_exactly_once(read_local(root), before)


def test_both_framings_with_a_schema_registry(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    """Records written before the registry was configured (single-object) and after it
    (Confluent framing, schema ids from the registry) are archived alike. The registry is
    tests/registry_double.py, an in-test double of its REST API."""
    from bridge.kafka.schema_registry import make_codec
    from tests.registry_double import registry_double

    table = unique_name("audsr")
    with registry_double() as (url, state):
        kafka = KafkaSettings(
            bootstrap_servers=kafka_bootstrap,
            partitions=3,
            replication_factor=1,
            schema_registry_url=url,
        )
        truth = publish(
            kafka, make_events(table, 120), codecs=[EventCodec(), make_codec(kafka, [table])]
        )
        root = tmp_path / "archive"
        config = write_config(
            tmp_path / "bridge.toml", kafka_bootstrap, [table], kafka={"schema_registry_url": url}
        )
        audit = AuditProcess(
            config, "--root", str(root), "--max-events", "20",
            "--max-seconds", "1", "--group", unique_name("audit"),
        )  # fmt: skip
        audit.wait_until(lambda: count_records(read_local(root)) >= len(truth))
        assert audit.terminate() == 0, audit.output
        # Half the records carry Confluent framing: audit exits 1 on one it cannot decode.
        assert_exactly_once(read_local(root), truth)
        assert state.subjects, "the Confluent half was written with registry schema ids"
