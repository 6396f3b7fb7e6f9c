"""The threads of benchmarks/bench_latency.py: a paced DynamoDB writer, a tail on the change
topic, a poller on the target, and the floor reader (GetRecords on a plain polling loop).

Each reports what it saw, with the wall clock (`time.time()`) at which it saw it, to a
`Ledger` (benchmarks/latency_ledger.py). Clocks: every process runs on this machine, so the
writer's, the tail's, the poller's clocks and the stream producer's are one clock.
A probe that fails keeps its exception in `error`; the bench stops on it (a probe that died
would otherwise show up as "missing writes").
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.latency_ledger import Ledger

PAYLOAD = "x" * 200  # a small, realistic item: ~250 bytes


def key_of(seq: int, keys: int) -> str:
    return f"k{seq % keys:06d}"


class Probe(threading.Thread):
    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.loop()
        except BaseException as exc:  # kept for the bench, which stops on it
            self.error = exc

    def loop(self) -> None:
        raise NotImplementedError


class Writer(Probe):
    """Writes at `rate`/s on a fixed schedule: the n-th write is sent at start + n/rate by one
    of `threads` threads, whatever the earlier calls take (one thread alone fell behind
    whenever moto answered slowly, and the rate with it). A key's first write and every even
    one is a put, the others update `seq`, `payload` and a counter; consecutive writes touch
    different keys. `measured` off marks warm-up writes."""

    def __init__(
        self, ddb: Any, table: str, ledger: Ledger, rate: float, keys: int, threads: int = 8
    ) -> None:
        super().__init__("latency-writer")
        self.ddb, self.table, self.ledger = ddb, table, ledger
        self.rate, self.keys, self.threads = rate, keys, threads
        self.measured = threading.Event()
        self.count = 0
        self.puts = 0
        self.updates = 0
        self.late = 0  # writes sent more than one interval behind schedule
        self.lateness: list[float] = []  # seconds each write was sent after its due time
        self.measured_span: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def loop(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        started = time.monotonic()
        first_measured: float | None = None
        with ThreadPoolExecutor(self.threads, thread_name_prefix="latency-write") as pool:
            seq = 0
            while not self.stop_event.is_set() and self.error is None:
                due = started + seq / self.rate
                wait = due - time.monotonic()
                if wait > 0:
                    self.stop_event.wait(wait)
                    continue
                measured = self.measured.is_set()
                if measured and first_measured is None:
                    first_measured = time.time()
                pool.submit(self._write, seq, due, measured).add_done_callback(self._failed)
                seq += 1
                self.count = seq
        if first_measured is not None:
            self.measured_span = (first_measured, time.time())

    def _failed(self, future: Any) -> None:
        if future.exception() is not None and self.error is None:
            self.error = future.exception()

    def _write(self, seq: int, due: float, measured: bool) -> None:
        key = key_of(seq, self.keys)
        behind = time.monotonic() - due
        self.ledger.sent(key, seq, time.time(), measured)
        if seq < self.keys or seq % 2 == 0:
            self.ddb.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": key},
                    "seq": {"N": str(seq)},
                    "payload": {"S": PAYLOAD},
                    "n": {"N": "1"},
                },
            )
            put = True
        else:
            self.ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET seq = :s, payload = :p ADD n :one",
                ExpressionAttributeValues={
                    ":s": {"N": str(seq)},
                    ":p": {"S": PAYLOAD[::-1] + str(seq)},
                    ":one": {"N": "1"},
                },
            )
            put = False
        self.ledger.returned(key, seq, time.time())
        with self._lock:
            self.late += behind > 1 / self.rate
            self.lateness.append(behind)
            if put:
                self.puts += 1
            else:
                self.updates += 1


class KafkaTail(Probe):
    """Reads every partition of the change topic from its start; reports each event's
    (key, seq, version), the time `consume` returned it and the record's timestamp."""

    def __init__(
        self, consumer_conf: dict[str, Any], topic: str, partitions: int, ledger: Ledger, codec: Any
    ) -> None:
        super().__init__("latency-kafka-tail")
        self.conf = {
            **consumer_conf,
            "group.id": f"bench-latency-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            # The broker answers a fetch as soon as a record arrives (fetch.min.bytes=1);
            # this only bounds the wait of a fetch that finds nothing.
            "fetch.wait.max.ms": 50,
        }
        self.topic, self.partitions, self.ledger, self.codec = topic, partitions, ledger, codec
        self.records = 0

    def loop(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(self.conf)
        # Assigned, not subscribed: no group join to wait for.
        consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)]
        )
        try:
            while not self.stop_event.is_set():
                messages = consumer.consume(1000, timeout=0.05)
                seen = time.time()
                for msg in messages:
                    if msg.error():
                        raise RuntimeError(f"tail consumer: {msg.error()}")
                    event = self.codec.decode(msg.value())
                    self.records += 1
                    key = event.keys["pk"]["S"]
                    image = event.new_image or {}
                    seq = int(image["seq"]["N"]) if "seq" in image else None
                    _kind, stamp_ms = msg.timestamp()
                    stamp = stamp_ms / 1000 if stamp_ms and stamp_ms > 0 else None
                    self.ledger.kafka_event(key, seq, event.version, seen, stamp)
        finally:
            consumer.close()


