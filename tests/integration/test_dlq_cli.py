"""`ddb-bridge dlq list|show|redrive` through the CLI, a real broker and a real PostgreSQL.

The story an operator lives: a CHECK constraint someone added on the target refuses some
items (SQLSTATE 23514, the event's fault: dead-lettered), and a foreign producer put a value
on the changes topic that does not decode. `dlq list` shows both with reasons and origins,
`dlq show` decodes one; the constraint is dropped, `dlq redrive --execute` re-publishes the
refused records byte for byte (the undecodable one is refused unless `--force`), apply
writes them, and a second re-drive publishes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from psycopg import sql

from bridge.dlq.topic import dlq_depth
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import NullTarget, PostgresTarget
from connectors.sinks.postgres import PostgresSink
from tests.apply_harness import ApplyProcess, apply_settings, produce, table_spec, write_config
from tests.kafka_helpers import consume_all, drain_more

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _put(table: str, pk: str, version: int) -> ChangeEvent:
    keys = {"pk": {"S": pk}, "sk": {"N": "1"}}
    return ChangeEvent(
        table=table,
        op=Op.MODIFY,
        keys=keys,
        version=version,
        origin=Origin.STREAM,
        new_image={**keys, "v": {"N": str(version)}},
        approximate_creation_time_ms=version // 1000,
    )


def _cli(config: Path, *args: str, command: str = "dlq") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ddb_bridge.cli.main", command, *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(config.parent),
    )


def _rows(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE NOT deleted").format(sql.Identifier(table))
        ).fetchone()
    return int(row[0]) if row else 0


def test_dead_letters_listed_shown_and_redriven_once(
    kafka_bootstrap: str,
    pg_dsn: str,
    dynamodb_endpoint: str,
    ddb_client: Any,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("dlq").replace("-", "_")
    settings = apply_settings(kafka_bootstrap, "pg", NullTarget(type="null"), [table])
    kafka = settings.kafka
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        "pg",
        f'type = "postgres"\ndsn = "{pg_dsn}"',
        [table],
    )
    with config.open("a") as f:  # the source, for `verify`
        f.write(f'\n[aws]\nendpoint_url = "{dynamodb_endpoint}"\n')
    # The target table exists with a constraint that refuses the `bad*` items.
    owner = PostgresSink(PostgresTarget(type="postgres", dsn=pg_dsn))
    owner.open([table_spec(table)], create_schema=True)
    owner.close()
    constraint = sql.SQL("ALTER TABLE {} ADD CONSTRAINT no_bad CHECK (pk NOT LIKE 'bad%')")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(constraint.format(sql.Identifier(table)))

    good = [_put(table, f"ok{i}", 1_700_000_000_000_000 + i) for i in range(10)]
    bad = [_put(table, f"bad{i}", 1_700_000_100_000_000 + i) for i in range(5)]
    produce(kafka, good + bad)
    ddb_client.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for e in good + bad:
        assert e.new_image is not None
        ddb_client.put_item(TableName=table, Item=attrs.to_boto(e.new_image))
    junk_key = attrs.canonical_key({"pk": {"S": "junk"}, "sk": {"N": "1"}})
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(kafka.changes_topic(table), key=junk_key, value=b"\xc3\x01not avro")
    assert producer.flush(30) == 0

    apply = ApplyProcess(config)
    try:
        apply.wait_joined()
        apply.wait_until(
            lambda: _rows(pg_dsn, table) == 10 and dlq_depth(kafka, table) == 6, timeout_s=120
        )
    finally:
        assert apply.terminate() == 0, apply.output[-3000:]

    # -- list: reasons and origins -----------------------------------------------------
    listed = _cli(config, "list", "--table", table, "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    assert len(letters) == 6
    refused = [x for x in letters if x["error"] == "PermanentError" and "23514" in x["reason"]]
    assert sorted(attrs.loads(x["key"].encode())["pk"]["S"] for x in refused) == [
        f"bad{i}" for i in range(5)
    ]
    assert all(x["origin"]["topic"] == kafka.changes_topic(table) for x in letters)
    assert all(not x["redriven"] for x in letters)
    (junk,) = [x for x in letters if x not in refused]
    assert "undecodable" in junk["reason"] or "Avro" in junk["reason"], junk
    text = _cli(config, "list", "--table", table)
    assert text.returncode == 0 and "23514" in text.stdout and "bad3" in text.stdout, text

    # -- show: one decoded, one raw ----------------------------------------------------
    first = refused[0]
    shown = _cli(config, "show", "--table", table, "--offset", first["dlq"], "--json")
    assert shown.returncode == 0, shown.stderr
    one = json.loads(shown.stdout)
    assert one["event"]["keys"] == attrs.loads(first["key"].encode())
    assert one["headers"]["ddb.dlq.reason"] == first["reason"]
    assert one["event"]["version"] in {e.version for e in bad}
    raw = _cli(config, "show", "--table", table, "--offset", junk["dlq"])
    assert raw.returncode == 0, raw.stderr
    assert b"\xc3\x01not avro".hex() in raw.stdout and "undecodable" in raw.stdout

    before = _cli(
        config, "--table", table, "--target", "pg", "--recheck-delay-s", "0", command="verify"
    )
    assert before.returncode == 1 and "missing in target    : 5" in before.stdout, before

    # -- redrive: dry run, refusal of the undecodable one, then the real thing ---------------
    changes_before = len(consume_all(kafka_bootstrap, kafka.changes_topic(table), 16))
    dry = _cli(config, "redrive", "--table", table, "--all")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and dry.stdout.count("would re-drive") == 5, dry.stdout
    assert junk["dlq"] in dry.stdout and "--force" in dry.stdout
    refused_run = _cli(config, "redrive", "--table", table, "--all", "--execute")
    assert refused_run.returncode == 1 and junk["dlq"] in refused_run.stderr, refused_run
    assert len(drain_more(kafka_bootstrap, kafka.changes_topic(table))) == changes_before

    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # the cause, fixed
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT no_bad").format(sql.Identifier(table)))
    done = _cli(config, "redrive", "--table", table, "--reason", "23514", "--execute")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("re-drove") == 5, done.stdout
    changes = drain_more(kafka_bootstrap, kafka.changes_topic(table))
    assert len(changes) == changes_before + 5
    dlq = {
        (m.partition(), m.offset()): m for m in drain_more(kafka_bootstrap, kafka.dlq_topic(table))
    }
    again = [m for m in changes if dict(m.headers() or []).get("ddb.redrive.from")]
    assert len(again) == 5
    for m in again:  # byte for byte: the dead letter's key and value
        p, o = dict(m.headers())["ddb.redrive.from"].decode().rsplit(":", 2)[-2:]
        letter = dlq[(int(p), int(o))]
        assert (m.key(), m.value()) == (letter.key(), letter.value())
        assert not any(h.startswith("ddb.dlq.") for h, _ in m.headers())
    assert dlq_depth(kafka, table) == 1  # only the undecodable one is left

    apply = ApplyProcess(config)
    try:
        apply.wait_joined()
        apply.wait_until(lambda: _rows(pg_dsn, table) == 15, timeout_s=120)
    finally:
        assert apply.terminate() == 0, apply.output[-3000:]
    reader = PostgresSink(PostgresTarget(type="postgres", dsn=pg_dsn))
    reader.open([table_spec(table)])
    try:
        items = reader.read_items(table, [e.keys for e in bad])
    finally:
        reader.close()
    assert [i["v"] if i else None for i in items] == [{"N": str(e.version)} for e in bad]
    assert dlq_depth(kafka, table) == 1  # nothing was dead-lettered again
    after = _cli(
        config, "--table", table, "--target", "pg", "--recheck-delay-s", "0", command="verify"
    )
    assert after.returncode == 0 and "0 differences" in after.stdout, after

    # -- a second re-drive publishes nothing --------------------------------------------
    second = _cli(config, "redrive", "--table", table, "--reason", "23514", "--execute")
    assert second.returncode == 0, second.stderr
    assert "nothing to re-drive" in second.stdout and "already re-driven" in second.stdout
    listed = json.loads(_cli(config, "list", "--table", table, "--json").stdout)
    assert sum(x["redriven"] for x in listed) == 5
    assert len(drain_more(kafka_bootstrap, kafka.changes_topic(table))) == len(changes)
