"""`ddb-bridge apply` end to end: the command line, SQLite, SIGKILL and SIGTERM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.runtime.settings import KafkaSettings, SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from tests.apply_harness import (
    ApplyProcess,
    delivery_plan,
    produce,
    random_history,
    table_spec,
    target_differences,
    target_matches,
    write_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_random_history_into_sqlite_survives_kill_9_and_stops_cleanly_on_sigterm(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table, target = unique_name("cli").replace("-", "_"), unique_name("local")
    db = tmp_path / "target.db"
    history = random_history(table, seed=21, n_ops=3000)
    plan = delivery_plan(history.events, seed=22)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=4, replication_factor=1)
    produce(kafka, plan)
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        target,
        {"type": "sqlite", "path": db},
        [table],
    )

    first = ApplyProcess(config, "--create-schema")
    first.wait_joined()
    reader = SqliteSink(SqliteTarget(type="sqlite", path=str(db)))
    reader.open([table_spec(table)])
    try:
        # SIGKILL once it is busy writing: whatever it had not committed is read again.
        first.wait_until(lambda: sum(1 for _ in reader.scan_keys(table)) > 0)
        first.kill()

        second = ApplyProcess(config)
        second.wait_joined()
        second.wait_until(lambda: target_matches(reader, history), timeout_s=120)
        assert second.terminate() == 0, second.output
        assert target_differences(reader, history) == []
        assert "apply worker stopped" in second.output
        assert "Traceback" not in second.output
    finally:
        reader.close()


def test_sigterm_while_idle_exits_0_quickly(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table, target = unique_name("idle"), unique_name("null")
    config = write_config(
        tmp_path / "bridge.toml", kafka_bootstrap, target, {"type": "null"}, [table]
    )
    proc = ApplyProcess(config)
    proc.wait_joined()
    assert proc.terminate(timeout_s=20) == 0, proc.output
    assert "signal received" in proc.output


def test_unknown_target_is_a_configuration_error(tmp_path: Path, kafka_bootstrap: str) -> None:
    config = write_config(tmp_path / "bridge.toml", kafka_bootstrap, "x", {"type": "null"}, ["t"])
    proc = ApplyProcess(config, "--target", "nope")
    assert proc.wait(30) == 2
    assert "targets.nope" in proc.output


@pytest.mark.integration
def test_apply_target_scylla_into_a_real_cql_node_survives_kill_9(
    kafka_bootstrap: str, cql_endpoint: Any, unique_name: Any, tmp_path: Path
) -> None:
    """`ddb-bridge apply --target scylla` into Cassandra (or ScyllaDB at SCYLLA_HOSTS): killed
    while writing, restarted, the target converges to the source's final state; replaying what
    the first process had written changes nothing (USING TIMESTAMP)."""
    from connectors.sinks.scylla import ScyllaSink

    table = unique_name("cqlcli").replace("-", "_")
    history = random_history(table, seed=51, n_ops=3000)
    plan = delivery_plan(history.events, seed=52)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=4, replication_factor=1)
    produce(kafka, plan)
    config = write_config(
        tmp_path / "bridge.toml", kafka_bootstrap, "scylla", cql_endpoint.toml(), [table]
    )

    first = ApplyProcess(config, "--target", "scylla", "--create-schema")
    first.wait_joined()
    reader = ScyllaSink(cql_endpoint.target())
    reader.open([table_spec(table)])
    try:
        first.wait_until(lambda: sum(1 for _ in reader.scan_keys(table)) > 0)
        first.kill()

        second = ApplyProcess(config, "--target", "scylla")
        second.wait_joined()
        second.wait_until(lambda: target_matches(reader, history), timeout_s=120)
        assert second.terminate() == 0, second.output
        assert target_differences(reader, history) == []
        assert "Traceback" not in second.output
    finally:
        reader.close()
