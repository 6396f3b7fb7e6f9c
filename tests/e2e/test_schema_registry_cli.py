"""Schema Registry mode end to end: `stream` and `backfill` publish into one topic, `apply`
decodes every event, the DLQ stays empty.

The registry is `tests/registry_double.py`, an in-test double of the Confluent REST API that
requires basic auth; the credentials reach the CLI only through the environment.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.codec.avro import load_schema_text
from bridge.kafka.schema_registry import registry_codec
from bridge.model import attrs
from bridge.model.event import Origin
from bridge.runtime.config_file import write_config as write_settings_file
from bridge.runtime.settings import KafkaSettings, SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from tests.apply_harness import ApplyProcess, table_spec
from tests.backfill_helpers import create_table, write_items
from tests.kafka_helpers import drain_more
from tests.registry_double import registry_double
from tests.samples import sample_item
from tests.stream_helpers import cli_env, launch_stream, stop_process, wait_log
from tests.support.daemon import run_bridge
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

USER_INFO = "bridge-key:registry-S3cret"


def write_config(
    path: Path, bootstrap: str, table: str, lease_table: str, registry_url: str, db: Path
) -> Path:
    return write_settings_file(
        path,
        aws={"region": "us-east-1"},
        kafka={
            "bootstrap_servers": bootstrap,
            "partitions": 2,
            "replication_factor": 1,
            "linger_ms": 5,
            "schema_registry_url": registry_url,
        },
        tables=[
            {
                "name": table,
                "hash_key": "pk",
                "hash_key_type": "S",
                "range_key": "sk",
                "range_key_type": "N",
            }
        ],
        stream={"lease_table": lease_table, "poll_interval_ms": 50, "lease_duration_ms": 2000},
        backfill={"skew_margin_s": 0, "segments": 2},
        apply={
            "target": "local",
            "batch_size": 50,
            "batch_window_ms": 50,
            "commit_interval_ms": 200,
        },
        targets={"local": {"type": "sqlite", "path": db}},
    )


def test_stream_and_backfill_share_one_framing_and_apply_decodes_every_event(
    ddb_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table, lease_table = unique_name("reg"), unique_name("leases")
    # Written before the stream is enabled: only the back-fill carries these, so the target
    # can equal the source only if apply decodes the back-fill's events.
    create_table(ddb_client, table, stream=False)
    write_items(lambda: ddb_client, table, [attrs.to_boto(sample_item(i)) for i in range(40)], 1)
    ddb_client.update_table(
        TableName=table,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    db = tmp_path / "target.db"
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topic, dlq = kafka.changes_topic(table), kafka.dlq_topic(table)

    with registry_double(USER_INFO) as (url, registry):
        config = write_config(
            tmp_path / "bridge.toml", kafka_bootstrap, table, lease_table, url, db
        )
        env = cli_env(dynamodb_endpoint, kafka_bootstrap)
        env["DDB_BRIDGE__KAFKA__SCHEMA_REGISTRY_USER_INFO"] = USER_INFO
        log_path = tmp_path / "stream.log"
        stream = launch_stream(config, env, log_path)
        apply = None
        try:
            wait_log(log_path, "stream started", stream)
            time.sleep(1.2)  # the back-fill's T - margin must follow the capture start
            backfill = run_bridge(
                "backfill",
                config,
                "--table",
                table,
                "--from",
                "scan",
                "--no-progress",
                env=env,
                timeout_s=180,
            )
            assert backfill.returncode == 0, backfill.stdout + backfill.stderr
            # Changed while both run: the stream carries these.
            ddb_client.put_item(TableName=table, Item=attrs.to_boto(sample_item(100)))
            ddb_client.delete_item(
                TableName=table, Key={"pk": {"S": "user#0000003"}, "sk": {"N": "3"}}
            )
            ddb_client.update_item(
                TableName=table,
                Key={"pk": {"S": "user#0000005"}, "sk": {"N": "5"}},
                UpdateExpression="SET extra = :v",
                ExpressionAttributeValues={":v": {"S": "after the back-fill"}},
            )
            expected = {
                attrs.canonical_key(attrs.extract_keys(item, ("pk", "sk"))): item
                for item in (
                    attrs.from_boto(raw)
                    for raw in ddb_client.scan(TableName=table, ConsistentRead=True)["Items"]
                )
            }
            assert len(expected) == 40

            # ApplyProcess passes this process's environment on.
            monkeypatch.setenv("DDB_BRIDGE__KAFKA__SCHEMA_REGISTRY_USER_INFO", USER_INFO)
            apply = ApplyProcess(config, "--create-schema", log_path=tmp_path / "apply.log")
            apply.wait_joined()
            reader = SqliteSink(SqliteTarget(type="sqlite", path=str(db)))
            reader.open([table_spec(table)])  # created by --create-schema before joining
            keys = [attrs.loads(k) for k in expected]

            def target_equals_source() -> bool:
                got = reader.read_items(table, keys)
                live = {attrs.canonical_key(k) for k in reader.scan_keys(table)}
                return live == set(expected) and all(
                    item is not None and attrs.items_equal(item, expected[k])
                    for k, item in zip(expected, got, strict=True)
                )

            wait_until(target_equals_source, 120, f"the target to equal the source\n{apply.output}")
            reader.close()
            assert apply.terminate() == 0, apply.output
            apply = None
        finally:
            if apply is not None:
                apply.terminate()
            if stream.poll() is None:
                stop_process(stream, signal.SIGTERM)

        assert drain_more(kafka_bootstrap, dlq, timeout_s=2.0) == []
        records = drain_more(kafka_bootstrap, topic)
        values = [m.value() for m in records]
        # One framing per topic: Confluent, with the id registered under <topic>-value.
        schema_ids = registry.subjects[f"{topic}-value"]
        assert {v[:5] for v in values} == {b"\x00" + i.to_bytes(4, "big") for i in schema_ids}
        decoder = registry_codec(url, {"basic.auth.user.info": USER_INFO})
        origins = {decoder.decode(v).origin for v in values}
        assert origins == {Origin.STREAM, Origin.SCAN}
        assert registry.rejected_auth == 0


def test_backfill_against_a_locked_registry_without_auto_register(
    ddb_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    """No schema: exit 2 with one line. A different one: the same. The bridge's: published
    with the id the operators registered, nothing registered by the bridge."""
    table = unique_name("locked")
    create_table(ddb_client, table, stream=False)
    write_items(lambda: ddb_client, table, [attrs.to_boto(sample_item(i)) for i in range(5)], 1)
    topic = KafkaSettings(bootstrap_servers=kafka_bootstrap).changes_topic(table)
    subject = f"{topic}-value"
    theirs = json.loads(load_schema_text())
    theirs["fields"].append({"name": "extra", "type": ["null", "string"], "default": None})

    with registry_double(USER_INFO) as (url, registry):
        registry.locked = True
        config = write_config(
            tmp_path / "bridge.toml",
            kafka_bootstrap,
            table,
            unique_name("leases"),
            url,
            tmp_path / "target.db",
        )
        env = cli_env(dynamodb_endpoint, kafka_bootstrap)
        env["DDB_BRIDGE__KAFKA__SCHEMA_REGISTRY_USER_INFO"] = USER_INFO
        env["DDB_BRIDGE__KAFKA__SCHEMA_REGISTRY_AUTO_REGISTER"] = "false"

        def backfill() -> Any:
            return run_bridge(
                "backfill", config, "--table", table, "--from", "scan", "--no-stream",
                "--no-progress", "--new-run", env=env, timeout_s=180,
            )  # fmt: skip

        for registered, said in [
            (None, f"no schema is registered under subject {subject}"),
            (json.dumps(theirs), "cannot carry the bridge's events"),
        ]:
            if registered is not None:
                registry.preload(subject, registered)
            refused = backfill()
            assert refused.returncode == 2, refused.stdout + refused.stderr
            lines = refused.stderr.strip().splitlines()
            assert "Traceback" not in refused.stderr
            assert lines[-1].startswith("ddb-bridge: configuration error: "), lines
            assert said in lines[-1] and url in lines[-1], lines[-1]

        ours = registry.preload(subject, load_schema_text())
        done = backfill()
        assert done.returncode == 0, done.stdout + done.stderr
        values = [m.value() for m in drain_more(kafka_bootstrap, topic)]
        assert len(values) == 5
        assert {v[:5] for v in values} == {b"\x00" + ours.to_bytes(4, "big")}
        assert not [r for r in registry.requests if r[0] == "POST"], "the bridge registered"
