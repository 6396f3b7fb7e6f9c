"""Number keys end to end (issue 9, item 1): Kafka key and partition, then apply into SQLite.

Keys that differ only in the 38th significant digit, both exponent limits, and `0.1` written
then `0.10` (one number, so one key, one partition and one row, the later write winning).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.partitioning import partition_for
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from tests.apply_harness import apply_settings, produce, run_in_process
from tests.kafka_helpers import consume_all
from tests.samples import COLLIDING_NUMBERS, EXTREME_NUMBERS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE = 1_750_000_000_000_000


def test_number_keys_are_exact_from_kafka_key_to_sqlite_row(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table, target = unique_name("nums"), "local"
    db = tmp_path / "t.db"
    spec = TableSpec(table, table, "id", "N")
    events = [
        ChangeEvent(
            table,
            Op.INSERT,
            {"id": {"N": n}},
            BASE + i,
            Origin.STREAM,
            new_image={"id": {"N": n}, "v": {"S": n}},
        )
        for i, n in enumerate(EXTREME_NUMBERS)
    ]
    events += [
        ChangeEvent(
            table,
            Op.INSERT,
            {"id": {"N": "0.1"}},
            BASE + 100,
            Origin.STREAM,
            new_image={"id": {"N": "0.1"}, "v": {"S": "first"}},
        ),
        ChangeEvent(
            table,
            Op.MODIFY,
            {"id": {"N": "0.10"}},
            BASE + 101,
            Origin.STREAM,
            new_image={"id": {"N": "0.10"}, "v": {"S": "second"}},
        ),
    ]
    settings = apply_settings(
        kafka_bootstrap, target, SqliteTarget(type="sqlite", path=str(db)), [table]
    )
    produce(settings.kafka, events)

    messages = consume_all(kafka_bootstrap, settings.kafka.changes_topic(table), len(events))
    by_key: dict[bytes, set[int]] = {}
    for message in messages:
        by_key.setdefault(message.key(), set()).add(message.partition())
    assert len(by_key) == len(EXTREME_NUMBERS) + 1  # 0.1 and 0.10 share one key
    assert attrs.canonical_key({"id": {"N": "0.10"}}) in by_key
    assert all(len(parts) == 1 for parts in by_key.values())
    for key, parts in by_key.items():
        assert parts == {partition_for(key, settings.kafka.partitions)}

    sink = SqliteSink(settings.target(target))
    sink.open([spec], create_schema=True)
    code, worker = run_in_process(
        settings, [spec], sink, until=lambda w: w.records_applied >= len(events)
    )
    assert code == 0 and worker.records_applied == len(events)
    conn = sqlite3.connect(db)
    try:
        rows = dict(conn.execute(f"SELECT id, json_extract(item, '$.v.S') FROM \"{table}\""))
    finally:
        conn.close()
    assert len(rows) == len(EXTREME_NUMBERS) + 1
    assert rows[COLLIDING_NUMBERS[0]] == COLLIDING_NUMBERS[0]
    assert rows[COLLIDING_NUMBERS[1]] == COLLIDING_NUMBERS[1]
    assert rows["0.1"] == "second"
    for n in EXTREME_NUMBERS:
        assert rows[attrs.normalize_number(n)] == n
