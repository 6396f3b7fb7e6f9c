"""A target that refuses every write: apply through Kafka into the real PostgreSQL, SQLite
and moto (the DynamoDB-API sink).

Read-only (a standby after failover, `default_transaction_read_only`), a revoked privilege,
a dropped table, a read-only SQLite file, a table deleted under the DynamoDB-API sink. None
of them is an event's fault: the DLQ topic stays empty, no committed offset passes the last
written event, and once the target is fixed apply (waiting, or restarted) converges to the
expected rows. On main each of these was a PermanentError: every event was dead-lettered
and committed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bridge.apply.app import group_id
from bridge.apply.processor import BLOCKED
from bridge.codec.avro import EventCodec
from bridge.kafka.lag import group_lag
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.model.versioning import wins
from bridge.runtime.metrics import REGISTRY
from bridge.runtime.settings import AlternatorTarget, NullTarget, PostgresTarget, SqliteTarget
from connectors.sinks.alternator import AlternatorSink
from connectors.sinks.postgres import PostgresSink
from connectors.sinks.sqlite import SqliteSink
from tests.apply_harness import (
    ApplyProcess,
    History,
    InProcess,
    apply_settings,
    assert_target_matches,
    produce,
    start_in_process,
    table_spec,
    write_config,
)
from tests.kafka_helpers import consume_all, drain_more

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# -- two phases of changes ----------------------------------------------------------------


def _put(table: str, key: str, version: int) -> ChangeEvent:
    keys = {"pk": {"S": key}, "sk": {"N": "1"}}
    return ChangeEvent(
        table=table,
        op=Op.MODIFY,
        keys=keys,
        version=version,
        origin=Origin.STREAM,
        new_image={**keys, "v": {"N": str(version)}},
    )


def _phases(table: str) -> tuple[list[ChangeEvent], list[ChangeEvent]]:
    """Before the target breaks: keys a0..a29, twice each. After: new keys b0..b29 and
    newer versions of a0..a9."""
    first = [_put(table, f"a{i}", 1000 + r * 100 + i) for r in range(2) for i in range(30)]
    second = [_put(table, f"b{i}", 2000 + i) for i in range(30)]
    second += [_put(table, f"a{i}", 3000 + i) for i in range(10)]
    return first, second


def _expected(table: str, events: list[ChangeEvent], keys_of: list[ChangeEvent]) -> History:
    final: dict[bytes, attrs.Item | None] = {e.key_bytes(): None for e in keys_of}
    newest: dict[bytes, ChangeEvent] = {}
    for e in events:
        if e.key_bytes() not in newest or wins(e, newest[e.key_bytes()]):
            newest[e.key_bytes()] = e
    final.update({k: e.new_image for k, e in newest.items()})
    keys = [attrs.loads(k) for k in final]
    return History(table=table, keys=keys, events=list(events), final=final)


def _committed(kafka: Any, group: str, messages: list[Any]) -> set[tuple[bytes, int]]:
    """(key, version) of every record below its partition's committed offset."""
    topics = sorted({m.topic() for m in messages})
    upto = {(p.topic, p.partition): p.committed for p in group_lag(kafka, group, topics)}
    codec = EventCodec()
    out = set()
    for m in messages:
        limit = upto.get((m.topic(), m.partition()))
        if limit is not None and m.offset() < limit:
            event = codec.decode(m.value())
            out.add((event.key_bytes(), event.version))
    return out


def _ids(events: list[ChangeEvent]) -> set[tuple[bytes, int]]:
    return {(e.key_bytes(), e.version) for e in events}


