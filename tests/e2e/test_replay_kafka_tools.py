"""Replay as the README tells users to: Kafka's own consumer-group command moves a stopped
apply group back to the start of its topic, and `ddb-bridge apply` reads everything again.

Against Apache Kafka (tests/kafka_broker.py): the command is kafka-tools' ConsumerGroupCommand,
the class behind `kafka-consumer-groups.sh`, run from the same jars as the broker.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bridge import attrs
from bridge.apply.app import group_id
from bridge.lag import PartitionLag, caught_up, group_lag
from bridge.settings import KafkaSettings, SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from tests import kafka_broker
from tests.apply_harness import (
    ApplyProcess,
    History,
    delivery_plan,
    produce,
    random_history,
    table_spec,
    target_differences,
    write_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of the target table as stored: keys, item text, version, tombstone flag."""
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall())


def consumer_groups(bootstrap: str, group: str, topic: str, *to: str) -> str:
    """`kafka-consumer-groups.sh --reset-offsets ... --execute`; its output."""
    return kafka_broker.run_tool(
        kafka_broker.CONSUMER_GROUP_COMMAND,
        "--bootstrap-server",
        bootstrap,
        "--group",
        group,
        "--topic",
        topic,
        "--reset-offsets",
        *to,
        "--execute",
    )


def reset_to_earliest(bootstrap: str, group: str, topic: str) -> str:
    output = consumer_groups(bootstrap, group, topic, "--to-earliest")
    assert "Error" not in output, output
    return output


def apply_until_caught_up(config: Path, kafka: KafkaSettings, group: str, topic: str) -> str:
    """Run `ddb-bridge apply` until its group has committed the end of every partition, then
    stop it with SIGTERM (it commits on the way out and leaves the group). Returns its log."""
    proc = ApplyProcess(config, "--create-schema")
    proc.wait_joined()
    proc.wait_until(lambda: caught_up(group_lag(kafka, group, [topic])), timeout_s=180)
    assert proc.terminate() == 0, proc.output
    assert "Traceback" not in proc.output
    return proc.output


def corrupt(db: Path, table: str, history: History) -> list[str]:
    """Damage three rows the way a target goes wrong outside the bridge; returns their keys.
    A live row deleted by hand; a live row rolled back to an older, wrong image (a stale
    restore); a deleted key brought back to life at an older version."""
    live = sorted(history.live)
    gone = sorted(kb for kb, item in history.final.items() if item is None)
    assert len(live) >= 2 and gone, "the history needs live and deleted keys"
    damaged = []
    with sqlite3.connect(db) as conn:
        by_key = {
            attrs.canonical_key({"pk": {"S": pk}, "sk": {"N": str(sk)}}): (pk, sk, item, version)
            for pk, sk, item, version, _deleted in conn.execute(f'SELECT * FROM "{table}"')
        }
        pk, sk, _, _ = by_key[live[0]]
        conn.execute(f'DELETE FROM "{table}" WHERE pk = ? AND sk = ?', (pk, sk))
        damaged.append(pk)

        pk, sk, item, version = by_key[live[1]]
        stale = json.loads(item) | {"name": {"S": "stale copy"}}
        conn.execute(
            f'UPDATE "{table}" SET item = ?, version = ? WHERE pk = ? AND sk = ?',
            (json.dumps(stale), version - 1, pk, sk),
        )
        damaged.append(pk)

        pk, sk, _, version = by_key[gone[0]]
        revived = {"pk": {"S": pk}, "sk": {"N": str(sk)}, "name": {"S": "back from the dead"}}
        conn.execute(
            f'UPDATE "{table}" SET item = ?, version = ?, deleted = 0 WHERE pk = ? AND sk = ?',
            (json.dumps(revived), version - 1, pk, sk),
        )
        damaged.append(pk)
    return damaged


def offsets(lags: list[PartitionLag]) -> dict[int, int | None]:
    return {p.partition: p.committed for p in lags}


def test_replay_with_kafka_consumer_groups_reset_is_idempotent_and_repairs_the_target(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table, target = unique_name("replay").replace("-", "_"), unique_name("local")
    db = tmp_path / "target.db"
    # Every key ends either live or deleted (a tombstone row), with a back-fill in the mix.
    history = random_history(table, seed=31, n_keys=80, n_ops=900)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=4, replication_factor=1)
    produce(kafka, delivery_plan(history.events, seed=32))
    topic, group = kafka.changes_topic(table), group_id(target)
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        target,
        f'type = "sqlite"\npath = "{db}"',
        [table],
    )
    reader = SqliteSink(SqliteTarget(type="sqlite", path=str(db)))

    apply_until_caught_up(config, kafka, group, topic)
    reader.open([table_spec(table)])
    try:
        assert target_differences(reader, history) == []
        applied = rows(db, table)
        end = {p.partition: p.end for p in group_lag(kafka, group, [topic])}
        assert offsets(group_lag(kafka, group, [topic])) == end

        # Replay 1: the whole topic again over an intact target changes nothing.
        output = reset_to_earliest(kafka_bootstrap, group, topic)
        assert offsets(group_lag(kafka, group, [topic])) == dict.fromkeys(end, 0), output
        apply_until_caught_up(config, kafka, group, topic)
        assert rows(db, table) == applied

        # Replay 2: after the target was damaged by hand, the log puts every row back.
        damaged = corrupt(db, table, history)
        assert len(target_differences(reader, history, limit=10)) >= len(damaged)
        reset_to_earliest(kafka_bootstrap, group, topic)
        apply_until_caught_up(config, kafka, group, topic)
        assert target_differences(reader, history) == []
        assert rows(db, table) == applied
    finally:
        reader.close()


def test_reset_offsets_is_refused_while_apply_runs(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    """Why the README says to stop apply first: Kafka refuses to move a live group's offsets."""
    table, target = unique_name("live").replace("-", "_"), unique_name("null")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=4, replication_factor=1)
    produce(kafka, random_history(table, seed=33, n_keys=10, n_ops=50).events)
    config = write_config(
        tmp_path / "bridge.toml", kafka_bootstrap, target, 'type = "null"', [table]
    )

    def lags() -> list[PartitionLag]:
        return group_lag(kafka, group_id(target), [kafka.changes_topic(table)])

    proc = ApplyProcess(config)
    proc.wait_joined()
    try:
        proc.wait_until(lambda: caught_up(lags()))
        before = offsets(lags())
        # The tool prints the refusal and still exits 0 (seen with 4.4.0): read its output.
        output = consumer_groups(
            kafka_bootstrap, group_id(target), kafka.changes_topic(table), "--to-earliest"
        )
        assert "can only be reset if the group" in output and "is inactive" in output, output
        assert offsets(lags()) == before
    finally:
        assert proc.terminate() == 0, proc.output
