"""End to end through the Java KCL: DynamoDB-shaped change records on a Kinesis stream -> the
real MultiLangDaemon and the bridge's record processor -> Kafka -> `ddb-bridge apply` into
SQLite -> `ddb-bridge verify` finds the target equal to the source table.

The source table on moto holds the final state of a random history; the history itself goes
on a two-shard Kinesis stream as DynamoDB writes it there (records of one item on one shard,
some of them in one millisecond, one delivered twice)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import boto3
import pytest

from ddb_bridge.cli.main import main
from tests.apply_harness import ApplyProcess, write_config
from tests.h2c_proxy import h2c_front
from tests.kcl_helpers import Daemon, require_daemon, write_properties
from tests.kinesis_records import MICROSECOND, MILLISECOND, kinesis_data
from tests.kinesis_stream_helpers import create_kinesis_stream, kinesis_client
from tests.stream_helpers import cli_env, create_stream_table, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

BASE_US = 1_790_000_000_000_000


def test_kinesis_records_through_the_kcl_and_apply_make_the_target_equal_the_source(
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_daemon()
    table = unique_name("kcle2e")
    stream = f"{table}-changes"
    kinesis = kinesis_client(dynamodb_endpoint)
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
    create_stream_table(ddb, table, view=None)
    create_kinesis_stream(kinesis, stream, shards=2)

    # A random history of 25 items: the table gets each write, the stream its change record.
    rng = random.Random(15)
    state: dict[str, dict[str, Any]] = {}
    records: list[dict[str, Any]] = []
    now = BASE_US
    for n in range(300):
        pk = f"item-{rng.randrange(25)}"
        key = {"pk": {"S": pk}, "sk": {"N": "1"}}
        old = state.get(pk)
        # Some changes share a millisecond (MILLISECOND precision: ties by shard order).
        now += rng.choice([0, 0, 1000, 2500])
        precision = MILLISECOND if n % 3 else MICROSECOND
        if old is not None and rng.random() < 0.25:
            ddb.delete_item(TableName=table, Key=key)
            del state[pk]
            data = kinesis_data("REMOVE", key, old_image=old, table=table, created_us=now,
                                precision=precision)  # fmt: skip
        else:
            item = {**key, "n": {"N": str(n)}, "name": {"S": f"v{n}"}}
            ddb.put_item(TableName=table, Item=item)
            state[pk] = item
            event = "MODIFY" if old is not None else "INSERT"
            data = kinesis_data(event, key, new_image=item, old_image=old, table=table,
                                created_us=now, precision=precision)  # fmt: skip
        records.append({"Data": data, "PartitionKey": pk})
    records.insert(120, records[100])  # Kinesis delivers one change twice
    for start in range(0, len(records), 100):
        out = kinesis.put_records(StreamName=stream, Records=records[start : start + 100])
        assert out.get("FailedRecordCount", 0) == 0

    db = tmp_path / "target.db"
    config = write_config(
        tmp_path / "bridge.toml", kafka_bootstrap, "local", f'type = "sqlite"\npath = "{db}"',
        [table],
    )  # fmt: skip
    with config.open("a") as fh:
        fh.write(f'[aws]\nendpoint_url = "{dynamodb_endpoint}"\n')
        fh.write(f'[stream]\nlease_table = "{table}-leases"\n')
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)

    def verify() -> int:
        code = main(["verify", "--config", str(config), "--table", table])
        capsys.readouterr()
        return code

    with h2c_front(dynamodb_endpoint) as kinesis_url:
        props = write_properties(
            tmp_path, env, config, table, stream, "--kinesis-endpoint", kinesis_url,
            "--set", "shardSyncIntervalMillis=2000", "--set", "idleTimeBetweenReadsInMillis=200",
        )  # fmt: skip
        daemon = Daemon(props, env, tmp_path / "daemon.log")
        apply = None
        try:
            # The topics exist once the first processor started.
            wait_for(lambda: "created topic" in daemon.text() or not daemon.alive(), 90,
                     "the processor's start")  # fmt: skip
            assert daemon.alive(), daemon.text()[-3000:]
            apply = ApplyProcess(config, "--create-schema")
            apply.wait_joined()
            apply.wait_until(lambda: verify() == 0, timeout_s=120)
            code = main(["verify", "--config", str(config), "--table", table])
            out = capsys.readouterr().out
            assert code == 0, out
            assert f"source items checked : {len(state)}" in out
            assert apply.terminate() == 0, apply.output
        finally:
            if apply is not None and apply.proc.poll() is None:
                apply.kill()
            daemon.kill()
