"""Apply throughput per worker for the null sink, SQLite, PostgreSQL and CQL (Cassandra).

What it measures: one `ApplyWorker` (a Faust consumer group, no agent, one sink thread)
consuming a topic of N change events (~300-byte items, distinct keys, so events = rows
written), from the end of its first batch to the end of its last (group join excluded),
and the CPU µs per row the worker's process spent meanwhile (/proc). Same-run baselines, on
the same topic: a plain confluent-kafka consumer reading the raw records (`consume(10000)`),
and the same consumer also Avro-decoding every record (the per-event work apply cannot
avoid); for PostgreSQL, the same last-write-wins upsert in bulk SQL with no bridge in
between (benchmarks/pg_baselines.py; plain `COPY` beside it); for CQL, the driver's best
path for the same rows by hand, unlogged batches grouped by replicas
(benchmarks/cql_baselines.py; one INSERT per row beside it). Goal: apply at 0.7 of each.
Cassandra is the suite's node (ddb_bridge/services/cassandra_node.py).
`benchmarks/bench_apply_workers.py` measures one worker process against two.
Figures are printed, never asserted. Run: `python -m benchmarks apply [--events N]
[--targets null,sqlite,postgres,cql]`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError

from benchmarks import cql_baselines, pg_baselines
from benchmarks.procfs import cpu_seconds
from benchmarks.report import Results
from bridge.apply.app import ApplyWorker
from bridge.apply.processor import BATCH_SECONDS, BatchResult
from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher, ensure_topics
from bridge.model.event import ChangeEvent, Origin
from bridge.ports.sink import TableSpec
from bridge.runtime.metrics import REGISTRY
from bridge.runtime.settings import (
    ApplySettings,
    KafkaSettings,
    NullTarget,
    PostgresTarget,
    ScyllaTarget,
    Settings,
    SqliteTarget,
)
from ddb_bridge.registry import sink_class


def produce(kafka: KafkaSettings, table: str, n: int) -> None:
    ensure_topics(kafka, [table])
    publisher = Publisher(kafka)
    for i in range(n):
        keys = {"pk": {"S": f"customer#{i:09d}"}, "sk": {"N": str(i % 1000)}}
        item = {
            **keys,
            "name": {"S": f"Customer number {i} with a longish display name"},
            "email": {"S": f"customer{i}@example.com"},
            "balance": {"N": f"{i * 7 % 100000}.{i % 100:02d}"},
            "active": {"BOOL": i % 3 == 0},
            "tags": {"SS": ["retail", f"tier{i % 5}"]},
            "address": {"M": {"city": {"S": "Lisbon"}, "zip": {"S": f"{i % 99999:05d}"}}},
        }
        publisher.publish(
            ChangeEvent.snapshot(table, item, ("pk", "sk"), 1_700_000_000_000_000 + i, Origin.SCAN)
        )
    publisher.flush()


def plain_consumer(bootstrap: str, topic: str, n: int, decode: bool) -> tuple[float, float]:
    """(events/s, CPU µs per event) of a plain consumer reading (and optionally decoding)
    `n` records."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    codec = EventCodec()
    consumer.subscribe([topic])
    seen = 0
    start: float | None = None
    cpu_start = 0.0
    try:
        while seen < n:
            batch = consumer.consume(10_000, timeout=1.0)
            if batch and start is None:
                start = time.perf_counter()  # first records in hand: the group join is done
                cpu_start = cpu_seconds(os.getpid()) or 0.0
            for msg in batch:
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(str(msg.error()))
                if decode:
                    codec.decode(msg.value())
                seen += 1
        assert start is not None
        elapsed = time.perf_counter() - start
        cpu_us = ((cpu_seconds(os.getpid()) or 0.0) - cpu_start) * 1e6 / n
        return n / elapsed, cpu_us
    finally:
        consumer.close()


def topic_events(bootstrap: str, topic: str, n: int) -> list[ChangeEvent]:
    """The topic's `n` events, read and decoded (for the baselines, before their timing)."""
    codec = EventCodec()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    events: list[ChangeEvent] = []
    try:
        while len(events) < n:
            for msg in consumer.consume(10_000, timeout=1.0):
                if not msg.error():
                    events.append(codec.decode(msg.value()))
    finally:
        consumer.close()
    return events


