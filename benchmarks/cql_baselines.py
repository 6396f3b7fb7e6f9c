"""The CQL baselines of `bench_apply`: the same rows written with the Python driver by hand,
with no bridge in between — the ceiling the CQL sink is measured against.

The rows are the sink's: the key columns, the catch-all `map<text, text>` of each
attribute's DynamoDB JSON, `USING TIMESTAMP version`. They are built before the timing
(what is timed is the driver: binding, batching, sending, waiting), so the figure is the
driver's best, not a second bridge. Two ways, each with the sink's concurrency:

- `best`: UNLOGGED batches of rows grouped by the replicas that own their partition
  (the driver's token map), 10 rows a batch — the fastest path measured for the Python
  driver, whose per-request CPU (~120-150 µs) is its ceiling;
- `per_row`: one INSERT per row through `execute_concurrent` (what the sink did before
  batching), for reference.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from benchmarks.procfs import ProcessCpu
from bridge.model import attrs
from bridge.model.event import ChangeEvent

BATCH_ROWS = 10
Row = tuple[str, Decimal, dict[str, str], int]


def rows_of(events: Sequence[ChangeEvent]) -> list[Row]:
    """The sink's row of each event: pk, sk, the map of the other attributes, version."""
    out = []
    for event in events:
        image = event.new_image or {}
        rest = {name: attrs.dumps(av) for name, av in image.items() if name not in ("pk", "sk")}
        out.append((image["pk"]["S"], Decimal(image["sk"]["N"]), rest, event.version))
    return out


class DriverBaseline:
    """A session and a fresh table of the sink's shape in `keyspace` (created if missing)."""

    def __init__(self, hosts: list[str], port: int, keyspace: str, concurrency: int) -> None:
        from cassandra.cluster import Cluster

        self.cluster = Cluster(hosts, port=port)
        self.session = self.cluster.connect()
        self.keyspace = keyspace
        self.concurrency = concurrency
        self.session.execute(
            f'CREATE KEYSPACE IF NOT EXISTS "{keyspace}" WITH replication = '
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )

    def _table(self) -> Any:
        table = f'"{self.keyspace}"."by_hand_{uuid.uuid4().hex[:8]}"'
        self.session.execute(
            f'CREATE TABLE {table} ("pk" text, "sk" decimal, "attrs" map<text, text>, '
            'PRIMARY KEY (("pk"), "sk"))'
        )
        return self.session.prepare(
            f'INSERT INTO {table} ("pk", "sk", "attrs") VALUES (?, ?, ?) USING TIMESTAMP ?'
        )

    def best(self, rows: Sequence[Row]) -> tuple[float, float | None]:
        """(rows/s, CPU µs per row) of unlogged batches grouped by replicas."""
        from cassandra.concurrent import execute_concurrent
        from cassandra.query import BatchStatement, BatchType

        insert = self._table()
        token_map = self.cluster.metadata.token_map
        with ProcessCpu() as cpu:
            start = time.perf_counter()
            groups: dict[Any, list[BatchStatement]] = {}
            for row in rows:
                bound = insert.bind(row)
                replicas = frozenset(
                    token_map.get_replicas(
                        bound.keyspace, token_map.token_class.from_key(bound.routing_key)
                    )
                )
                batches = groups.setdefault(replicas, [])
                if not batches or len(batches[-1]) >= BATCH_ROWS:
                    batches.append(BatchStatement(batch_type=BatchType.UNLOGGED))
                batches[-1].add(bound)
            statements = [(b, None) for batches in groups.values() for b in batches]
            results = execute_concurrent(
                self.session, statements, concurrency=self.concurrency, raise_on_first_error=True
            )
            elapsed = time.perf_counter() - start
        assert all(r.success for r in results)
        return len(rows) / elapsed, cpu.us_per(len(rows))

    def per_row(self, rows: Sequence[Row]) -> tuple[float, float | None]:
        """(rows/s, CPU µs per row) of one INSERT per row."""
        from cassandra.concurrent import execute_concurrent_with_args

        insert = self._table()
        with ProcessCpu() as cpu:
            start = time.perf_counter()
            execute_concurrent_with_args(
                self.session, insert, rows, concurrency=self.concurrency, raise_on_first_error=True
            )
            elapsed = time.perf_counter() - start
        return len(rows) / elapsed, cpu.us_per(len(rows))

    def close(self) -> None:
        self.cluster.shutdown()
