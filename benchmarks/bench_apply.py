"""Apply throughput per worker (events/s) for the null sink, SQLite and PostgreSQL.

What it measures: one `ApplyWorker` (a Faust consumer group, no agent, one sink thread)
consuming a topic of
N change events (~300-byte items, distinct keys, so events = rows written), from the end of
its first batch to the end of its last (group join excluded). Same-run baselines, on the same
topic: a plain confluent-kafka consumer reading the raw records (`consume(10000)`), and the
same consumer also Avro-decoding every record (the per-event work apply cannot avoid), and
for PostgreSQL, `COPY` of the same rows into a table of the sink's shape (goal: apply at
0.7 of it). `benchmarks/bench_apply_workers.py` measures one worker process against two.
Figures are printed, never asserted. Run: `python -m benchmarks apply [--events N]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError

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


def plain_consumer(bootstrap: str, topic: str, n: int, decode: bool) -> float:
    """Events/s of a plain consumer reading (and optionally decoding) `n` records."""
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
    try:
        while seen < n:
            batch = consumer.consume(10_000, timeout=1.0)
            if batch and start is None:
                start = time.perf_counter()  # first records in hand: the group join is done
            for msg in batch:
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(str(msg.error()))
                if decode:
                    codec.decode(msg.value())
                seen += 1
        assert start is not None
        return n / (time.perf_counter() - start)
    finally:
        consumer.close()


def copy_rate(dsn: str, bootstrap: str, topic: str, n: int, batch_size: int) -> float:
    """Rows/s of PostgreSQL `COPY` of the topic's rows (keys, item, version, deleted) into a
    table of the sink's shape, in the same batches, one commit each: the same rows as the
    apply figure, loaded the fastest way PostgreSQL offers, with no version check. The rows
    are read and decoded first, outside the timing."""
    import psycopg

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
    rows: list[tuple[Any, ...]] = []
    try:
        while len(rows) < n:
            for msg in consumer.consume(10_000, timeout=1.0):
                if msg.error():
                    continue
                event = codec.decode(msg.value())
                rows.append(
                    (
                        event.keys["pk"]["S"],
                        event.keys["sk"]["N"],
                        orjson.dumps(event.new_image).decode(),
                        event.version,
                        False,
                    )
                )
    finally:
        consumer.close()
    table = f"copy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as conn:
        conn.execute(
            f'CREATE TABLE "{table}" (pk text NOT NULL, sk numeric NOT NULL, item jsonb, '
            "item_exact bytea, version bigint NOT NULL, deleted boolean NOT NULL, "
            "PRIMARY KEY (pk, sk))"
        )
        conn.commit()
        start = time.perf_counter()
        for i in range(0, len(rows), batch_size):
            with (
                conn.cursor() as cur,
                cur.copy(f'COPY "{table}" (pk, sk, item, version, deleted) FROM STDIN') as copy,
            ):
                for row in rows[i : i + batch_size]:
                    copy.write_row(row)
            conn.commit()
        return len(rows) / (time.perf_counter() - start)


def apply_rate(
    bootstrap: str, table: str, n: int, target: Any, batch_size: int
) -> tuple[float, int]:
    """(rows/s, rows) of one worker applying the topic into `target`."""
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
    marks: list[tuple[float, int]] = []

    def on_batch(result: BatchResult) -> None:
        marks.append((time.perf_counter(), result.written))
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
    rows = sum(written for _, written in marks[1:])
    elapsed = marks[-1][0] - marks[0][0]
    print(
        f"          ({len(marks)} batches; {in_batches:.2f}s of the worker's time in "
        f"BatchProcessor.process: decode, coalesce, write)"
    )
    return rows / elapsed, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_apply")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--targets", default="null,sqlite,postgres")
    args = parser.parse_args(argv)

    from benchmarks.broker import bench_broker
    from benchmarks.report import Results
    from tests.services import PostgresCluster, postgres_bindir

    wanted = args.targets.split(",")
    results = Results("apply")
    results.extra["events"] = args.events
    results.extra["batch_size"] = args.batch_size
    with bench_broker(results) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=4, replication_factor=1)
        table = f"bench_{uuid.uuid4().hex[:8]}"
        topic = kafka.changes_topic(table)
        started = time.perf_counter()
        produce(kafka, table, args.events)
        print(f"produced {args.events:,} events in {time.perf_counter() - started:.1f}s")

        raw = plain_consumer(bootstrap, topic, args.events, decode=False)
        decoding = plain_consumer(bootstrap, topic, args.events, decode=True)
        print(f"baseline  plain consumer, raw          {raw:>10,.0f} events/s")
        print(f"baseline  plain consumer + Avro decode {decoding:>10,.0f} events/s")

        cluster = None
        targets: list[tuple[str, Any]] = []
        if "null" in wanted:
            targets.append(("null", NullTarget(type="null")))
        if "sqlite" in wanted:
            targets.append(("sqlite", SqliteTarget(type="sqlite", path=str(Path(tmp) / "b.db"))))
        if "postgres" in wanted:
            bindir = postgres_bindir()
            if bindir is None:
                print("postgres: skipped (no initdb/pg_ctl found)")
            else:
                cluster = PostgresCluster(bindir)
                cluster.init()
                cluster.start()
                targets.append(("postgres", PostgresTarget(type="postgres", dsn=cluster.dsn)))
        try:
            for name, target in targets:
                rate, _rows = apply_rate(bootstrap, table, args.events, target, args.batch_size)
                results.figure(
                    f"apply, {name} sink",
                    rate,
                    "events/s",
                    baseline=("plain consumer, raw", raw),
                    goal_ratio=0.5 if name == "null" else None,
                    note=f"ratio to consume + Avro decode ({decoding:,.0f}/s): "
                    f"{rate / decoding:.2f}",
                )
                if name == "postgres":
                    assert cluster is not None
                    copy = copy_rate(cluster.dsn, bootstrap, topic, args.events, args.batch_size)
                    results.figure(
                        "apply -> PostgreSQL, rows",
                        rate,
                        "rows/s",
                        baseline=("COPY of the same rows", copy),
                        goal_ratio=0.7,
                    )
        finally:
            if cluster is not None:
                cluster.destroy()
    results.write()


if __name__ == "__main__":
    main()
