"""DynamoDB's edges, end to end through the command line: stream + back-fill + apply into SQLite
and PostgreSQL, then `verify`.

The table has a capitalised name and a number hash key; its keys differ only in the 38th
significant digit, are negative, fractional and at both exponent limits (1E-130, ~1E+126);
`0.1` is written and then `0.10` (the same item for DynamoDB); attributes are named `version`
and `deleted` (the SQL layout's own column names); an item near the 400 KB limit, with binary
and a string of control characters (six bytes each once JSON-escaped), is modified with both
images in the stream; one item is deleted. Some items exist before the stream is enabled (only
the back-fill carries them), some are written while the stream runs, some change after the
back-fill. Both targets must then equal the source item for item, and `verify` must exit 0.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.kafka import lag
from bridge.model import attrs
from bridge.ports.sink import TableSpec
from bridge.runtime.config_file import write_config
from bridge.runtime.settings import KafkaSettings, PostgresTarget, SqliteTarget
from connectors.sinks.postgres import PostgresSink
from connectors.sinks.sqlite import SqliteSink
from ddb_bridge.demo.stream_check import SeenPositions, stream_positions
from ddb_bridge.demo.topic_tail import TopicTail
from tests.apply_harness import ApplyProcess
from tests.stream_helpers import cli_env, launch_stream, stop_process, wait_log
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 3

# Keys that a 28-digit decimal context merges, and the extremes of DynamoDB's number range.
BEFORE_STREAM_KEYS = [
    "12345678901234567890123456789012345671",
    "12345678901234567890123456789012345672",
    "-12345678901234567890123456789012345671",
    "-12345678901234567890123456789012345672",
    "1E-130",
    "-1E-130",
    "9.9999999999999999999999999999999999999E+125",
    "-9.9999999999999999999999999999999999999E+125",
]
DURING_STREAM_KEYS = ["0.5", "-0.25", "-7", "0.1", "1.0000000000000000000000000000000000001"]
BIG_KEY = "400000"
DELETED_KEY = "-7"


def item(key: str, n: int) -> dict[str, Any]:
    """A boto3 item whose attributes include the SQL layout's column names."""
    return {
        "id": {"N": key},
        "version": {"N": f"{n}.0000000000000000000000000000000001"},
        "deleted": {"BOOL": n % 2 == 0},
        "item": {"S": f"named like the layout's item column #{n}"},
        'Größe ünd "quotes"': {"NS": ["1E+125", "-1E-130", "0.10"]},
        "nested": {"M": {"version": {"N": "12345678901234567890123456789012345678"}}},
    }


def big_item(generation: int) -> dict[str, Any]:
    """~390 KB by DynamoDB's measure; as JSON with both images, several MB."""
    return {
        "id": {"N": BIG_KEY},
        "generation": {"N": str(generation)},
        "blob": {"B": os.urandom(190_000)},
        "control": {"S": "\x01\x1f" * 90_000 + f"#{generation}"},
        "text": {"S": "é" * 5_000},
    }


