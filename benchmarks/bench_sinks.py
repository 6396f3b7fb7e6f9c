"""Sink write throughput (rows/s) against a same-run COPY/executemany/driver baseline.

What it measures: `write_batch` of batches of distinct-key SNAPSHOT events (the sample item
of tests/samples.py: all ten types, ~700 bytes of DynamoDB JSON) into a fresh table, the
events as apply's screening hands them to the sink (screened before the timing) — the
full sink path: coalescing, key validation, JSON encoding, the conditional upsert, commit.
Baseline, same run, same rows: the fastest plain load the database offers (PostgreSQL
`COPY` into a table of the same shape, SQLite `executemany` INSERT), with no version check;
for CQL, the driver by hand writing the sink's rows in unlogged batches grouped by replicas
(benchmarks/cql_baselines.py), against the suite's Cassandra node. CPU µs per row is this
process's (/proc), where the sink runs.
Starts its own throwaway PostgreSQL cluster unless `--pg-dsn` is given.
Run: `python -m benchmarks sinks` (defaults), or with options
`python -m benchmarks.bench_sinks [--rows N] [--batch N] [--pg-dsn DSN] [--no-cql]`.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.procfs import ProcessCpu
from benchmarks.report import Results
from bridge.apply.screening import Rejected, Screen
from bridge.codec.avro import EventCodec
from bridge.dlq.writer import RawRecord
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Origin
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import PostgresTarget, SqliteTarget
from connectors.sinks.postgres import PostgresSink
from connectors.sinks.sqlite import SqliteSink
from tests.samples import sample_item

VERSION = 1_700_000_000_000_000


def events(spec: TableSpec, n: int) -> list[ChangeEvent]:
    out = []
    for i in range(n):
        item = sample_item(i, pad=40)
        item["sk"] = {"N": str(i)}  # distinct keys: every event is a row written
        out.append(ChangeEvent.snapshot(spec.source, item, spec.key_names, VERSION, Origin.SCAN))
    return out


def as_apply_hands_them(sink: Any, spec: TableSpec, evs: list[ChangeEvent]) -> list[ChangeEvent]:
    """The events as apply's screening hands them to this sink (for a sink that stores
    image text: TextImageEvents, whose text it stores as is), screened outside the timing."""
    codec = EventCodec()
    screen = Screen(codec, lambda _t: spec.source, [spec], sink.capabilities.image_text)
    out = []
    for e in evs:
        verdict = screen.check(RawRecord("t", 0, 0, e.key_bytes(), codec.encode(e)))
        assert not isinstance(verdict, Rejected), verdict
        out.append(verdict[0])
    return out


def timed_sink(
    sink: Any, spec: TableSpec, evs: list[ChangeEvent], batch: int
) -> tuple[float, float]:
    """(seconds, CPU seconds of this process) of the sink writing `evs` in batches."""
    evs = as_apply_hands_them(sink, spec, evs)
    sink.open([spec], create_schema=True)
    with ProcessCpu() as cpu:
        start = time.perf_counter()
        for i in range(0, len(evs), batch):
            sink.write_batch(evs[i : i + batch])
        elapsed = time.perf_counter() - start
    sink.close()
    return elapsed, cpu.seconds


def baseline_pg(dsn: str, table: str, evs: list[ChangeEvent], batch: int) -> tuple[float, float]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute(
            f'CREATE TABLE "{table}" (pk text, sk numeric, item jsonb, version bigint, '
            "deleted boolean, PRIMARY KEY (pk, sk))"
        )
        conn.commit()
        with ProcessCpu() as cpu:
            start = time.perf_counter()
            for i in range(0, len(evs), batch):
                with conn.cursor() as cur, cur.copy(f'COPY "{table}" FROM STDIN') as copy:
                    for e in evs[i : i + batch]:
                        img = e.new_image or {}
                        copy.write_row(
                            (img["pk"]["S"], img["sk"]["N"], attrs.dumps(img), e.version, False)
                        )
                conn.commit()
            elapsed = time.perf_counter() - start
        return elapsed, cpu.seconds


def baseline_sqlite(
    path: str, table: str, evs: list[ChangeEvent], batch: int
) -> tuple[float, float]:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        f'CREATE TABLE "{table}" (pk TEXT, sk TEXT, item TEXT, version INTEGER, deleted INTEGER, '
        "PRIMARY KEY (pk, sk)) WITHOUT ROWID"
    )
    with ProcessCpu() as cpu:
        start = time.perf_counter()
        for i in range(0, len(evs), batch):
            rows = []
            for e in evs[i : i + batch]:
                img = e.new_image or {}
                rows.append((img["pk"]["S"], img["sk"]["N"], attrs.dumps(img), e.version, 0))
            conn.execute("BEGIN")
            conn.executemany(f'INSERT INTO "{table}" VALUES (?, ?, ?, ?, ?)', rows)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, cpu.seconds


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    from ddb_bridge.services.postgres import PostgresCluster, postgres_bindir

    bindir = postgres_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found: install postgresql or pass --pg-dsn")
    cluster = PostgresCluster(bindir)
    cluster.init()
    cluster.start()
    try:
        yield cluster.dsn
    finally:
        cluster.destroy()


def cql(results: Results, spec: TableSpec, evs: list[ChangeEvent], batch: int) -> None:
    """The CQL sink alone against the suite's Cassandra node, beside the driver's best path
    for the same rows by hand (benchmarks/cql_baselines.py)."""
    from benchmarks import cql_baselines
    from connectors.sinks.scylla import ScyllaSink
    from ddb_bridge.services import cassandra_node

    missing = cassandra_node.missing_tools()
    if missing:
        print(f"cql: skipped ({' and '.join(missing)} not found: needed to run Cassandra)")
        return
    with cassandra_node.running_node() as endpoint:
        print(f"cql: {endpoint.describe()}", flush=True)
        target = endpoint.target(keyspace="bench")
        sink_run = timed_sink(ScyllaSink(target), spec, evs, batch)
        driver = cql_baselines.DriverBaseline(
            target.hosts, target.port, target.keyspace, target.concurrency
        )
        try:
            rate, cpu_us = driver.best(cql_baselines.rows_of(evs))
            base_run = (len(evs) / rate, (cpu_us or 0.0) * len(evs) / 1e6)
        finally:
            driver.close()
    report(
        results,
        "CQL (Cassandra)",
        len(evs),
        sink_run,
        base_run,
        f"the driver by hand, unlogged batches of {cql_baselines.BATCH_ROWS} rows by replicas",
    )


def report(
    results: Results,
    name: str,
    rows: int,
    sink: tuple[float, float],
    base: tuple[float, float],
    base_name: str,
) -> None:
    """A figure from (seconds, CPU seconds) of the sink and of its baseline."""
    results.figure(
        f"{name} sink alone",
        rows / sink[0],
        "rows/s",
        baseline=(base_name, rows / base[0]),
        cpu_us_per_item=sink[1] * 1e6 / rows,
        baseline_cpu_us_per_item=base[1] * 1e6 / rows,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_sinks")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--pg-dsn", default=None, help="existing server (default: start one)")
    parser.add_argument("--no-cql", action="store_true", help="skip the CQL sink (Cassandra)")
    args = parser.parse_args(argv)

    name = f"bench_{uuid.uuid4().hex[:8]}"
    spec = TableSpec(name, name, "pk", "S", "sk", "N")
    evs = events(spec, args.rows)
    results = Results("sinks")
    results.extra.update(rows=args.rows, batch=args.batch)
    print(f"{args.rows} rows, batches of {args.batch}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.db")
        sink_run = timed_sink(
            SqliteSink(SqliteTarget(type="sqlite", path=path)), spec, evs, args.batch
        )
        base_run = baseline_sqlite(path, name + "_base", evs, args.batch)
        report(results, "sqlite", args.rows, sink_run, base_run, "executemany")
    with postgres(args.pg_dsn) as dsn:
        pg = PostgresSink(PostgresTarget(type="postgres", dsn=dsn))
        sink_run = timed_sink(pg, spec, evs, args.batch)
        base_run = baseline_pg(dsn, name + "_base", evs, args.batch)
        report(results, "postgres", args.rows, sink_run, base_run, "COPY")
    if not args.no_cql:
        cql(results, spec, evs, args.batch)
    results.write()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
