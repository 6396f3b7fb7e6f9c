"""Replay as the README tells users to: Kafka's own consumer-group command moves a stopped
apply group back to the start of its topic, and `ddb-bridge apply` reads everything again.

Against Apache Kafka (ddb_bridge/services/kafka_broker.py): the command is kafka-tools'
ConsumerGroupCommand, the class behind `kafka-consumer-groups.sh`, run from the same jars as
the broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.apply.app import group_id
from bridge.kafka.lag import PartitionLag, caught_up, group_lag
from bridge.runtime.settings import KafkaSettings, SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from ddb_bridge.services import kafka_jars
from tests.apply_harness import (
    ApplyProcess,
    delivery_plan,
    produce,
    random_history,
    table_spec,
    target_differences,
    write_config,
)
from tests.replay_helpers import apply_until_caught_up, corrupt, offsets, rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def consumer_groups(bootstrap: str, group: str, topic: str, *to: str) -> str:
    """`kafka-consumer-groups.sh --reset-offsets ... --execute`; its output."""
    return kafka_jars.run_tool(
        kafka_jars.CONSUMER_GROUP_COMMAND,
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
        {"type": "sqlite", "path": db},
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
        tmp_path / "bridge.toml", kafka_bootstrap, target, {"type": "null"}, [table]
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
