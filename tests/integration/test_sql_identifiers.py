"""Names DynamoDB allows, in the SQL targets (SQLite and a real PostgreSQL).

Tables whose names differ only in case, a table named like another's `<table>_live` view, key
attributes named like the layout's own columns, quotes, dots, spaces and non-ASCII in names,
names longer than PostgreSQL's 63-byte identifiers: each is either stored and read back
exactly, or refused when the schema is created, with a message naming it and what to set.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import ConfigError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.ports.sink import KeyType, TableSpec
from bridge.runtime.settings import PostgresTarget, SqliteTarget
from ddb_bridge.registry import sink_class

pytestmark = pytest.mark.integration

BASE = 1_700_000_000_000_000
SQL_SINKS = ["sqlite", "postgres"]


def spec_of(
    name: str,
    hash_key: str = "pk",
    hash_type: KeyType = "S",
    range_key: str | None = None,
    range_type: KeyType | None = None,
    target: str | None = None,
) -> TableSpec:
    return TableSpec(
        source=name,
        target=target or name,
        hash_key=hash_key,
        hash_type=hash_type,
        range_key=range_key,
        range_type=range_type,
    )


Opener = Callable[[list[TableSpec]], Any]


@pytest.fixture(params=SQL_SINKS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if kind == "sqlite":
        return SqliteTarget(type="sqlite", path=str(tmp_path / "target.db"))
    return PostgresTarget(type="postgres", dsn=request.getfixturevalue("pg_dsn"))


@pytest.fixture
def open_sink(kind: str, target: Any) -> Iterator[Opener]:
    """Opens a sink of `kind` on the specs (create_schema); every one is closed at the end."""
    opened: list[Any] = []

    def factory(specs: list[TableSpec]) -> Any:
        sink = sink_class(kind)(target)
        opened.append(sink)
        sink.open(specs, create_schema=True)
        return sink

    yield factory
    for sink in opened:
        sink.close()


def put(spec: TableSpec, item: Item, version: int) -> ChangeEvent:
    keys = {k: item[k] for k in spec.key_names}
    return ChangeEvent(spec.source, Op.MODIFY, keys, version, Origin.STREAM, new_image=item)


def remove(spec: TableSpec, keys: Item, version: int) -> ChangeEvent:
    return ChangeEvent(spec.source, Op.REMOVE, keys, version, Origin.STREAM)


def read_back(sink: Any, spec: TableSpec, keys: list[Item]) -> tuple[list[Item | None], set[bytes]]:
    got = sink.read_items(spec.source, keys)
    scanned = {attrs.canonical_key(k) for k in sink.scan_keys(spec.source)}
    return got, scanned


def uid(unique_name: Any) -> str:
    return str(unique_name("x")).split("-")[-1]


def test_tables_differing_only_in_case(
    kind: str, open_sink: Opener, unique_name: Any, target: Any
) -> None:
    """PostgreSQL keeps `Orders` and `orders` apart (quoted identifiers). SQLite cannot: its
    names are case-insensitive even when quoted, so the two would share one table; it refuses,
    in one process or in two, and a target_table for one of them resolves it."""
    suffix = uid(unique_name)
    upper, lower = spec_of(f"Orders_{suffix}"), spec_of(f"orders_{suffix}")
    item_a = {"pk": {"S": "k"}, "who": {"S": "upper"}}
    item_b = {"pk": {"S": "k"}, "who": {"S": "lower"}}
    if kind == "sqlite":
        with pytest.raises(ConfigError) as both:
            open_sink([upper, lower])
        assert upper.target in str(both.value) and lower.target in str(both.value)
        assert "target_table" in str(both.value)
        open_sink([upper])
        with pytest.raises(ConfigError) as later:  # the other, in another process/run
            open_sink([lower])
        assert upper.target in str(later.value) and "target_table" in str(later.value)
        lower = spec_of(lower.source, target=f"orders_lower_{suffix}")
    sink = open_sink([upper, lower])
    sink.write_batch([put(upper, item_a, BASE), put(lower, item_b, BASE)])
    assert sink.read_items(upper.source, [{"pk": {"S": "k"}}]) == [item_a]
    assert sink.read_items(lower.source, [{"pk": {"S": "k"}}]) == [item_b]


def test_table_named_like_another_tables_live_view(open_sink: Opener, unique_name: Any) -> None:
    """`orders_live` is the view of `orders`: a source table of that name is refused, whichever
    is created first, and the message says to set target_table."""
    suffix = uid(unique_name)
    orders, orders_live = spec_of(f"orders{suffix}"), spec_of(f"orders{suffix}_live")
    with pytest.raises(ConfigError) as both:
        open_sink([orders, orders_live])
    assert orders_live.target in str(both.value) and "target_table" in str(both.value)

    open_sink([orders])
    with pytest.raises(ConfigError) as later:
        open_sink([orders_live])
    assert orders_live.target in str(later.value) and "target_table" in str(later.value)

    other, other_live = spec_of(f"other{suffix}"), spec_of(f"other{suffix}_live")
    open_sink([other_live])
    with pytest.raises(ConfigError) as reverse:
        open_sink([other])
    assert other_live.target in str(reverse.value) and "target_table" in str(reverse.value)

    renamed = spec_of(orders_live.source, target=f"orders{suffix}_live_copy")
    sink = open_sink([orders, renamed])
    item = {"pk": {"S": "a"}, "v": {"N": "1"}}
    sink.write_batch([put(renamed, item, BASE)])
    assert sink.read_items(renamed.source, [{"pk": {"S": "a"}}]) == [item]
    assert sink.read_items(orders.source, [{"pk": {"S": "a"}}]) == [None]


@pytest.mark.parametrize(
    ("hash_key", "range_key"),
    [("version", "deleted"), ("item", "item_exact"), ("Version", "ITEM"), ("deleted", "version")],
)
def test_key_attributes_named_like_layout_columns(
    kind: str,
    target: Any,
    open_sink: Opener,
    unique_name: Any,
    hash_key: str,
    range_key: str,
) -> None:
    """A key attribute named `version`, `deleted`, `item`… gets a column of its own, and the
    layout's columns keep their meaning: last-write-wins, tombstones, reading back."""
    spec = spec_of(uid(unique_name) + "_layout", hash_key, "N", range_key, "S")
    sink = open_sink([spec])
    items = [{hash_key: {"N": str(i)}, range_key: {"S": "r"}, "v": {"S": f"v{i}"}} for i in (1, 2)]
    keys = [{hash_key: it[hash_key], range_key: it[range_key]} for it in items]
    newer = dict(items[0], v={"S": "newer"})
    sink.write_batch(
        [
            put(spec, items[0], BASE + 5),
            put(spec, newer, BASE + 9),
            put(spec, items[0], BASE + 7),  # older than `newer`: loses
            put(spec, items[1], BASE + 5),
            remove(spec, keys[1], BASE + 6),
            put(spec, items[1], BASE + 4),  # older than the delete: stays deleted
        ]
    )
    got, scanned = read_back(sink, spec, keys)
    assert got == [newer, None]
    assert scanned == {attrs.canonical_key(keys[0])}

    # The layout still reads naturally in SQL: `version` is the event's version.
    table = spec.target
    query = f'SELECT version, deleted FROM "{table}" ORDER BY version'
    if kind == "sqlite":
        with sqlite3.connect(target.path) as con:
            rows = con.execute(query).fetchall()
        assert rows == [(BASE + 6, 1), (BASE + 9, 0)]
    else:
        with psycopg.connect(target.dsn.get_secret_value()) as con:
            rows = con.execute(query).fetchall()
        assert rows == [(BASE + 6, True), (BASE + 9, False)]


