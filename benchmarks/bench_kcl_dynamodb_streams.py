"""The native DynamoDB Streams reader beside KCL 3 through the DynamoDB Streams Kinesis Adapter,
on the same moto stream: records/s, DynamoDB -> Kafka latency p50/p99, RSS, CPU.

One moto table with a stream, one broker (benchmarks/broker.py). Each path runs as its real
command, one after the other, on its own topic prefix and lease tables: `ddb-bridge stream`
(the native reader) and `ddb-bridge kcl run --transport dynamodb-streams` (a JVM and one
Python processor per shard):
- throughput: --items writes are on the stream before the reader starts; records/s is the
  number of records on the stream divided by the time from the reader's first event in Kafka
  to its last (start-up, JVM included, is printed apart);
- latency: a paced writer (--rate writes/s for --seconds) while the reader runs; latency is
  a write's return to its event's arrival at a consumer tailing the topic (t_kafka - t_write);
- RSS: the reader's whole process tree (the JVM and its processor for the KCL path), sampled
  every 0.5 s over both phases: peak and mean; CPU: the tree's CPU seconds during the
  latency phase per second of it (cores), and during the throughput phase per 1,000 records.
Both read with the same poll interval (--poll-ms: [stream] poll_interval_ms and the KCL's
idleTimeBetweenReadsInMillis). The same-run baseline of each KCL figure is the native reader's.

Run: `python -m benchmarks kcl_dynamodb_streams [--items 3000 --rate 50 --seconds 30]`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.broker import bench_broker
from benchmarks.latency_stats import summary
from benchmarks.procfs import cpu_seconds, descendants, parents, rss_mb
from benchmarks.report import Results

PAYLOAD = "x" * 200


class Tree:
    """A reader's process tree: RSS sampled in a thread, CPU read on demand."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def pids(self) -> list[int]:
        return descendants(self.pid, parents())

    def cpu(self) -> float:
        return sum(c for p in self.pids() if (c := cpu_seconds(p)) is not None)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            total = sum(r for p in self.pids() if (r := rss_mb(p)) is not None)
            if total:
                self.rss.append(total)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Tail(threading.Thread):
    """The first arrival time (wall clock) of each write's event in the change topic."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic])
        self.seen: dict[int, float] = {}
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.stop_event = threading.Event()

    def run(self) -> None:
        from bridge.codec.avro import EventCodec

        codec = EventCodec()
        while not self.stop_event.is_set():
            for m in self.consumer.consume(500, 0.2):
                if m.error():
                    continue
                now = time.time()
                self.first = self.first or now
                self.last = now
                self.count += 1
                value = m.value()
                if value is None:
                    continue
                image = codec.decode(value).new_image or {}
                seq = image.get("seq", {}).get("N")
                if seq is not None:
                    self.seen.setdefault(int(seq), now)
        self.consumer.close()


def write_items(ddb: Any, table: str, first: int, n: int) -> dict[int, float]:
    """Puts of items first..first+n-1 (as fast as moto takes them); seq -> return time."""
    from concurrent.futures import ThreadPoolExecutor

    returned: dict[int, float] = {}

    def put(seq: int) -> None:
        ddb.put_item(
            TableName=table,
            Item={"pk": {"S": f"k{seq % 1000:04d}"}, "seq": {"N": str(seq)}, "p": {"S": PAYLOAD}},
        )
        returned[seq] = time.time()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(first, first + n)))
    return returned


def paced_writes(ddb: Any, table: str, first: int, rate: float, seconds: float) -> dict[int, float]:
    from concurrent.futures import ThreadPoolExecutor

    returned: dict[int, float] = {}
    start = time.monotonic()
    n = int(rate * seconds)

    def put(seq: int) -> None:
        due = start + (seq - first) / rate
        time.sleep(max(0.0, due - time.monotonic()))
        ddb.put_item(
            TableName=table,
            Item={"pk": {"S": f"k{seq % 1000:04d}"}, "seq": {"N": str(seq)}, "p": {"S": PAYLOAD}},
        )
        returned[seq] = time.time()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(first, first + n)))
    return returned


def wait(what: str, cond: Any, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if proc.poll() is not None:
            raise SystemExit(
                f"{what}: the reader exited {proc.returncode}:\n"
                f"{log.read_text(errors='replace')[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise SystemExit(
                f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(0.1)


def run_path(
    path: str,
    args: argparse.Namespace,
    endpoint: str,
    bootstrap: str,
    table: str,
    ddb: Any,
    next_seq: int,
    work: Path,
) -> tuple[dict[str, Any], int]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    config = work / f"{path}.toml"
    config.write_text(
        f'[aws]\nendpoint_url = "{endpoint}"\nregion = "us-east-1"\n\n'
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\ntopic_prefix = "{prefix}"\n'
        "partitions = 4\nreplication_factor = 1\n\n"
        f'[[tables]]\nname = "{table}"\n\n'
        f'[stream]\nlease_table = "{table}-{path}-leases"\npoll_interval_ms = {args.poll_ms}\n'
    )
    on_stream = next_seq  # every write so far is on the stream (items and earlier phases)
    tail = Tail(bootstrap, f"{prefix}{table}.changes")
    tail.start()
    cli = [sys.executable, "-m", "ddb_bridge.cli.main"]
    if path == "native":
        argv = [*cli, "stream", "--config", str(config)]
    else:
        argv = [
            *cli,
            "kcl",
            "run",
            "--config",
            str(config),
            "--table",
            table,
            "--transport",
            "dynamodb-streams",
            "--application-name",
            f"bench-{prefix[:-1]}",
            "--set",
            f"idleTimeBetweenReadsInMillis={args.poll_ms}",
        ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE__")}
    env |= {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    log = work / f"{path}.log"
    started = time.time()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    tree = Tree(proc.pid)
    try:
        cpu0 = tree.cpu()
        wait(
            f"{path}: {on_stream} records in Kafka",
            lambda: tail.count >= on_stream,
            args.timeout_s,
            proc,
            log,
        )
        assert tail.first is not None and tail.last is not None
        drain_s = max(tail.last - tail.first, 1e-3)
        cpu_drain = tree.cpu() - cpu0
        cpu1 = tree.cpu()
        t1 = time.monotonic()
        written = paced_writes(ddb, table, next_seq, args.rate, args.seconds)
        wait(
            f"{path}: the paced writes in Kafka",
            lambda: set(written) <= set(tail.seen),
            args.timeout_s,
            proc,
            log,
        )
        busy_s = time.monotonic() - t1
        cpu_paced = tree.cpu() - cpu1
        latencies = [tail.seen[s] - written[s] for s in written]
    finally:
        tree.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        tail.stop_event.set()
        tail.join(10)
    stats = summary(latencies)
    figures = {
        "records_per_s": on_stream / drain_s,
        "startup_s": tail.first - started,
        "latency_p50_ms": stats["p50"] * 1000,
        "latency_p99_ms": stats["p99"] * 1000,
        "rss_peak_mb": max(tree.rss) if tree.rss else 0.0,
        "rss_mean_mb": sum(tree.rss) / len(tree.rss) if tree.rss else 0.0,
        "cpu_cores_paced": cpu_paced / busy_s,
        "cpu_s_per_1000_records": cpu_drain / on_stream * 1000,
        "records": on_stream,
        "exit_code_on_sigterm": code,
    }
    print(f"{path}: {figures}", flush=True)
    return figures, next_seq + len(written)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="bench_kcl_dynamodb_streams", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--items", type=int, default=3000, help="writes before each reader")
    parser.add_argument("--rate", type=float, default=50.0, help="paced writes per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="paced phase length")
    parser.add_argument("--poll-ms", type=int, default=250, help="both readers' poll interval")
    parser.add_argument("--timeout-s", type=float, default=300.0)
    args = parser.parse_args(argv)

    import boto3

    from connectors.sources.stream.kcl import launcher
    from ddb_bridge.services.moto_server import moto_server

    launcher.ensure_jars()  # built once; not part of any figure
    results = Results("kcl_dynamodb_streams")
    with (
        moto_server() as endpoint,
        bench_broker(results) as bootstrap,
        tempfile.TemporaryDirectory(prefix="bench-kcl3-") as tmp,
    ):
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        table = f"bench-{uuid.uuid4().hex[:6]}"
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        seq = len(write_items(ddb, table, 0, args.items))
        native, seq = run_path("native", args, endpoint, bootstrap, table, ddb, seq, Path(tmp))
        kcl, seq = run_path("kcl", args, endpoint, bootstrap, table, ddb, seq, Path(tmp))
    for name, unit, label in (
        ("records_per_s", "records/s", "records/s draining the stream"),
        ("latency_p50_ms", "ms", "DynamoDB -> Kafka latency p50"),
        ("latency_p99_ms", "ms", "DynamoDB -> Kafka latency p99"),
        ("rss_peak_mb", "MB", "RSS of the reader's process tree, peak"),
        ("rss_mean_mb", "MB", "RSS of the reader's process tree, mean"),
        ("cpu_cores_paced", "cores", f"CPU at {args.rate:g} writes/s"),
        ("cpu_s_per_1000_records", "CPU s", "CPU per 1,000 records drained"),
        ("startup_s", "s", "start to first event in Kafka"),
    ):
        results.figure(
            f"KCL 3 + adapter: {label}", kcl[name], unit, baseline=("native reader", native[name])
        )
    results.extra = {"native": native, "kcl": kcl, "args": vars(args)}
    results.write()


if __name__ == "__main__":
    main()
