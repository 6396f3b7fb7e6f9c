"""`ddb-bridge status` end to end: a whole pipeline (stream + scan back-fill + apply into
SQLite) on moto and the real broker, read back through `status --json` as a script would.

The verdict stays NOT READY until `verify` ran (and says so), is READY after; a poison record
in the change topic shows as DLQ depth 1 and exit 1; apply stopped with new writes shows
per-partition lag and exit 1 under `--max-lag 0`; a data-loss alarm in the capture record
shows and needs attention.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from bridge.model import attrs
from bridge.runtime.config_file import write_config
from connectors.dynamodb.capture import read_capture, record_data_loss
from ddb_bridge.cli.main import main
from tests.apply_harness import ApplyProcess
from tests.backfill_helpers import create_table, write_items
from tests.samples import sample_item
from tests.stream_helpers import cli_env, launch_stream, stop_process
from tests.support.daemon import run_bridge
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _config(
    path: Path,
    endpoint: str,
    bootstrap: str,
    table: str,
    lease_table: str,
    db: Path,
    table_extra: dict[str, Any] | None = None,
    targets_extra: dict[str, Any] | None = None,
) -> Path:
    return write_config(
        path,
        aws={"endpoint_url": endpoint},
        kafka={
            "bootstrap_servers": bootstrap,
            "partitions": 2,
            "replication_factor": 1,
            "linger_ms": 5,
        },
        tables=[
            {
                "name": table,
                "hash_key": "pk",
                "range_key": "sk",
                "range_key_type": "N",
                **(table_extra or {}),
            }
        ],
        stream={"lease_table": lease_table, "poll_interval_ms": 50, "lease_duration_ms": 2000},
        backfill={"skew_margin_s": 0, "segments": 2},
        apply={
            "target": "local",
            "batch_size": 200,
            "batch_window_ms": 50,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "commit_interval_ms": 200,
        },
        targets={"local": {"type": "sqlite", "path": db}, **(targets_extra or {})},
    )


class Status:
    """`ddb-bridge status --json` as a subprocess: its exit code and its parsed report."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config, self.env = config, env

    def __call__(self, *extra: str) -> tuple[int, dict[str, Any]]:
        proc = run_bridge(
            "status", self.config, "--json", "--sample-s", "0", *extra, env=self.env, timeout_s=120
        )
        assert proc.returncode in (0, 1) and proc.stdout.startswith("{"), proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    def until(self, cond: Any, *extra: str, timeout_s: float = 90.0) -> tuple[int, dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        code, report = self(*extra)
        while not cond(report):
            if time.monotonic() > deadline:
                raise AssertionError(f"status never got there:\n{json.dumps(report, indent=1)}")
            time.sleep(1.0)
            code, report = self(*extra)
        return code, report


def _table(report: dict[str, Any]) -> dict[str, Any]:
    (table,) = report["tables"]
    return table


def _target(report: dict[str, Any]) -> dict[str, Any]:
    (target,) = _table(report)["targets"]
    return target


def _stream_caught_up(report: dict[str, Any]) -> bool:
    stream = _table(report)["stream"]
    return bool(stream["shards"]) and all(s["unread"] == 0 for s in stream["shards"])


def _all_caught_up(report: dict[str, Any]) -> bool:
    return _stream_caught_up(report) and _target(report)["lag"] == 0


def test_status_follows_a_pipeline_to_ready_and_flags_dlq_lag_and_data_loss(
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    ddb_client: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    table, lease_table = unique_name("st"), unique_name("leases")
    create_table(ddb_client, table, stream=True)
    write_items(lambda: ddb_client, table, [attrs.to_boto(sample_item(i)) for i in range(30)], 1)
    config = _config(
        tmp_path / "bridge.toml",
        dynamodb_endpoint,
        kafka_bootstrap,
        table,
        lease_table,
        tmp_path / "target.db",
    )
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    status = Status(config, env)
    arn = ddb_client.describe_table(TableName=table)["Table"]["LatestStreamArn"]

    stream = launch_stream(config, env, tmp_path / "stream.log")
    apply: ApplyProcess | None = None
    try:
        wait_until(lambda: read_capture(ddb_client, lease_table, arn) is not None, 60, "capture")
        time.sleep(1.1)  # the back-fill's T - margin (0 s) must follow the capture start
        assert (
            main(
                [
                    "backfill",
                    "--config",
                    str(config),
                    "--table",
                    table,
                    "--from",
                    "scan",
                    "--no-progress",
                ]
            )
            == 0
        ), capsys.readouterr().err
        write_items(
            lambda: ddb_client, table, [attrs.to_boto(sample_item(i)) for i in range(30, 40)], 1
        )

        apply = ApplyProcess(config, "--create-schema")
        apply.wait_joined()
        code, report = status.until(_all_caught_up)
        table_report, target = _table(report), _target(report)
        assert code == 0, report
        assert table_report["backfill"]["done"] is True
        (run,) = table_report["backfill"]["runs"]
        assert (run["parts_done"], run["parts"], run["items"]) == (2, 2, 30)
        assert table_report["dlq"]["depth"] == 0
        assert table_report["stream"]["data_loss"] == []
        assert all(s["owner"] for s in table_report["stream"]["shards"] if not s["finished"])
        assert target["group"] == "ddb-bridge.apply.local"
        assert sum(p["lag"] for p in target["partitions"]) == 0
        assert len(target["partitions"]) == 2
        assert target["verify"] is None
        assert target["verdict"]["ready"] is False
        assert target["verdict"]["missing"] == ["verify has not run for local"], target["verdict"]

        assert main(["verify", "--config", str(config), "--table", table]) == 0
        code, report = status()
        assert code == 0, report
        verify = _target(report)["verify"]
        assert (verify["differences"], verify["source_items"]) == (0, 40)
        assert _target(report)["verdict"] == {"ready": True, "missing": []}
        # The same report for people: the verdict in words.
        human = run_bridge("status", config, "--sample-s", "0", env=env, timeout_s=120)
        assert human.returncode == 0, human.stderr
        assert "READY" in human.stdout and "NOT READY" not in human.stdout, human.stdout

        # A record apply can never decode: dead-lettered, depth 1, needs attention.
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(f"ddb.{table}.changes", key=b'{"pk":{"S":"x"}}', value=b"not avro")
        assert producer.flush(30) == 0
        code, report = status.until(
            lambda r: _table(r)["dlq"]["depth"] >= 1 and _target(r)["lag"] == 0
        )
        assert code == 1
        assert _table(report)["dlq"]["depth"] == 1
        assert any("dead letter" in a for a in report["attention"]), report["attention"]
        assert "1 dead letter in ddb." + table + ".dlq" in _target(report)["verdict"]["missing"]

        # apply stopped, new writes: lag per partition, exit 1 under --max-lag 0 only.
        assert apply.terminate() == 0, apply.output
        apply = None
        write_items(
            lambda: ddb_client, table, [attrs.to_boto(sample_item(i)) for i in range(100, 112)], 1
        )
        code, report = status.until(lambda r: _stream_caught_up(r) and _target(r)["lag"] == 12)
        partitions = _target(report)["partitions"]
        assert sum(p["lag"] for p in partitions) == 12
        assert all(p["lag"] == p["end"] - p["committed"] for p in partitions)
        assert max(p["lag"] for p in partitions) > 0
        code, report = status("--max-lag", "0")
        assert code == 1
        assert any("12 events behind" in a for a in report["attention"]), report["attention"]
        assert any("12 events" in m for m in _target(report)["verdict"]["missing"])
    finally:
        if apply is not None:
            apply.terminate()
        stop_process(stream)

    # A data-loss alarm in the capture record: shown with its shard and message.
    record_data_loss(ddb_client, lease_table, arn, "shardId-gone", "checkpoint behind trim horizon")
    code, report = status()
    assert code == 1
    (alarm,) = _table(report)["stream"]["data_loss"]
    assert (alarm["shard_id"], alarm["message"]) == (
        "shardId-gone",
        "checkpoint behind trim horizon",
    )
    assert any("data-loss" in a for a in report["attention"]), report["attention"]
    assert any("data-loss alarm" in m for m in _target(report)["verdict"]["missing"])


def test_stream_only_verdict_per_target_with_postgresql_and_bad_input_is_a_config_error(
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    pg_dsn: str,
    unique_name: Any,
    ddb_client: Any,
    tmp_path: Path,
) -> None:
    """A stream-only migration needs no back-fill but capture for longer than the items live.
    Each target has its own group, lag, verify record and verdict: the PostgreSQL target,
    applied and verified, becomes READY; the SQLite one, never applied, stays NOT READY.
    A stream-only table without a declared lifetime, or an unknown table, exits 2."""
    table, lease_table = unique_name("so"), unique_name("leases")
    create_table(ddb_client, table, stream=True)
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    config = _config(
        tmp_path / "bridge.toml",
        dynamodb_endpoint,
        kafka_bootstrap,
        table,
        lease_table,
        tmp_path / "target.db",
        table_extra={"stream_only": True, "item_lifetime_s": 20},
        targets_extra={"pg": {"type": "postgres", "dsn": pg_dsn}},
    )
    status = Status(config, env)

    def targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {t["target"]: t for t in _table(report)["targets"]}

    stream = launch_stream(config, env, tmp_path / "stream.log")
    apply = None
    try:
        arn = ddb_client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        wait_until(lambda: read_capture(ddb_client, lease_table, arn) is not None, 60, "capture")
        write_items(lambda: ddb_client, table, [attrs.to_boto(sample_item(i)) for i in range(5)], 1)
        apply = ApplyProcess(config, "--target", "pg", "--create-schema")
        apply.wait_joined()
        code, report = status.until(lambda r: _stream_caught_up(r) and targets(r)["pg"]["lag"] == 0)
        assert code == 0, report  # not ready, but nothing needs attention
        assert _table(report)["stream_only"] is True
        assert targets(report)["local"]["lag"] == 5  # its group never ran
        assert targets(report)["local"]["group"] == "ddb-bridge.apply.local"
        missing = targets(report)["pg"]["verdict"]["missing"]
        assert any("capture began" in m and "item lifetime 20 s" in m for m in missing), missing
        assert not any("back-fill" in m for m in missing), missing
        assert main(["verify", "--config", str(config), "--table", table, "--target", "pg"]) == 0
        # Once capture is older than the items' lifetime, no back-fill is missing.
        started_s = _table(report)["stream"]["captured_since_ms"] / 1000
        time.sleep(max(0.0, started_s + 20.5 - time.time()))
        code, report = status()
        assert code == 0, report
        assert targets(report)["pg"]["verdict"] == {"ready": True, "missing": []}
        assert targets(report)["pg"]["verify"]["source_items"] == 5
        assert targets(report)["local"]["verdict"]["missing"] == [
            "apply group ddb-bridge.apply.local is 5 events behind",
            "verify has not run for local",
        ]
    finally:
        if apply is not None:
            apply.terminate()
        stop_process(stream)

    no_lifetime = _config(
        tmp_path / "b2.toml",
        dynamodb_endpoint,
        kafka_bootstrap,
        table,
        lease_table,
        tmp_path / "target.db",
    )
    proc = run_bridge("status", no_lifetime, "--stream-only", "--json", env=env, timeout_s=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "item_lifetime_s" in proc.stderr
    proc = run_bridge("status", config, "--table", "nope", env=env, timeout_s=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "nope" in proc.stderr