def _wait(run: InProcess, count: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while run.worker.records_applied < count:
        assert run.thread.is_alive(), "apply stopped"
        assert time.monotonic() < deadline, f"applied {run.worker.records_applied} of {count}"
        time.sleep(0.05)


def check_refusal_scenario(
    kafka_bootstrap: str,
    unique_name: Any,
    make_sink: Callable[[], Any],
    make_reader: Callable[[], Any],
    break_target: Callable[[str], None],
    fix_target: Callable[[str], None],
    waits: bool,
    table_lost: bool = False,
    prepare: Callable[[str], None] | None = None,
) -> None:
    """Phase one applied; the target breaks; phase two produced. `waits`: apply must stay
    up, blocked, and finish once fixed; else it must stop with exit code 1 and a restart
    after the fix must finish. `table_lost`: the break drops phase one's rows."""
    table, target = unique_name("refuse").replace("-", "_"), unique_name("tgt")
    settings = apply_settings(kafka_bootstrap, target, NullTarget(type="null"), [table])
    spec = table_spec(table)
    first, second = _phases(table)
    if prepare is not None:
        prepare(table)
    produce(settings.kafka, first)
    run = start_in_process(settings, [spec], make_sink(), create_schema=prepare is None)
    try:
        _wait(run, len(first))
        break_target(table)
        produce(settings.kafka, second)
        if waits:
            time.sleep(4)
            assert run.thread.is_alive(), "apply stopped on a refusal that waiting can cure"
            assert REGISTRY.get(BLOCKED, target=target) == 1
        else:
            assert run.wait(60) == 1
        messages = consume_all(kafka_bootstrap, settings.kafka.changes_topic(table), 100)
        # Nothing committed past the last written event: exactly phase one.
        assert _committed(settings.kafka, group_id(target), messages) == _ids(first)
        fix_target(table)
        if waits:
            _wait(run, len(first) + len(second))
        else:
            run = start_in_process(settings, [spec], make_sink(), create_schema=prepare is None)
            _wait(run, len(second))
    finally:
        run.worker.request_stop()
    assert run.wait() == 0
    assert _committed(settings.kafka, group_id(target), messages) == _ids(first + second)
    assert drain_more(kafka_bootstrap, settings.kafka.dlq_topic(table)) == []
    applied = second if table_lost else first + second
    reader = make_reader()
    reader.open([spec])
    try:
        assert_target_matches(reader, _expected(table, applied, first + second))
    finally:
        reader.close()


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def pg_db(pg_dsn: str, unique_name: Any) -> Iterator[tuple[str, str]]:
    """A database of its own (its settings and sessions are changed): (name, DSN)."""
    name = unique_name("db").replace("-", "_")
    admin = psycopg.connect(pg_dsn, autocommit=True)
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        admin.close()
        pytest.skip(f"cannot create a test database on {pg_dsn}: {exc}")
    try:
        yield name, pg_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        _kick(admin, name)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()


def _kick(admin: psycopg.Connection[Any], db: str) -> None:
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (db,),
    )


def _pg(dsn: str) -> PostgresSink:
    return PostgresSink(PostgresTarget(type="postgres", dsn=dsn))


