"""`ddb-bridge schema sql --table T`: the DDL that `apply --create-schema` runs on a PostgreSQL
or SQLite target, printed instead (run it yourself, or hand it to a DBA)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from bridge.runtime.config_file import write_config
from bridge.runtime.settings import load_settings
from connectors.dynamodb.aws import table_spec
from connectors.sinks.postgres import PostgresSink
from connectors.sinks.sqlite import SqliteSink
from tests.support.daemon import run_bridge

pytestmark = pytest.mark.e2e

TABLE = {"name": "orders", "hash_key": "customer", "range_key": "no", "range_key_type": "N"}


def schema_sql(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The key schema is declared: no AWS is asked (no credentials in the environment).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DDB_BRIDGE", "AWS_"))}
    return run_bridge("schema sql", config, "--table", "orders", *args, env=env, timeout_s=60)


def catalogue(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def test_sqlite_ddl_is_what_create_schema_runs(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "bridge.toml",
        tables=[TABLE],
        targets={"local": {"type": "sqlite", "path": tmp_path / "by-sink.db"}},
    )
    done = schema_sql(config)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    with sqlite3.connect(tmp_path / "by-hand.db") as conn:
        conn.executescript(done.stdout)
    settings = load_settings(config)
    sink = SqliteSink(settings.targets["local"])  # type: ignore[arg-type]
    sink.open([table_spec(None, settings, "orders")], create_schema=True)
    sink.close()
    assert catalogue(tmp_path / "by-hand.db") == catalogue(tmp_path / "by-sink.db")
    assert catalogue(tmp_path / "by-hand.db"), done.stdout


def test_postgres_ddl_is_what_create_schema_runs(pg_dsn: str, tmp_path: Path) -> None:
    mine, theirs = f"s{uuid.uuid4().hex[:8]}", f"s{uuid.uuid4().hex[:8]}"
    config = write_config(
        tmp_path / "bridge.toml",
        tables=[TABLE],
        apply={"target": "pg"},
        targets={
            "local": {"type": "sqlite", "path": tmp_path / "t.db"},
            "pg": {"type": "postgres", "dsn": pg_dsn, "schema_name": mine},
        },
    )
    done = schema_sql(config)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(done.stdout)  # type: ignore[arg-type]
    settings = load_settings(config, targets={"pg": {"type": "postgres", "dsn": pg_dsn,
                                                     "schema_name": theirs}})  # fmt: skip
    sink = PostgresSink(settings.targets["pg"])  # type: ignore[arg-type]
    sink.open([table_spec(None, settings, "orders")], create_schema=True)
    sink.close()
    query = (
        "SELECT c.relkind::text, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
        "a.attnotnull FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
        "WHERE n.nspname = %s ORDER BY 2, a.attnum"
    )
    with psycopg.connect(pg_dsn) as conn:
        by_hand = conn.execute(query, (mine,)).fetchall()
        by_sink = conn.execute(query, (theirs,)).fetchall()
    assert by_hand, done.stdout
    assert by_hand == by_sink


def test_several_sql_targets_need_a_choice_naming_them(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "bridge.toml",
        tables=[TABLE],
        apply={"target": "cql"},
        targets={
            "a": {"type": "sqlite", "path": tmp_path / "a.db"},
            "b": {"type": "sqlite", "path": tmp_path / "b.db"},
            "cql": {"type": "scylla"},
        },
    )
    done = schema_sql(config)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "a, b" in done.stderr and "--target" in done.stderr
    assert "Traceback" not in done.stderr
    chosen = schema_sql(config, "--target", "b")
    assert chosen.returncode == 0, chosen.stderr
    wrong = schema_sql(config, "--target", "cql")
    assert wrong.returncode == 2 and "scylla" in wrong.stderr, wrong.stderr
