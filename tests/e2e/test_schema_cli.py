"""`ddb-bridge schema cql --table T` through the command line."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bridge.runtime.config_file import write_config
from tests.support.daemon import run_bridge

pytestmark = pytest.mark.e2e


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE")}
    return run_bridge("schema cql", config, *args, env=env, timeout_s=60)


def test_declared_key_schema_typed_columns_and_ttl(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "bridge.toml",
        tables=[
            {
                "name": "orders",
                "hash_key": "customer",
                "range_key": "order_no",
                "range_key_type": "N",
                "ttl_attribute": "expires",
                "columns": {"order_no": "bigint", "status": "text", "total": "decimal"},
            }
        ],
        apply={"target": "cql"},
        targets={
            "cql": {
                "type": "scylla",
                "keyspace": "shop",
                "replication": "{'class': 'NetworkTopologyStrategy', 'dc1': 3}",
            }
        },
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
    config = write_config(tmp_path / "bridge.toml", aws={"endpoint_url": dynamodb_endpoint})
    done = run_cli(config, "--table", table)
    assert done.returncode == 0, done.stderr
    assert f'CREATE TABLE IF NOT EXISTS "migrated"."{table}" (\n    "id" blob,\n' in done.stdout
    assert 'PRIMARY KEY ("id")' in done.stdout


def test_names_keep_their_case_and_characters(tmp_path: Path) -> None:
    """Unquoted, CQL would create `shop.orders` for `Shop.Orders` and then not find it."""
    config = write_config(
        tmp_path / "bridge.toml",
        tables=[{"name": "Orders", "hash_key": 'Key "1" é'}],
        targets={"cql": {"type": "scylla", "keyspace": "Shop"}},
    )
    done = run_cli(config, "--table", "Orders", "--target", "cql")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('CREATE KEYSPACE IF NOT EXISTS "Shop" WITH')
    assert 'CREATE TABLE IF NOT EXISTS "Shop"."Orders" (\n    "Key ""1"" é" text,\n' in done.stdout
    assert 'PRIMARY KEY ("Key ""1"" é")' in done.stdout


def test_a_table_name_cql_cannot_hold_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "bridge.toml", tables=[{"name": "orders-v2", "hash_key": "pk"}]
    )
    done = run_cli(config, "--table", "orders-v2")
    assert done.returncode == 2
    assert "set target_table" in done.stderr


@pytest.mark.integration
def test_printed_ddl_runs_on_a_real_cql_node_and_the_sink_uses_it(
    tmp_path: Path, cql_endpoint: Any, unique_name: Any
) -> None:
    """The printed statements, run as they are by a CQL client, make a schema the sink opens
    without --create-schema and writes into: typed columns, the map, TTL, quoted names."""
    from bridge.model.event import ChangeEvent, Op, Origin
    from bridge.runtime.settings import load_settings
    from connectors.dynamodb import aws
    from connectors.sinks.scylla import ScyllaSink

    suffix = unique_name("x").split("-")[1]
    keyspace, table = f"Shop_{suffix}", f"Orders_{suffix}"
    config = write_config(
        tmp_path / "bridge.toml",
        tables=[
            {
                "name": table,
                "hash_key": 'Key "1" é',
                "range_key": "order_no",
                "range_key_type": "N",
                "ttl_attribute": "expires",
                "columns": {"order_no": "bigint", "status": "text", "total": "decimal"},
            }
        ],
        # the CQL node's section, as its launcher writes it
        targets={"cql": tomllib.loads(cql_endpoint.toml(keyspace))},
    )
    done = run_cli(config, "--table", table)
    assert done.returncode == 0, done.stderr
    statements = [s.strip() for s in done.stdout.split(";\n") if s.strip()]
    assert len(statements) == 2

    from cassandra.cluster import Cluster

    cluster = Cluster(cql_endpoint.hosts, port=cql_endpoint.port)
    session = cluster.connect()
    settings = load_settings(config)
    spec = aws.table_spec(None, settings, table)  # declared: no AWS access
    assert (spec.hash_key, spec.range_key) == ('Key "1" é', "order_no")
    sink = ScyllaSink(settings.target("cql"))
    try:
        for statement in statements:
            session.execute(statement)
        sink.open([spec], create_schema=False)
        keys = {'Key "1" é': {"S": "c1"}, "order_no": {"N": "42"}}
        item = {**keys, "status": {"S": "paid"}, "total": {"N": "9.99"}, "note": {"S": "n"}}
        sink.write_batch([ChangeEvent(table, Op.INSERT, keys, 10, Origin.STREAM, new_image=item)])
        assert sink.read_items(table, [keys]) == [item]
        row = session.execute(f'SELECT "status", "attrs" FROM "{keyspace}"."{table}"').one()
        assert row.status == "paid" and set(row.attrs) == {"note"}
    finally:
        sink.close()
        cluster.shutdown()