def test_quotes_dots_spaces_and_non_ascii_in_names(open_sink: Opener, unique_name: Any) -> None:
    spec = spec_of(
        f"my.table-{uid(unique_name)}",
        'cl"é ï.d',
        "S",
        "Ünïcødé 名前 'x'",
        "B",
        target=f'tårget "{uid(unique_name)}" ü.x',
    )
    sink = open_sink([spec])
    item = {'cl"é ï.d': {"S": 'a"b'}, "Ünïcødé 名前 'x'": {"B": "AAE="}, "n": {"N": "1"}}
    keys = [{k: item[k] for k in spec.key_names}]
    sink.write_batch([put(spec, item, BASE)])
    got, scanned = read_back(sink, spec, keys)
    assert got == [item]
    assert scanned == {attrs.canonical_key(keys[0])}
    sink.close()
    sink.open([spec], create_schema=False)  # finds its table by its exact name
    assert sink.read_items(spec.source, keys) == [item]


def test_key_attributes_differing_only_in_case(open_sink: Opener, unique_name: Any) -> None:
    """`id` and `ID` are two key attributes (DynamoDB names are case-sensitive); SQLite would
    see one column twice."""
    spec = spec_of(uid(unique_name) + "_case", "id", "S", "ID", "N")
    sink = open_sink([spec])
    item = {"id": {"S": "lower"}, "ID": {"N": "7"}}
    keys = [{"id": item["id"], "ID": item["ID"]}]
    sink.write_batch([put(spec, item, BASE)])
    got, scanned = read_back(sink, spec, keys)
    assert got == [item] and scanned == {attrs.canonical_key(keys[0])}


