"""The PostgreSQL baselines of `bench_apply`: the same rows loaded with psycopg by hand, with
no bridge in between, in the same batches, one commit each, into a fresh table of the
sink's shape (keys, `item jsonb`, `item_exact bytea`, `version`, `deleted`). The rows are
built before the timing.

- `lww_upsert`: the last-write-wins upsert done in bulk SQL — COPY into a session-private
  staging table, then one `INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE stored.version <
  excluded.version OR (equal AND a delete)`: what any loader that must keep the newest
  version pays, and so the honest limit of an upsert (the goal's baseline);
- `copy`: plain `COPY` into the table, no version check (the floor of any load, for
  reference: it cannot keep last-write-wins).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from benchmarks.procfs import ProcessCpu
from bridge.model.event import ChangeEvent

Row = tuple[str, str, str, int, bool]

_SHAPE = (
    "pk text NOT NULL, sk numeric NOT NULL, item jsonb, item_exact bytea, "
    "version bigint NOT NULL, deleted boolean NOT NULL"
)


def rows_of(events: Sequence[ChangeEvent]) -> list[Row]:
    out = []
    for event in events:
        image = event.new_image or {}
        out.append(
            (
                image["pk"]["S"],
                image["sk"]["N"],
                orjson.dumps(image).decode(),
                event.version,
                False,
            )
        )
    return out


def _table(conn: Any) -> str:
    table = f"by_hand_{uuid.uuid4().hex[:8]}"
    conn.execute(f'CREATE TABLE "{table}" ({_SHAPE}, PRIMARY KEY (pk, sk))')
    conn.commit()
    return table


def copy(dsn: str, rows: Sequence[Row], batch_size: int) -> tuple[float, float | None]:
    """(rows/s, CPU µs per row of this process) of plain COPY."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        table = _table(conn)
        with ProcessCpu() as cpu:
            start = time.perf_counter()
            for i in range(0, len(rows), batch_size):
                with (
                    conn.cursor() as cur,
                    cur.copy(f'COPY "{table}" (pk, sk, item, version, deleted) FROM STDIN') as cp,
                ):
                    for row in rows[i : i + batch_size]:
                        cp.write_row(row)
                conn.commit()
            elapsed = time.perf_counter() - start
    return len(rows) / elapsed, cpu.us_per(len(rows))


def lww_upsert(dsn: str, rows: Sequence[Row], batch_size: int) -> tuple[float, float | None]:
    """(rows/s, CPU µs per row of this process) of COPY to staging + last-write-wins merge."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        table = _table(conn)
        stage = f"stage_{table}"
        merge = (
            f'INSERT INTO "{table}" AS stored (pk, sk, item, item_exact, version, deleted) '
            f'SELECT pk, sk, item, item_exact, version, deleted FROM "{stage}" '
            "ON CONFLICT (pk, sk) DO UPDATE SET item = excluded.item, "
            "item_exact = excluded.item_exact, version = excluded.version, "
            "deleted = excluded.deleted "
            "WHERE stored.version < excluded.version OR (stored.version = excluded.version "
            "AND excluded.deleted AND NOT stored.deleted)"
        )
        with ProcessCpu() as cpu:
            start = time.perf_counter()
            for i in range(0, len(rows), batch_size):
                with conn.cursor() as cur:
                    cur.execute(
                        f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" ({_SHAPE}) '
                        "ON COMMIT DELETE ROWS"
                    )
                    with cur.copy(
                        f'COPY "{stage}" (pk, sk, item, version, deleted) FROM STDIN'
                    ) as cp:
                        for row in rows[i : i + batch_size]:
                            cp.write_row(row)
                    cur.execute(merge)
                conn.commit()
            elapsed = time.perf_counter() - start
    return len(rows) / elapsed, cpu.us_per(len(rows))