def _sql(dsn: str, *statements: sql.Composable | str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def test_postgres_read_only_is_waited_for_then_applied(
    kafka_bootstrap: str, pg_dsn: str, pg_db: tuple[str, str], unique_name: Any
) -> None:
    """`default_transaction_read_only` (what a standby after a failover also answers, 25006):
    apply waits, reconnecting; once writable again it goes on by itself."""
    name, dsn = pg_db
    db = sql.Identifier(name)

    def read_only(_table: str) -> None:
        _sql(pg_dsn, sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(db))
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            _kick(admin, name)  # sessions pick the setting up when they reconnect

    def writable(_table: str) -> None:
        _sql(pg_dsn, sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(db))

    check_refusal_scenario(
        kafka_bootstrap,
        unique_name,
        lambda: _pg(dsn),
        lambda: _pg(dsn),
        read_only,
        writable,
        waits=True,
    )


def test_postgres_revoked_privilege_stops_apply_and_a_restart_converges(
    kafka_bootstrap: str, pg_db: tuple[str, str], unique_name: Any
) -> None:
    """apply as a role without superuser rights; INSERT/UPDATE revoked mid-run (42501)."""
    _, dsn = pg_db
    role = unique_name("role").replace("-", "_")
    _sql(dsn, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    role_dsn = dsn.replace("postgres@", f"{role}@", 1)
    assert role_dsn != dsn, "the test DSN names no user to replace"

    def grant(table: str) -> None:
        _sql(
            dsn,
            sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(
                sql.Identifier(table), sql.Identifier(role)
            ),
        )

    def revoke(table: str) -> None:
        _sql(
            dsn,
            sql.SQL("REVOKE INSERT, UPDATE ON {} FROM {}").format(
                sql.Identifier(table), sql.Identifier(role)
            ),
        )

    def prepare(table: str) -> None:
        # The owner creates the table; the role gets only what apply needs.
        owner = _pg(dsn)
        owner.open([table_spec(table)], create_schema=True)
        owner.close()
        grant(table)

    check_refusal_scenario(
        kafka_bootstrap,
        unique_name,
        lambda: _pg(role_dsn),
        lambda: _pg(dsn),
        revoke,
        grant,
        waits=False,
        prepare=prepare,
    )


def test_postgres_dropped_table_stops_apply_and_a_restart_recreates_it(
    kafka_bootstrap: str, pg_db: tuple[str, str], unique_name: Any
) -> None:
    """DROP TABLE under a running apply (42P01). The rows written before are gone with the
    table (an operator would replay the topic); what came after is applied on restart."""
    _, dsn = pg_db

    def drop(table: str) -> None:
        _sql(dsn, sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(table)))

    check_refusal_scenario(
        kafka_bootstrap,
        unique_name,
        lambda: _pg(dsn),
        lambda: _pg(dsn),
        drop,
        lambda _table: None,  # the restart's --create-schema recreates it
        waits=False,
        table_lost=True,
    )


# -- SQLite ------------------------------------------------------------------------------------


def _write_version(path: Path, value: int) -> None:
    """SQLite's file format write version (header byte 18): above 2, every connection
    treats the file as read-only — root included, unlike chmod. The WAL is checkpointed
    into the file first, so that no newer copy of the header page stays in it."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    with path.open("r+b") as f:
        f.seek(18)
        f.write(bytes([value]))


def test_sqlite_read_only_file_stops_apply_and_a_restart_converges(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    path = tmp_path / "target.db"

    def sink() -> SqliteSink:
        return SqliteSink(SqliteTarget(type="sqlite", path=str(path)))

    check_refusal_scenario(
        kafka_bootstrap,
        unique_name,
        sink,
        sink,
        lambda _table: _write_version(path, 3),
        lambda _table: _write_version(path, 2),
        waits=False,
    )


def test_the_cli_stops_with_exit_1_naming_target_table_and_cause(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    """What an operator sees: `ddb-bridge apply` exits 1 and its log says which target and
    table refused, and why."""
    table = unique_name("clirefuse").replace("-", "_")
    path = tmp_path / "target.db"
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        "lite",
        {"type": "sqlite", "path": path},
        [table],
    )
    settings = apply_settings(kafka_bootstrap, "lite", NullTarget(type="null"), [table])
    first, second = _phases(table)
    produce(settings.kafka, first)
    apply = ApplyProcess(config, "--create-schema")
    try:
        apply.wait_joined()
        apply.wait_until(lambda: _rows(path, table) == 30)
        _write_version(path, 3)
        produce(settings.kafka, second)
        assert apply.wait(60) == 1, apply.output
    finally:
        if apply.proc.poll() is None:
            apply.kill()
    out = apply.output
    assert "the target refuses writes" in out, out[-3000:]
    assert f"target=lite table={table} " in out and "SQLITE_READONLY" in out, out[-3000:]
    assert drain_more(kafka_bootstrap, settings.kafka.dlq_topic(table)) == []


def _rows(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    except sqlite3.Error:
        return 0  # not created yet
    finally:
        conn.close()
    return int(row[0])


# -- Alternator (moto as the DynamoDB API) -----------------------------------------------------


def test_alternator_deleted_table_stops_apply_and_a_restart_recreates_it(
    kafka_bootstrap: str, dynamodb_endpoint: str, unique_name: Any
) -> None:
    """DeleteTable under a running apply: ResourceNotFoundException on every PutItem. The
    rows written before went with the table; what came after is applied on restart."""
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")

    def sink() -> AlternatorSink:
        return AlternatorSink(AlternatorTarget(type="alternator", endpoint_url=dynamodb_endpoint))

    def delete(table: str) -> None:
        ddb.delete_table(TableName=table)
        ddb.get_waiter("table_not_exists").wait(TableName=table)

    check_refusal_scenario(
        kafka_bootstrap,
        unique_name,
        sink,
        sink,
        delete,
        lambda _table: None,  # the restart's --create-schema recreates it
        waits=False,
        table_lost=True,
    )
