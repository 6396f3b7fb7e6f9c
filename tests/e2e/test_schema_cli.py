"""`ddb-bridge schema cql --table T` through the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE")}
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli.main", "schema", "cql", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_declared_key_schema_typed_columns_and_ttl(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        """
[[tables]]
name = "orders"
hash_key = "customer"
range_key = "order_no"
range_key_type = "N"
ttl_attribute = "expires"
columns = { order_no = "bigint", status = "text", total = "decimal" }

[apply]
target = "cql"

[targets.cql]
type = "scylla"
keyspace = "shop"
replication = "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"
"""
    )
    done = run_cli(config, "--table", "orders")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        'CREATE KEYSPACE IF NOT EXISTS "shop" WITH replication = '
        "{'class': 'NetworkTopologyStrategy', 'dc1': 3};\n\n"
        'CREATE TABLE IF NOT EXISTS "shop"."orders" (\n'
        '    "customer" text,\n'
        '    "order_no" bigint,\n'
        '    "status" text,\n'
        '    "total" decimal,\n'
        '    "attrs" map<text, text>,\n'
        '    PRIMARY KEY (("customer"), "order_no")\n'
        ");\n"
    )


@pytest.mark.integration
def test_key_schema_from_describe_table(
    tmp_path: Path, ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    table = unique_name("cqlschema").replace("-", "_")
    ddb_client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "B"}],
        BillingMode="PAY_PER_REQUEST",
    )
    config = tmp_path / "bridge.toml"
    config.write_text(f'[aws]\nendpoint_url = "{dynamodb_endpoint}"\n')
    done = run_cli(config, "--table", table)
    assert done.returncode == 0, done.stderr
    assert f'CREATE TABLE IF NOT EXISTS "migrated"."{table}" (\n    "id" blob,\n' in done.stdout
    assert 'PRIMARY KEY ("id")' in done.stdout


def test_names_keep_their_case_and_characters(tmp_path: Path) -> None:
    """Unquoted, CQL would create `shop.orders` for `Shop.Orders` and then not find it."""
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[[tables]]\nname = "Orders"\nhash_key = \'Key "1" é\'\n'
        '[targets.cql]\ntype = "scylla"\nkeyspace = "Shop"\n'
    )
    done = run_cli(config, "--table", "Orders", "--target", "cql")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('CREATE KEYSPACE IF NOT EXISTS "Shop" WITH')
    assert 'CREATE TABLE IF NOT EXISTS "Shop"."Orders" (\n    "Key ""1"" é" text,\n' in done.stdout
    assert 'PRIMARY KEY ("Key ""1"" é")' in done.stdout


def test_a_table_name_cql_cannot_hold_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[[tables]]\nname = "orders-v2"\nhash_key = "pk"\n')
    done = run_cli(config, "--table", "orders-v2")
    assert done.returncode == 2
    assert "set target_table" in done.stderr