def test_postgres_long_names(pg_dsn: str, unique_name: Any, request: pytest.FixtureRequest) -> None:
    """PostgreSQL truncates identifiers to 63 bytes without a word. A long key attribute name
    (DynamoDB allows 255 bytes) gets a shortened column and works; a long table name, whose
    truncation could merge two tables, is refused naming target_table."""
    from connectors.sinks.postgres import PostgresSink

    settings = PostgresTarget(type="postgres", dsn=pg_dsn)
    long_a = "attribute_" + "é" * 40 + "_a"  # 92 bytes
    long_b = "attribute_" + "é" * 40 + "_b"  # the same first 63 bytes
    spec = spec_of(uid(unique_name) + "_long", long_a, "S", long_b, "N")
    sink = PostgresSink(settings)
    request.addfinalizer(sink.close)
    sink.open([spec], create_schema=True)
    item = {long_a: {"S": "x"}, long_b: {"N": "1"}, "other": {"S": "y"}}
    keys = [{long_a: item[long_a], long_b: item[long_b]}]
    sink.write_batch([put(spec, item, BASE)])
    assert sink.read_items(spec.source, keys) == [item]
    assert [attrs.canonical_key(k) for k in sink.scan_keys(spec.source)] == [
        attrs.canonical_key(keys[0])
    ]

    long_table = spec_of("t" * 60 + uid(unique_name))
    with pytest.raises(ConfigError) as refused:
        PostgresSink(settings).open([long_table], create_schema=True)
    assert long_table.target in str(refused.value) and "target_table" in str(refused.value)


def test_postgres_refuses_a_name_held_by_another_kind_of_relation(
    pg_dsn: str, unique_name: Any, request: pytest.FixtureRequest
) -> None:
    """CREATE TABLE IF NOT EXISTS skips silently when an index (or sequence, view…) already has
    the name; the sink would then write into something that is not its table."""
    from connectors.sinks.postgres import PostgresSink

    suffix = uid(unique_name)
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(f'CREATE TABLE "base_{suffix}" (x int)')
        con.execute(f'CREATE INDEX "idx_{suffix}" ON "base_{suffix}" (x)')
    sink = PostgresSink(PostgresTarget(type="postgres", dsn=pg_dsn))
    request.addfinalizer(sink.close)
    with pytest.raises(ConfigError) as refused:
        sink.open([spec_of(f"idx_{suffix}")], create_schema=True)
    assert "existing index" in str(refused.value) and "target_table" in str(refused.value)


def test_sqlite_refuses_its_reserved_prefix(tmp_path: Path) -> None:
    from connectors.sinks.sqlite import SqliteSink

    sink = SqliteSink(SqliteTarget(type="sqlite", path=str(tmp_path / "t.db")))
    with pytest.raises(ConfigError, match="target_table"):
        sink.open([spec_of("SQLite_stats")], create_schema=True)
    sink.close()
