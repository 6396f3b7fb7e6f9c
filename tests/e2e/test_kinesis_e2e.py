"""Kinesis Data Streams as the transport, end to end through the command line.

DynamoDB-shaped change records on a (moto) Kinesis data stream, with duplicates, late older
changes and both timestamp precisions -> `ddb-bridge stream` (`transport = "kinesis"`) ->
Kafka -> `ddb-bridge apply` into SQLite -> the target equals the source (the items the
records describe are also in the moto DynamoDB table, so `ddb-bridge verify` compares: 0
differences). And `ddb-bridge backfill` refuses a table whose Kinesis stream is not being
captured (a DynamoDB-stream capture does not count), and accepts it once it is.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.model import attrs
from bridge.ports.sink import TableSpec
from bridge.runtime.config_file import write_config
from bridge.runtime.settings import SqliteTarget
from connectors.dynamodb.capture import ensure_lease_table, record_capture_start
from connectors.sinks.sqlite import SqliteSink
from ddb_bridge.cli.main import main
from tests.apply_harness import ApplyProcess
from tests.backfill_helpers import create_table, write_items
from tests.kinesis_records import MICROSECOND, MILLISECOND
from tests.kinesis_stream_helpers import (
    Change,
    change,
    create_kinesis_stream,
    kinesis_client,
    put_changes,
)
from tests.samples import sample_item
from tests.stream_helpers import cli_env, launch_stream, stop_process, wait_log
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

BASE_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def run_cli(env: dict[str, str], *args: str, timeout_s: float = 120) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ddb_bridge.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return proc.returncode, proc.stdout + proc.stderr


def history(rng: random.Random, keys: int) -> tuple[list[Change], dict[tuple[str, int], Change]]:
    """Changes to put, in arrival order (duplicates and late older ones included), and the
    newest change of each item (what the target must end with)."""
    arrivals: list[Change] = []
    newest: dict[tuple[str, int], Change] = {}
    clock = BASE_US
    for round_ in range(4):
        for k in range(keys):
            clock += rng.randrange(1, 3_000)
            precision = MILLISECOND if k % 3 == 0 else MICROSECOND
            # Millisecond records carry a whole millisecond, as DynamoDB writes them.
            at = clock // 1000 * 1000 if precision == MILLISECOND else clock
            event = "INSERT" if round_ == 0 else ("REMOVE" if rng.random() < 0.15 else "MODIFY")
            c = change(f"item-{k:03d}", at, f"r{round_}-k{k}", event=event, precision=precision)
            c = Change(**{**c.__dict__, "sk": k % 5})
            arrivals.append(c)
            if rng.random() < 0.1:
                arrivals.append(c)  # delivered twice
            newest[(c.pk, c.sk)] = c
            clock += 1_000  # the next change of anything is in a later millisecond
    # Late older changes: an item's change from long before its newest arrives last.
    for k in range(0, keys, 7):
        late = change(f"item-{k:03d}", BASE_US + 1 + k, f"late-k{k}", sk=k % 5)
        arrivals.append(late)
    return arrivals, newest


def test_kinesis_records_stream_apply_verify(
    ddb_client: Any, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    kinesis = kinesis_client(dynamodb_endpoint)
    table, name, lease_table = unique_name("KinOrders"), unique_name("kin"), unique_name("l")
    create_table(ddb_client, table, stream=False)  # pk S / sk N, no DynamoDB stream
    kinesis_arn = create_kinesis_stream(kinesis, name, shards=2)
    arrivals, newest = history(random.Random(15), 60)
    # The source table holds what the records describe: each item's newest state.
    for c in newest.values():
        if c.event != "REMOVE":
            ddb_client.put_item(TableName=table, Item=c.image)
    put_changes(kinesis, name, table, arrivals)

    db = tmp_path / "target.db"
    config = write_config(
        tmp_path / "bridge.toml",
        aws={"region": "us-east-1", "endpoint_url": dynamodb_endpoint},
        kafka={
            "bootstrap_servers": kafka_bootstrap,
            "partitions": 3,
            "replication_factor": 1,
            "linger_ms": 5,
        },
        tables=[{"name": table, "kinesis_stream": name}],
        stream={
            "transport": "kinesis",
            "lease_table": lease_table,
            "poll_interval_ms": 50,
            "idle_poll_max_ms": 200,
            "lease_duration_ms": 3000,
        },
        apply={
            "target": "local",
            "batch_size": 50,
            "batch_window_ms": 50,
            "commit_interval_ms": 200,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
        },
        targets={"local": {"type": "sqlite", "path": db}},
    )
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    stream_log = tmp_path / "stream.log"
    stream = launch_stream(config, env, stream_log)
    applier: ApplyProcess | None = None
    try:
        wait_log(stream_log, "stream started", stream, timeout_s=60)
        applier = ApplyProcess(config, "--create-schema")
        applier.wait_joined()

        verified: list[str] = []

        def target_equals_source() -> bool:
            assert stream.poll() is None, stream_log.read_text()
            code, output = run_cli(
                env, "verify", "--config", str(config), "--table", table, "--target", "local"
            )
            verified[:] = [output]
            return code == 0 and output.rstrip().endswith("0 differences")

        try:
            wait_until(target_equals_source, 180, "verify to report 0 differences")
        except AssertionError as exc:
            raise AssertionError(f"{verified}\n{applier.output[-2000:]}") from exc
        assert "Traceback" not in applier.output, applier.output

        # `status` reads the Kinesis transport's leases and peeks its shards.
        def stream_section() -> dict[str, Any]:
            code, output = run_cli(
                env, "status", "--config", str(config), "--json", "--sample-s", "0"
            )
            assert code in (0, 1) and output.startswith("{"), output
            (entry,) = json.loads(output[: output.rindex("}") + 1])["tables"]
            return dict(entry["stream"])

        report = stream_section()
        assert report["stream_arn"] == kinesis_arn, report
        assert report["captured_since_ms"] is not None and not report["unleased_shards"]
        assert len(report["shards"]) == 2
        assert all(s["unread"] == 0 and s["error"] is None for s in report["shards"]), report
    finally:
        if applier is not None and applier.proc.poll() is None:
            applier.terminate()
        if stream.poll() is None:
            assert stop_process(stream, signal.SIGTERM) == 0, stream_log.read_text()

    # Item for item, independently of `verify`: the newest change of each item won.
    live = {k: c for k, c in newest.items() if c.event != "REMOVE"}
    removed = [k for k, c in newest.items() if c.event == "REMOVE"]
    assert live and removed
    sink = SqliteSink(SqliteTarget(type="sqlite", path=str(db)))
    sink.open([TableSpec(table, table, "pk", "S", "sk", "N")])
    try:
        keys = [attrs.from_boto(c.keys) for c in live.values()]
        held = sink.read_items(table, keys)
        for c, got in zip(live.values(), held, strict=True):
            assert got is not None and got["v"] == {"S": c.value}, (c, got)
        gone = sink.read_items(table, [attrs.from_boto(newest[k].keys) for k in removed])
        assert gone == [None] * len(removed)
    finally:
        sink.close()


def test_backfill_checks_the_kinesis_capture(
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    ddb_client: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kinesis = kinesis_client(dynamodb_endpoint)
    table, lease_table, name = unique_name("kin-safe"), unique_name("leases"), unique_name("k")
    create_table(ddb_client, table, stream=True)
    write_items(lambda: ddb_client, table, [attrs.to_boto(sample_item(i)) for i in range(20)], 1)
    kinesis_arn = create_kinesis_stream(kinesis, name)
    time.sleep(1.2)  # T - margin (0 s here) must not precede the stream's creation
    config = write_config(
        tmp_path / "bridge.toml",
        aws={"endpoint_url": dynamodb_endpoint},
        kafka={"bootstrap_servers": kafka_bootstrap, "partitions": 2, "replication_factor": 1},
        stream={
            "transport": "kinesis",
            "stream_name": name,
            "lease_table": lease_table,
            "lease_duration_ms": 2000,
        },
        backfill={"skew_margin_s": 0, "segments": 2},
    )
    base = ["backfill", "--config", str(config), "--table", table, "--no-progress"]

    def run(*extra: str) -> tuple[int, str, str]:
        code = main([*base, *extra])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    # The table's DynamoDB stream is captured, but that is not the transport configured.
    ddb_arn = ddb_client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    ensure_lease_table(ddb_client, lease_table)
    record_capture_start(ddb_client, lease_table, table, ddb_arn, "TRIM_HORIZON")
    code, _, err = run("--from", "scan")
    assert code == 1, err
    assert f"Kinesis data stream {kinesis_arn}" in err and "not being captured" in err

    record_capture_start(ddb_client, lease_table, table, kinesis_arn, "TRIM_HORIZON")
    code, out, err = run("--from", "scan")
    assert code == 0, err
    assert "override" not in err and "items published                      20" in out