# A query for the rows of some keys: the time its snapshot was taken (None: unknown, use the
# send time) and (pk, seq held, version) per row found.
RowQuery = Callable[[list[str]], tuple[float | None, list[tuple[str, int, int]]]]


class TargetPoller(Probe):
    """Every `interval_s`, on a fixed schedule, reads the rows of the keys with a write not yet
    seen there. A row is stamped with the time the query's snapshot was taken (PostgreSQL's
    statement_timestamp(): the same clock, and no wait for this busy process's GIL in it;
    SQLite: the send time). It was not visible to the previous query, so it became visible
    at most one interval (plus that query's own time) before the stamp."""

    def __init__(self, query: RowQuery, ledger: Ledger, interval_s: float) -> None:
        super().__init__("latency-target-poller")
        self.query, self.ledger, self.interval_s = query, ledger, interval_s
        self.polls = 0
        self.query_s: list[float] = []  # how long each query took (the resolution's other half)
        self.missing_table_polls = 0

    def loop(self) -> None:
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            keys = self.ledger.waiting_keys()
            if keys:
                sent = time.time()
                started = time.perf_counter()
                snapshot, rows = self.query(keys)
                self.query_s.append(time.perf_counter() - started)
                self.polls += 1
                for pk, seq, version in rows:
                    self.ledger.target_row(pk, seq, version, snapshot or sent)
            next_at += self.interval_s
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))


def postgres_query(dsn: str, schema: str, table: str) -> RowQuery:
    import psycopg
    from psycopg import sql

    conn = psycopg.connect(dsn, autocommit=True)
    # Autocommit, READ COMMITTED: the statement's snapshot is taken when it starts, which is
    # what statement_timestamp() reports (the server runs on this machine: the same clock).
    statement = sql.SQL(
        "SELECT extract(epoch FROM statement_timestamp())::float8, pk, "
        "(item->'seq'->>'N')::bigint, version FROM {} WHERE pk = ANY(%s)"
    ).format(sql.Identifier(schema, table))

    def query(keys: list[str]) -> tuple[float | None, list[tuple[str, int, int]]]:
        try:
            rows = conn.execute(statement, (keys,)).fetchall()
        except psycopg.errors.UndefinedTable:
            return None, []  # apply has not created it yet
        return (rows[0][0] if rows else None), [(r[1], r[2], r[3]) for r in rows]

    return query


def sqlite_query(path: str, table: str) -> RowQuery:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    quoted = '"' + table.replace('"', '""') + '"'

    def query(keys: list[str]) -> tuple[float | None, list[tuple[str, int, int]]]:
        marks = ",".join("?" * len(keys))
        try:
            cur = conn.execute(
                f"SELECT pk, CAST(json_extract(item, '$.seq.N') AS INTEGER), version "
                f"FROM {quoted} WHERE pk IN ({marks})",
                keys,
            )
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None, []
            raise
        return None, [(r[0], r[1], r[2]) for r in cur]

    return query


class StreamFloor(Probe):
    """The floor any stream reader polling every `interval_s` pays on this moto: GetRecords in
    a plain loop on the table's one shard (a pause of `interval_s` after every page that is
    not full, as the bridge's reader after a page with records), no Kafka, no target. It
    reads the bridge's own stream, beside the bridge (DynamoDB allows two readers a shard):
    the same writes, on the same loaded moto, so the two are compared write by write."""

    def __init__(self, streams: Any, stream_arn: str, ledger: Ledger, interval_s: float) -> None:
        super().__init__("latency-floor-reader")
        self.streams, self.arn, self.ledger, self.interval_s = (
            streams,
            stream_arn,
            ledger,
            interval_s,
        )
        self.ready = threading.Event()
        self.calls = 0

    def loop(self) -> None:
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        if len(shards) != 1:
            raise RuntimeError(f"the floor reader expects one shard, the stream has {len(shards)}")
        iterator = self.streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shards[0]["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]
        self.ready.set()
        while not self.stop_event.is_set() and iterator:
            page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            seen = time.time()
            self.calls += 1
            for record in page["Records"]:
                image = record["dynamodb"].get("NewImage", {})
                key = record["dynamodb"]["Keys"]["pk"]["S"]
                seq = int(image["seq"]["N"]) if "seq" in image else None
                self.ledger.floor_record(key, seq, seen)
            iterator = page.get("NextShardIterator")
            if len(page["Records"]) < 1000:
                self.stop_event.wait(self.interval_s)
