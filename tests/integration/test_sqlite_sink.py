"""SQLite-specific behaviour: WAL mode, the live view, tombstone rows, N keys as canonical text."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from tests.samples import COLLIDING_NUMBERS, EXTREME_NUMBERS

BASE = 1_700_000_000_000_000


def test_wal_view_tombstones_and_canonical_number_keys(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "t.db"
    spec = TableSpec("orders", "orders", "pk", "S", "sk", "N")
    sink = SqliteSink(SqliteTarget(type="sqlite", path=str(path)))
    sink.open([spec], create_schema=True)
    a = {"pk": {"S": "a"}, "sk": {"N": "1.50"}}
    b = {"pk": {"S": "b"}, "sk": {"N": "2"}}
    sink.write_batch(
        [
            ChangeEvent(
                "orders", Op.INSERT, a, BASE, Origin.STREAM, new_image={**a, "x": {"N": "1"}}
            ),
            ChangeEvent("orders", Op.INSERT, b, BASE, Origin.STREAM, new_image=b),
            ChangeEvent("orders", Op.REMOVE, {**b, "sk": {"N": "2.0"}}, BASE + 1, Origin.STREAM),
        ]
    )
    sink.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = conn.execute("SELECT pk, sk, version, deleted FROM orders ORDER BY pk").fetchall()
        assert rows == [("a", "1.5", BASE, 0), ("b", "2", BASE + 1, 1)]
        live = conn.execute("SELECT pk, json_extract(item, '$.x.N') FROM orders_live").fetchall()
        assert live == [("a", "1")]
    finally:
        conn.close()


def test_number_keys_differing_in_the_38th_digit_are_two_rows(tmp_path: Path) -> None:
    """Issue 9, item 1: under a 28-digit context both keys became one row, one item vanished."""
    path = tmp_path / "t.db"
    spec = TableSpec("nums", "nums", "id", "N")
    sink = SqliteSink(SqliteTarget(type="sqlite", path=str(path)))
    sink.open([spec], create_schema=True)
    items = [{"id": {"N": n}, "v": {"S": n}} for n in EXTREME_NUMBERS]
    try:
        sink.write_batch(
            [
                ChangeEvent("nums", Op.INSERT, {"id": it["id"]}, BASE, Origin.STREAM, new_image=it)
                for it in items
            ]
        )
        got = sink.read_items("nums", [{"id": it["id"]} for it in items])
        assert got == items  # each key finds its own item
        scanned = sorted(attrs.normalize_number(k["id"]["N"]) for k in sink.scan_keys("nums"))
        assert scanned == sorted(attrs.normalize_number(n) for n in EXTREME_NUMBERS)
    finally:
        sink.close()
    conn = sqlite3.connect(path)
    try:
        rows = dict(conn.execute("SELECT id, json_extract(item, '$.v.S') FROM nums").fetchall())
    finally:
        conn.close()
    assert len(rows) == len(EXTREME_NUMBERS)
    assert rows[COLLIDING_NUMBERS[0]] == COLLIDING_NUMBERS[0]
    assert rows[COLLIDING_NUMBERS[1]] == COLLIDING_NUMBERS[1]
    assert rows["0." + "0" * 129 + "1"] == "1E-130"  # canonical text, exact
