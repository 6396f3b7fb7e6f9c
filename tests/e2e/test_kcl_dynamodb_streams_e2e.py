"""End to end on DynamoDB Streams through the KCL: writes to a moto table -> its stream ->
`ddb-bridge kcl run --transport dynamodb-streams` (KCL 3, the DynamoDB Streams Kinesis Adapter,
the bridge's record processor) -> Kafka -> `ddb-bridge apply` into SQLite -> `ddb-bridge
verify` finds the target equal to the table. SIGTERM then stops `kcl run` cleanly (exit 0).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.apply_harness import ApplyProcess, write_config
from tests.kcl_helpers import require_streams_daemon
from tests.stream_helpers import cli_env, create_stream_table
from tests.support.daemon import BridgeDaemon, run_bridge
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_dynamodb_stream_through_kcl_run_and_apply_makes_the_target_equal_the_table(
    dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    require_streams_daemon()
    table = unique_name("kcl3e2e")
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
    create_stream_table(ddb, table)
    db = tmp_path / "target.db"
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        "local",
        {"type": "sqlite", "path": str(db)},
        [table],
        sections={
            "aws": {"endpoint_url": dynamodb_endpoint},
            "stream": {"lease_table": f"{table}-leases"},
        },
    )
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)

    # A random history of 30 items before the daemon starts, and more while it runs.
    rng = random.Random(25)

    def history(first: int, n: int) -> None:
        for i in range(first, first + n):
            key = {"pk": {"S": f"item-{rng.randrange(30)}"}, "sk": {"N": "1"}}
            if rng.random() < 0.2:
                ddb.delete_item(TableName=table, Key=key)
            else:
                ddb.put_item(TableName=table, Item={**key, "n": {"N": str(i)},
                                                    "name": {"S": f"v{i}"}})  # fmt: skip

    history(0, 200)
    daemon = BridgeDaemon(
        "kcl run",
        config,
        "--table", table, "--transport", "dynamodb-streams",
        "--set", "failoverTimeMillis=3000", "--set", "idleTimeBetweenReadsInMillis=200",
        env=env,
        ready="created topic",
    )  # fmt: skip
    apply = None
    try:
        daemon.wait_ready(120)
        apply = ApplyProcess(config, "--create-schema")
        apply.wait_joined()
        history(200, 150)

        def equal() -> bool:
            done = run_bridge("verify", config, "--table", table, env=env, timeout_s=120)
            return done.returncode == 0

        daemon.wait_until(equal, timeout_s=150, what="verify finds the target equal")
        items = len(ddb.scan(TableName=table)["Items"])
        done = run_bridge("verify", config, "--table", table, env=env, timeout_s=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"source items checked : {items}" in done.stdout
        assert apply.terminate() == 0, apply.output
        # SIGTERM: the JVM's shutdown hook checkpoints every shard, then `kcl run` exits 0.
        assert daemon.terminate(60) == 0, daemon.output[-3000:]
        assert "Traceback" not in daemon.output
    finally:
        if apply is not None and apply.poll() is None:
            apply.kill()
        daemon.stop()


def test_kill_9_of_kcl_run_stops_its_daemon(
    dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    """No JVM is left reading the stream after `kcl run` itself is killed: it gets SIGTERM."""
    require_streams_daemon()
    table = unique_name("kcl3orphan")
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
    create_stream_table(ddb, table)
    config = write_config(
        tmp_path / "bridge.toml", kafka_bootstrap, "local", {"type": "null"}, [table],
        sections={"aws": {"endpoint_url": dynamodb_endpoint},
                  "stream": {"lease_table": f"{table}-leases"}},
    )  # fmt: skip
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    daemon = BridgeDaemon(
        "kcl run", config, "--table", table, "--transport", "dynamodb-streams",
        env=env, ready="Initializing LeaseCoordinator",
    )  # fmt: skip
    try:
        daemon.wait_ready(120)
        children = Path(f"/proc/{daemon.pid}/task/{daemon.pid}/children").read_text().split()
        (jvm,) = [int(c) for c in children]
        assert "java" in Path(f"/proc/{jvm}/cmdline").read_bytes().decode(errors="replace")
        daemon.kill()
        wait_until(lambda: not Path(f"/proc/{jvm}").exists() or _zombie(jvm), 60,
                   "the daemon's JVM to stop")  # fmt: skip
    finally:
        daemon.stop()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
