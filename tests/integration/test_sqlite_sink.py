"""SQLite-specific behaviour: WAL mode, the live view, tombstone rows, N keys as canonical text."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge.event import ChangeEvent, Op, Origin
from bridge.settings import SqliteTarget
from bridge.sink import TableSpec
from connectors.sinks.sqlite import SqliteSink

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