def apply_rate(
    bootstrap: str, table: str, n: int, target: Any, batch_size: int
) -> tuple[float, float]:
    """(rows/s, CPU µs per row) of one worker applying the topic into `target`."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, partitions=4, replication_factor=1),
        apply=ApplySettings(
            target="bench",
            batch_size=batch_size,
            batch_window_ms=100,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        ),
        targets={"bench": target},
    )
    spec = TableSpec(
        source=table, target=table, hash_key="pk", hash_type="S", range_key="sk", range_type="N"
    )
    marks: list[tuple[float, int, float]] = []
    pid = os.getpid()

    def on_batch(result: BatchResult) -> None:
        # The worker runs in this process (its consumer, sink and driver threads too): its
        # CPU between the first and the last batch is the bridge's CPU for those rows.
        marks.append((time.perf_counter(), result.written, cpu_seconds(pid) or 0.0))
        if worker.records_applied >= n:
            worker.request_stop()

    # A unique group per run: each run reads the topic from the start.
    worker = ApplyWorker(
        settings,
        f"bench-{uuid.uuid4().hex[:8]}",
        [spec],
        sink_class(target.type)(target),
        create_schema=True,
        on_batch=on_batch,
    )
    before = REGISTRY.get(BATCH_SECONDS, target=worker.target)
    code = worker.run()
    in_batches = REGISTRY.get(BATCH_SECONDS, target=worker.target) - before
    if code != 0 or len(marks) < 2:
        raise RuntimeError(f"apply exited {code} after {len(marks)} batches")
    # Keys are distinct, so rows written == events. Count the batches after the first, over
    # the time after the first: the group join and the first fetch are not apply's speed.
    rows = sum(written for _, written, _ in marks[1:])
    elapsed = marks[-1][0] - marks[0][0]
    cpu_us = (marks[-1][2] - marks[0][2]) * 1e6 / rows
    print(
        f"          ({len(marks)} batches; {in_batches:.2f}s of the worker's time in "
        f"BatchProcessor.process: decode, coalesce, write)"
    )
    return rows / elapsed, cpu_us


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_apply")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--targets", default="null,sqlite,postgres,cql")
    args = parser.parse_args(argv)

    from benchmarks.broker import bench_broker

    wanted = args.targets.split(",")
    results = Results("apply")
    results.extra["events"] = args.events
    results.extra["batch_size"] = args.batch_size
    with bench_broker(results) as bootstrap, contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=4, replication_factor=1)
        table = f"bench_{uuid.uuid4().hex[:8]}"
        topic = kafka.changes_topic(table)
        started = time.perf_counter()
        produce(kafka, table, args.events)
        print(f"produced {args.events:,} events in {time.perf_counter() - started:.1f}s")

        raw, raw_cpu = plain_consumer(bootstrap, topic, args.events, decode=False)
        decoding, _ = plain_consumer(bootstrap, topic, args.events, decode=True)
        print(f"baseline  plain consumer, raw          {raw:>10,.0f} events/s")
        print(f"baseline  plain consumer + Avro decode {decoding:>10,.0f} events/s")
        events = topic_events(bootstrap, topic, args.events)  # the baselines' rows
        # Held for the whole run, they are no worker's: frozen, the collector does not
        # re-scan them on the worker's time (as bench_publish does with its inputs).
        gc.collect()
        gc.freeze()

        for name in wanted:
            target = start_target(name, stack, Path(tmp))
            if target is None:
                continue
            rate, cpu_us = apply_rate(bootstrap, table, args.events, target, args.batch_size)
            results.figure(
                f"apply, {name} sink",
                rate,
                "events/s",
                baseline=("plain consumer, raw", raw),
                goal_ratio=0.5 if name == "null" else None,
                note=f"ratio to consume + Avro decode ({decoding:,.0f}/s): {rate / decoding:.2f}",
                cpu_us_per_item=cpu_us,
                baseline_cpu_us_per_item=raw_cpu,
            )
            if name == "postgres":
                rows = pg_baselines.rows_of(events)
                dsn = target.dsn.get_secret_value()
                upsert, upsert_cpu = pg_baselines.lww_upsert(dsn, rows, args.batch_size)
                copy, _ = pg_baselines.copy(dsn, rows, args.batch_size)
                results.figure(
                    "apply -> PostgreSQL, rows",
                    rate,
                    "rows/s",
                    baseline=("the same LWW upsert in bulk SQL (COPY + merge)", upsert),
                    goal_ratio=0.7,
                    note=f"plain COPY, no version check: {copy:,.0f}/s (ratio {rate / copy:.2f})",
                    cpu_us_per_item=cpu_us,
                    baseline_cpu_us_per_item=upsert_cpu,
                )
            if name == "cql":
                cql_figures(results, target, events, rate, cpu_us)
    results.write()


def start_target(name: str, stack: contextlib.ExitStack, tmp: Path) -> Any:
    """The settings of target `name`, its server started (and stopped by `stack`); None,
    with the reason printed, when the server cannot run here."""
    from ddb_bridge.services import cassandra_node
    from ddb_bridge.services.postgres import PostgresCluster, postgres_bindir

    if name == "null":
        return NullTarget(type="null")
    if name == "sqlite":
        return SqliteTarget(type="sqlite", path=str(tmp / "b.db"))
    if name == "postgres":
        bindir = postgres_bindir()
        if bindir is None:
            print("postgres: skipped (no initdb/pg_ctl found)")
            return None
        cluster = PostgresCluster(bindir)
        cluster.init()
        cluster.start()
        stack.callback(cluster.destroy)
        return PostgresTarget(type="postgres", dsn=cluster.dsn)
    if name == "cql":
        missing = cassandra_node.missing_tools()
        if missing:
            print(f"cql: skipped ({' and '.join(missing)} not found: needed to run Cassandra)")
            return None
        endpoint = stack.enter_context(cassandra_node.running_node())
        print(f"cql: {endpoint.describe()}")
        return endpoint.target(keyspace="bench")
    raise SystemExit(f"unknown target {name!r}: null, sqlite, postgres, cql")


def cql_figures(
    results: Results, target: ScyllaTarget, events: list[ChangeEvent], rate: float, cpu_us: float
) -> None:
    """apply -> CQL beside the driver's best path for the same rows, done by hand."""
    driver = cql_baselines.DriverBaseline(
        target.hosts, target.port, target.keyspace, target.concurrency
    )
    try:
        rows = cql_baselines.rows_of(events)
        best, best_cpu = driver.best(rows)
        per_row, _ = driver.per_row(rows)
    finally:
        driver.close()
    results.figure(
        "apply -> CQL (Cassandra), rows",
        rate,
        "rows/s",
        baseline=(
            f"the driver by hand: unlogged batches of {cql_baselines.BATCH_ROWS} rows grouped "
            "by replicas",
            best,
        ),
        goal_ratio=0.7,
        note=f"the driver, one INSERT per row: {per_row:,.0f}/s (ratio {rate / per_row:.2f}); "
        f"sink: batch_rows {target.batch_rows}, batch_bytes {target.batch_bytes}",
        cpu_us_per_item=cpu_us,
        baseline_cpu_us_per_item=best_cpu,
    )


if __name__ == "__main__":
    main()
