"""`stream`, `backfill --from scan` and `apply` end to end through a SASL_SSL listener
(SCRAM-SHA-512 over TLS, as on MSK or Confluent Cloud), with the credentials in `[kafka.extra]`
only: the config names no plaintext listener, so every client of every command authenticates.
A wrong password ends each command quickly with a message naming the authentication failure,
never the password.

The broker is the session's Apache Kafka node, which serves this SASL_SSL listener beside its
plaintext one (tests/conftest.py's `secured_broker`); the tests read the topic back through
the plaintext listener."""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bridge.codec.avro import EventCodec
from bridge.model import attrs
from bridge.model.event import Origin
from bridge.runtime.settings import KafkaSettings, SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from connectors.sources.stream.leases import LeaseTable
from ddb_bridge.services.kafka_broker import KafkaBroker
from ddb_bridge.services.kafka_secured import SaslSslListener, make_listener
from tests.apply_harness import ApplyProcess, table_spec, write_config
from tests.kafka_helpers import drain_more
from tests.stream_helpers import (
    cli_env,
    create_stream_table,
    launch_stream,
    read_stream,
    stop_process,
    wait_log,
)
from tests.support.daemon import run_bridge
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# How long a command may take to give up on a wrong password (it must not hang).
FAIL_FAST_S = 30.0


def listener(broker: KafkaBroker) -> SaslSslListener:
    assert isinstance(broker.extra_listener, SaslSslListener)
    return broker.extra_listener


def secured_config(
    path: Path,
    secured: SaslSslListener,
    endpoint: str,
    table: str,
    lease_table: str,
    db: Path,
    password: str | None = None,
) -> Path:
    return write_config(
        path,
        secured.bootstrap,
        "local",
        {"type": "sqlite", "path": db},
        [table],
        sections={
            "kafka": {"extra": secured.client_options(password)},
            "aws": {"endpoint_url": endpoint, "region": "us-east-1"},
            "stream": {
                "lease_table": lease_table,
                "poll_interval_ms": 50,
                "lease_duration_ms": 2000,
            },
            "backfill": {"skew_margin_s": 0, "segments": 2},
        },
    )


def run_cli(command: str, config: Path, env: dict[str, str], *extra: str) -> tuple[int, str, float]:
    started = time.monotonic()
    done = run_bridge(command, config, *extra, env=env, timeout_s=120)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def item(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"user#{i:03d}"}, "sk": {"N": str(i % 3)}, "n": {"N": str(i)}}


