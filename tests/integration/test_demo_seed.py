"""`python -m ddb_bridge.demo.seed` (the compose file's one-shot `seed` service) against moto:
the demo table exists with its stream and holds the seeded items; a second run succeeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from bridge.runtime.config_file import write_config
from tests.stream_helpers import cli_env


def test_seed_creates_the_table_with_its_stream_and_writes_the_items(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any, tmp_path: Path
) -> None:
    table = unique_name("orders")
    config = write_config(
        tmp_path / "bridge.toml", aws={"region": "us-east-1"}, tables=[{"name": table}]
    )
    env = cli_env(dynamodb_endpoint, "127.0.0.1:9")  # the seed needs no Kafka
    cmd = [sys.executable, "-m", "ddb_bridge.demo.seed", "--config", str(config), "--items", "60"]
    for _ in range(2):  # a restarted compose stack runs it again
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    desc = ddb_client.describe_table(TableName=table)["Table"]
    assert desc["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert desc["KeySchema"][0]["AttributeName"] == "customer_id"
    assert ddb_client.scan(TableName=table, Select="COUNT")["Count"] == 60
