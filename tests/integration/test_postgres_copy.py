"""The PostgreSQL sink's bulk path: COPY into a staging table, then one merge. It must keep
last-write-wins and the tombstones exactly as the row-by-row rule (docs/design.md,
section 5): an older version after a newer one, a delete and the writes around it, one key
twice in a batch, and both kinds of event apply's screening hands it (text and parsed)."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bridge.apply.screening import Rejected, Screen
from bridge.codec.avro import EventCodec
from bridge.codec.image_text import TextImageEvent
from bridge.dlq.writer import RawRecord
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import PostgresTarget
from connectors.sinks.postgres import PostgresSink

pytestmark = pytest.mark.integration

CODEC = EventCodec()


def _spec(name: str) -> TableSpec:
    return TableSpec(name, name, "pk", "S", "sk", "N")


def _put(spec: TableSpec, pk: str, version: int, tag: str) -> ChangeEvent:
    keys = {"pk": {"S": pk}, "sk": {"N": "1"}}
    image = {**keys, "tag": {"S": tag}, "note": {"S": 'a "quoted" \\ back\tslash'}}
    return ChangeEvent(spec.source, Op.MODIFY, keys, version, Origin.STREAM, new_image=image)


def _delete(spec: TableSpec, pk: str, version: int) -> ChangeEvent:
    keys = {"pk": {"S": pk}, "sk": {"N": "1"}}
    return ChangeEvent(spec.source, Op.REMOVE, keys, version, Origin.STREAM)


def _as_text(spec: TableSpec, events: list[ChangeEvent]) -> list[ChangeEvent]:
    """The events as apply hands them to the sink: screened on their text."""
    screen = Screen(CODEC, lambda _topic: spec.source, [spec], image_text=True)
    out = []
    for event in events:
        verdict = screen.check(RawRecord("t", 0, 0, event.key_bytes(), CODEC.encode(event)))
        assert not isinstance(verdict, Rejected), verdict
        out.append(verdict[0])
    assert any(type(e) is TextImageEvent for e in out)
    return out


def _rows(dsn: str, table: str) -> dict[str, tuple[int, bool, Any]]:
    with psycopg.connect(dsn) as conn:
        got = conn.execute(f'SELECT pk, version, deleted, item FROM "{table}"').fetchall()
    return {pk: (version, deleted, item and item["tag"]["S"]) for pk, version, deleted, item in got}


@pytest.mark.parametrize("text", [False, True], ids=["parsed", "text"])
def test_copy_merge_keeps_last_write_wins_and_tombstones(
    pg_dsn: str, unique_name: Any, text: bool
) -> None:
    spec = _spec(unique_name("copy"))
    sink = PostgresSink(PostgresTarget(type="postgres", dsn=pg_dsn))
    sink.open([spec], create_schema=True)

    def write(events: list[ChangeEvent]) -> None:
        sink.write_batch(_as_text(spec, events) if text else events)

    try:
        # One key twice in a batch, the older last; a delete and a write at one version.
        write([_put(spec, "a", 10, "a10"), _put(spec, "a", 5, "a5"), _put(spec, "b", 3, "b3")])
        write([_put(spec, "c", 7, "c7"), _delete(spec, "c", 7), _put(spec, "d", 1, "d1")])
        # The write path runs through the staging table of this session.
        assert sink._conn is not None
        staged = sink._conn.execute("SELECT to_regclass('pg_temp.ddb_bridge_stage_0')").fetchone()
        sink._conn.rollback()
        assert staged is not None and staged[0] is not None, "no COPY staging table"
        # Older versions after newer ones; writes after a delete, older and tied.
        write([_put(spec, "a", 9, "a9"), _delete(spec, "b", 4), _put(spec, "d", 2, "d2")])
        write([_put(spec, "b", 4, "b4"), _put(spec, "c", 6, "c6"), _delete(spec, "d", 1)])
        write([_put(spec, "b", 2, "b2"), _put(spec, "c", 8, "c8")])
        assert _rows(pg_dsn, spec.target) == {
            "a": (10, False, "a10"),
            "b": (4, True, None),
            "c": (8, False, "c8"),
            "d": (2, False, "d2"),
        }
        got = sink.read_items(spec.source, [{"pk": {"S": "c"}, "sk": {"N": "1"}}])
        assert got == [_put(spec, "c", 8, "c8").new_image]
    finally:
        sink.close()


def test_without_temp_privilege_the_sink_writes_through_the_upsert(
    pg_dsn: str, unique_name: Any
) -> None:
    """A role that may write the table but not create temporary tables still applies."""
    database, role = unique_name("notemp").lower(), unique_name("writer").lower()
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
        admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw'")
    params = conninfo_to_dict(pg_dsn)
    params["dbname"] = database
    with psycopg.connect(make_conninfo(**params), autocommit=True) as admin:
        admin.execute(f'REVOKE TEMP ON DATABASE "{database}" FROM PUBLIC')
        admin.execute(f'GRANT CREATE ON DATABASE "{database}" TO "{role}"')
        admin.execute(f'GRANT ALL ON SCHEMA public TO "{role}"')
    params.update(user=role, password="pw")
    spec = _spec("t")
    sink = PostgresSink(PostgresTarget(type="postgres", dsn=make_conninfo(**params)))
    try:
        sink.open([spec], create_schema=True)
        sink.write_batch([_put(spec, "a", 10, "a10"), _put(spec, "b", 3, "b3")])
        sink.write_batch([_put(spec, "a", 9, "a9"), _delete(spec, "b", 4)])
        assert sink._stage is False
        assert _rows(make_conninfo(**params), "t") == {
            "a": (10, False, "a10"),
            "b": (4, True, None),
        }
        item = orjson.loads(
            orjson.dumps(sink.read_items("t", [{"pk": {"S": "a"}, "sk": {"N": "1"}}])[0])
        )
        assert item["tag"] == {"S": "a10"}
    finally:
        sink.close()