def test_stream_backfill_and_apply_through_sasl_ssl(
    secured_broker: KafkaBroker,
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    secured = listener(secured_broker)
    table, lease_table = unique_name("sasl"), unique_name("leases")
    arn = create_stream_table(ddb_client, table)
    db = tmp_path / "target.db"
    config = secured_config(
        tmp_path / "bridge.toml", secured, dynamodb_endpoint, table, lease_table, db
    )
    # The environment must not point anywhere else: only the config's SASL_SSL listener.
    env = cli_env(dynamodb_endpoint, secured.bootstrap)

    # 1. stream: captures puts, updates and deletes.
    log_path = tmp_path / "stream.log"
    stream = launch_stream(config, env, log_path)
    try:
        wait_log(log_path, "stream started", stream, timeout_s=60)
        for i in range(40):
            ddb_client.put_item(TableName=table, Item=item(i))
        for i in range(0, 40, 4):
            ddb_client.update_item(
                TableName=table,
                Key={"pk": item(i)["pk"], "sk": item(i)["sk"]},
                UpdateExpression="SET tag = :t REMOVE n",
                ExpressionAttributeValues={":t": {"S": "updated"}},
            )
        for i in range(1, 40, 5):
            ddb_client.delete_item(TableName=table, Key={"pk": item(i)["pk"], "sk": item(i)["sk"]})
        last_seq = read_stream(streams_client, arn)[-1]["dynamodb"]["SequenceNumber"]
        leases = LeaseTable(ddb_client, lease_table, "reader", 1.0)

        def checkpoint() -> str | None:
            found = leases.list({arn})
            return found[0].checkpoint if found else None

        wait_until(lambda: checkpoint() == last_seq, 90, "stream to checkpoint the last record")
        assert stop_process(stream, signal.SIGTERM) == 0, log_path.read_text()
    finally:
        if stream.poll() is None:
            stop_process(stream, signal.SIGKILL)

    # 2. backfill --from scan: the capture record written by `stream` covers it.
    code, output, _ = run_cli("backfill", config, env, "--table", table, "--from", "scan")
    assert code == 0, output
    assert ": complete" in output, output

    topic = KafkaSettings(topic_prefix="ddb.").changes_topic(table)
    codec = EventCodec()
    origins = [codec.decode(m.value()).origin for m in drain_more(secured_broker.bootstrap, topic)]
    assert origins.count(Origin.STREAM) == 40 + 10 + 8, origins
    live = ddb_client.scan(TableName=table)["Items"]
    assert origins.count(Origin.SCAN) == len(live) == 32

    # 3. apply: the Faust consumer authenticates with the translated credentials.
    apply = ApplyProcess(config, "--create-schema")
    reader = SqliteSink(SqliteTarget(type="sqlite", path=str(db)))
    try:
        apply.wait_joined(90)
        reader.open([table_spec(table)])
        expected = {attrs.canonical_key({"pk": it["pk"], "sk": it["sk"]}): it for it in live}
        every_key = [{"pk": item(i)["pk"], "sk": item(i)["sk"]} for i in range(40)]

        def differences() -> list[str]:
            problems = []
            for key, got in zip(every_key, reader.read_items(table, every_key), strict=True):
                want = expected.get(attrs.canonical_key(key))
                if (got is None) != (want is None) or (
                    got is not None and want is not None and not attrs.items_equal(got, want)
                ):
                    problems.append(f"{attrs.dumps(key)}: {got!r}, expected {want!r}")
            return problems

        apply.wait_until(lambda: not differences())
        assert differences() == []
        assert apply.terminate() == 0, apply.output
    finally:
        reader.close()
        if apply.proc.poll() is None:
            apply.kill()


@pytest.mark.parametrize("command", ["stream", "backfill", "apply"])
def test_a_wrong_password_fails_fast_naming_authentication(
    command: str,
    secured_broker: KafkaBroker,
    ddb_client: Any,
    dynamodb_endpoint: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    secured = listener(secured_broker)
    table = unique_name("sasl-bad")
    create_stream_table(ddb_client, table)
    wrong = "not-" + secured.password
    config = secured_config(
        tmp_path / "bridge.toml",
        secured,
        dynamodb_endpoint,
        table,
        unique_name("leases"),
        tmp_path / "target.db",
        password=wrong,
    )
    env = cli_env(dynamodb_endpoint, secured.bootstrap)
    extra = {
        "stream": ["--max-runtime-s", "60"],
        "backfill": ["--table", table, "--from", "scan", "--no-stream", "--no-progress"],
        "apply": ["--create-schema"],
    }[command]
    code, output, elapsed = run_cli(command, config, env, *extra)
    print(f"\n{command} with a wrong password: exit {code} after {elapsed:.1f}s")
    assert elapsed < FAIL_FAST_S, output
    # A configuration error (exit 2) naming the refused login and the settings to check.
    assert code == 2, output
    assert "configuration error: Kafka at " + secured.bootstrap in output, output
    assert "refused the connection: authentication failed" in output, output
    assert '"sasl.password"' in output
    assert wrong not in output and secured.password not in output


def test_an_untrusted_broker_certificate_fails_fast_naming_tls(
    secured_broker: KafkaBroker,
    ddb_client: Any,
    dynamodb_endpoint: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    secured = listener(secured_broker)
    # Another throwaway CA: it did not sign the broker's certificate.
    other_ca = make_listener(tmp_path / "other-ca", 0).ca_path
    table = unique_name("sasl-tls")
    create_stream_table(ddb_client, table)
    config = secured_config(
        tmp_path / "bridge.toml",
        replace(secured, ca_path=other_ca),
        dynamodb_endpoint,
        table,
        unique_name("leases"),
        tmp_path / "target.db",
    )
    env = cli_env(dynamodb_endpoint, secured.bootstrap)
    code, output, elapsed = run_cli(
        "backfill", config, env, "--table", table, "--from", "scan", "--no-stream", "--no-progress"
    )
    print(f"\nbackfill with an untrusted certificate: exit {code} after {elapsed:.1f}s")
    assert elapsed < FAIL_FAST_S, output
    assert code == 2, output
    assert "refused the connection: TLS handshake failed" in output, output
    assert '"ssl.ca.location"' in output