def av_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Exact equality of two wire-form attribute values, written independently of the code
    under test: numbers compare as exact decimals (Decimal(str) never rounds)."""
    ((ta, va),) = a.items()
    ((tb, vb),) = b.items()
    if ta != tb:
        return False
    if ta == "N":
        return Decimal(va) == Decimal(vb)
    if ta == "NS":
        return sorted(map(Decimal, va)) == sorted(map(Decimal, vb))
    if ta in ("SS", "BS"):
        return sorted(va) == sorted(vb)
    if ta == "L":
        return len(va) == len(vb) and all(av_equal(x, y) for x, y in zip(va, vb, strict=True))
    if ta == "M":
        return va.keys() == vb.keys() and all(av_equal(va[k], vb[k]) for k in va)
    return bool(va == vb)


def item_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(av_equal(a[k], b[k]) for k in a)


def scan_source(ddb: Any, table: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        out.extend(attrs.from_boto(i) for i in page["Items"])
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def run_cli(env: dict[str, str], *args: str, timeout_s: float = 300) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ddb_bridge.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return proc.returncode, proc.stdout + proc.stderr


def assert_target_equals_source(sink: Any, table: str, source: list[dict[str, Any]]) -> None:
    spec_keys = [{"id": s["id"]} for s in source]
    held = sink.read_items(table, spec_keys)
    for want, got in zip(source, held, strict=True):
        assert got is not None, f"missing in target: {want['id']}"
        assert item_equal(want, got), f"differs for {want['id']}"
    target_keys = {attrs.canonical_key(k) for k in sink.scan_keys(table)}
    assert target_keys == {attrs.canonical_key(k) for k in spec_keys}


def test_edges_of_dynamodb_through_stream_backfill_apply_and_verify(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    pg_dsn: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("Edge-Orders")
    lease_table = unique_name("leases")
    db = tmp_path / "target.db"
    ddb_client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # Before the stream: only the back-fill carries these.
    for n, key in enumerate(BEFORE_STREAM_KEYS):
        ddb_client.put_item(TableName=table, Item=item(key, n))
    ddb_client.put_item(TableName=table, Item=big_item(1))
    stream_arn = ddb_client.update_table(
        TableName=table,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]

    config = write_config(
        tmp_path / "bridge.toml",
        aws={"region": "us-east-1", "endpoint_url": dynamodb_endpoint},
        kafka={
            "bootstrap_servers": kafka_bootstrap,
            "partitions": PARTITIONS,
            "replication_factor": 1,
            "linger_ms": 5,
        },
        tables=[{"name": table}],
        stream={"lease_table": lease_table, "poll_interval_ms": 50, "lease_duration_ms": 4000},
        backfill={"skew_margin_s": 1, "segments": 3},
        apply={
            "target": "local",
            "batch_size": 50,
            "batch_window_ms": 50,
            "commit_interval_ms": 200,
        },
        targets={
            "local": {"type": "sqlite", "path": db},
            "pg": {"type": "postgres", "dsn": pg_dsn},
        },
    )
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    stream_log = tmp_path / "stream.log"
    stream = launch_stream(config, env, stream_log)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    seen = SeenPositions()
    tail = TopicTail(kafka, kafka.changes_topic(table), PARTITIONS, on_record=seen)
    appliers: list[ApplyProcess] = []
    try:
        wait_log(stream_log, "stream started", stream, timeout_s=60)
        # While the stream runs, before the back-fill.
        for n, key in enumerate(DURING_STREAM_KEYS, start=100):
            ddb_client.put_item(TableName=table, Item=item(key, n))
        time.sleep(2.5)  # the back-fill's T - skew_margin_s must fall after the capture start
        code, output = run_cli(
            env, "backfill", "--config", str(config), "--table", table, "--from", "scan",
            "--no-progress",
        )  # fmt: skip
        assert code == 0, output

        # After the back-fill: the same item through another spelling of its number, a
        # near-400 KB MODIFY with both images, and a delete.
        ddb_client.put_item(TableName=table, Item=item("0.10", 200))
        ddb_client.put_item(TableName=table, Item=big_item(2))
        ddb_client.delete_item(TableName=table, Key={"id": {"N": DELETED_KEY}})

        tail.start()
        appliers = [
            ApplyProcess(config, "--target", "local", "--create-schema"),
            ApplyProcess(config, "--target", "pg", "--create-schema"),
        ]
        for applier in appliers:
            applier.wait_joined()

        expected_positions = stream_positions(streams_client, stream_arn)
        assert len(expected_positions) >= len(DURING_STREAM_KEYS) + 3

        def caught_up() -> bool:
            assert stream.poll() is None, stream_log.read_text()
            assert tail.error is None, tail.error
            if not expected_positions <= seen.positions:
                return False
            return all(
                lag.caught_up(lag.group_lag(kafka, group, [tail.topic], tail=tail))
                for group in ("ddb-bridge.apply.local", "ddb-bridge.apply.pg")
            )

        wait_until(caught_up, 180, "every stream record in Kafka and applied by both targets")
        for applier in appliers:
            assert "Traceback" not in applier.output, applier.output

        source = scan_source(ddb_client, table)
        assert len(source) == len(BEFORE_STREAM_KEYS) + 1 + len(DURING_STREAM_KEYS) - 1
        assert all(s["id"]["N"] != DELETED_KEY for s in source)

        spec = TableSpec(source=table, target=table, hash_key="id", hash_type="N")
        sqlite = SqliteSink(SqliteTarget(type="sqlite", path=str(db)))
        postgres = PostgresSink(PostgresTarget(type="postgres", dsn=pg_dsn))
        for sink in (sqlite, postgres):
            sink.open([spec])
            try:
                assert_target_equals_source(sink, table, source)
            finally:
                sink.close()

        for target in ("local", "pg"):
            code, output = run_cli(
                env, "verify", "--config", str(config), "--table", table, "--target", target
            )
            assert code == 0, output
            assert output.rstrip().endswith("0 differences"), output
    finally:
        tail.stop_event.set()
        for applier in appliers:
            if applier.proc.poll() is None:
                applier.terminate()
        if stream.poll() is None:
            stop_process(stream)


def test_independent_comparator_sees_a_38th_digit_difference() -> None:
    """The comparator above must itself be able to fail where the bug lived."""
    a = {"id": {"N": "12345678901234567890123456789012345671"}}
    b = {"id": {"N": "12345678901234567890123456789012345672"}}
    assert not item_equal(a, b)
    assert item_equal({"x": {"N": "0.1"}}, {"x": {"N": "0.10"}})
    assert not item_equal({"x": {"B": base64.b64encode(b"a").decode()}}, {"x": {"S": "YQ=="}})
