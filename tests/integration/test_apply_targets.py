"""`apply` through Kafka into the real targets: PostgreSQL, moto as Alternator, Cassandra.

The randomized history of tests/apply_harness.py (200 keys: puts, updates removing
attributes, deletes, TTL expiries, a concurrent back-fill) is produced shuffled, with
duplicates and a replayed prefix; `apply` writes it through the real sink; the target must
equal the final state of every key. Then PostgreSQL goes down while `ddb-bridge apply` runs:
no committed offset may pass an event that is not in the target, and once the server is
back the target converges. The CQL sink runs the same history against a real Cassandra node
(or ScyllaDB at SCYLLA_HOSTS).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bridge.apply.app import group_id
from bridge.model import attrs
from bridge.runtime.settings import AlternatorTarget, NullTarget, PostgresTarget
from connectors.sinks.alternator import AlternatorSink
from connectors.sinks.postgres import PostgresSink
from tests.apply_harness import (
    ApplyProcess,
    apply_settings,
    assert_committed_offsets_are_written,
    assert_target_matches,
    delivery_plan,
    produce,
    random_history,
    run_in_process,
    table_spec,
    target_matches,
    write_config,
)
from tests.kafka_helpers import consume_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _check_random_history(kafka_bootstrap: str, table: str, sink: Any, seed: int) -> None:
    history = random_history(table, seed=seed)
    plan = delivery_plan(history.events, seed=seed + 1)
    settings = apply_settings(kafka_bootstrap, "t", NullTarget(type="null"), [table])
    produce(settings.kafka, plan)
    code, worker = run_in_process(
        settings,
        [table_spec(table)],
        sink,
        until=lambda w: w.records_applied >= len(plan),
        create_schema=True,
    )
    assert code == 0 and worker.records_applied == len(plan)
    # The worker closed the sink when it stopped: reopen to read the target.
    sink.open([table_spec(table)])
    try:
        assert_target_matches(sink, history)
    finally:
        sink.close()


def test_postgres_random_history(kafka_bootstrap: str, pg_dsn: str, unique_name: Any) -> None:
    sink = PostgresSink(PostgresTarget(type="postgres", dsn=pg_dsn))
    _check_random_history(kafka_bootstrap, unique_name("pgh"), sink, seed=11)


def test_alternator_random_history(
    kafka_bootstrap: str, dynamodb_endpoint: str, unique_name: Any
) -> None:
    sink = AlternatorSink(AlternatorTarget(type="alternator", endpoint_url=dynamodb_endpoint))
    _check_random_history(kafka_bootstrap, unique_name("alth"), sink, seed=21)


def test_scylla_random_history(kafka_bootstrap: str, cql_endpoint: Any, unique_name: Any) -> None:
    from connectors.sinks.scylla import ScyllaSink

    sink = ScyllaSink(cql_endpoint.target())
    _check_random_history(kafka_bootstrap, unique_name("cqlh").replace("-", "_"), sink, seed=31)


class _PgVersions:
    """`version_of` for the offsets check, read straight from the PostgreSQL table."""

    def __init__(self, dsn: str, table: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.table = table

    def __enter__(self) -> _PgVersions:
        return self

    def __exit__(self, *_: object) -> None:
        self.conn.close()

    def version_of(self, table: str, key_bytes: bytes) -> int | None:
        keys = attrs.loads(key_bytes)
        row = self.conn.execute(
            f'SELECT version FROM "{self.table}" WHERE pk = %s AND sk = %s::numeric',
            (keys["pk"]["S"], keys["sk"]["N"]),
        ).fetchone()
        return None if row is None else int(row[0])


def test_postgres_down_while_apply_runs(
    kafka_bootstrap: str, pg_cluster: Any, pg_dsn: str, unique_name: Any, tmp_path: Path
) -> None:
    """Server stopped under a running `ddb-bridge apply`, then started again.

    While the server is down, apply is frozen (SIGSTOP) so its committed offsets cannot move;
    once the server is back, every record below them must already be in the table — written
    before the outage, since nothing could be written during it. Then apply continues
    (SIGCONT) and the table converges to the final state."""
    if pg_cluster is None:
        pytest.skip("PG_DSN points at an external server: this test stops and starts its own")
    table = unique_name("pgdown")
    history = random_history(table, seed=41)
    plan = delivery_plan(history.events, seed=42)
    first, second = plan[: len(plan) // 3], plan[len(plan) // 3 :]
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        "pg",
        {"type": "postgres", "dsn": pg_dsn},
        [table],
    )
    settings = apply_settings(kafka_bootstrap, "pg", NullTarget(type="null"), [table])
    topic = settings.kafka.changes_topic(table)
    produce(settings.kafka, first)
    apply = ApplyProcess(config, "--create-schema")
    reader = PostgresSink(PostgresTarget(type="postgres", dsn=pg_dsn))
    try:
        apply.wait_joined()
        apply.wait_until(lambda: _count(pg_dsn, table) > 0)
        pg_cluster.stop()
        try:
            produce(settings.kafka, second)
            time.sleep(4)  # apply fails to write, retries with backoff, must not commit past it
            assert apply.proc.poll() is None, "apply died while the target was down"
            os.kill(apply.proc.pid, signal.SIGSTOP)
        finally:
            pg_cluster.start()
        try:
            messages = consume_all(kafka_bootstrap, topic, len(plan))
            with _PgVersions(pg_dsn, table) as versions:
                covered = assert_committed_offsets_are_written(
                    settings.kafka, group_id("pg"), messages, versions
                )
        finally:
            os.kill(apply.proc.pid, signal.SIGCONT)
        assert covered < len(plan)  # the outage really held some records back
        reader.open([table_spec(table)])
        apply.wait_until(lambda: target_matches(reader, history), timeout_s=90)
        assert apply.terminate() == 0, apply.output
        assert_target_matches(reader, history)
    finally:
        if apply.proc.poll() is None:
            apply.kill()
        reader.close()


def _count(dsn: str, table: str) -> int:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    except psycopg.Error:
        return 0  # not created yet
    return int(row[0]) if row else 0
