"""Many tables, low cost: one `ddb-bridge stream` process serving 200 tables, 5 of them busy.

What it measures, with the real CLI against moto (DynamoDB + Streams) and the bench broker:
the stream process's RSS (now and peak) and threads, and the GetRecords calls per idle shard
per hour (from the process's own `ddb_bridge_stream_get_records_total`, over a window that
starts once every lease is held and the idle backoff has reached its cap), beside the naive
figure of polling every 250 ms (14,400 calls an hour). It also checks that every write to
the busy tables reached Kafka, and says how long moto took to create the tables and the
process to hold every lease. Goals (issue 13): RSS <= 300 MB; idle calls <= 1/10 of 14,400.
A/B against an older checkout: `--stream-pythonpath CHECKOUT --plain-config`.

Run: `python -m benchmarks stream_tables [--tables 200 --active 5 --minutes 2]`.
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
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from benchmarks.procfs import cpu_seconds

NAIVE_CALLS_PER_HOUR = 3600 / 0.25  # one GetRecords every 250 ms, data or not
GET_RECORDS = "ddb_bridge_stream_get_records_total"
LEASES_HELD = "ddb_bridge_stream_leases_held"


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in kB, and Threads, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def scrape(port: int) -> dict[tuple[str, str], float]:
    """(metric, table) -> value for the per-table samples of the process's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if "table" in s.labels and "shard" not in s.labels:
                out[(s.name, s.labels["table"])] = s.value
    return out


def create_tables(endpoint: str, names: list[str]) -> float:
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    started = time.perf_counter()
    for name in names:
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    return time.perf_counter() - started


def write_config(path: Path, tables: list[str], lease_table: str, args: Any) -> None:
    from bridge.runtime.config_file import write_config as write_settings_file

    stream = {
        "lease_table": lease_table,
        "poll_interval_ms": args.poll_interval_ms,
        "lease_duration_ms": args.lease_duration_ms,
    }
    if not args.plain_config:
        stream["idle_poll_max_ms"] = args.idle_poll_max_ms
        stream["max_concurrent_requests"] = args.max_concurrent_requests
    write_settings_file(
        path,
        aws={"region": "us-east-1"},
        kafka={"partitions": 1, "replication_factor": 1},
        tables=[{"name": t} for t in tables],
        stream=stream,
    )


@contextmanager
def stream_process(
    config: Path, endpoint: str, bootstrap: str, port: int, log_path: Path, pythonpath: str | None
) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    env.update(
        {
            "DDB_BRIDGE__AWS__ENDPOINT_URL": endpoint,
            "DDB_BRIDGE__KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        }
    )
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "ddb_bridge.cli.main", "stream"),
                *("--config", str(config), "--metrics-port", str(port)),
            ],
            env=env,
            # `python -m` puts the working directory first on the path: the checkout's.
            cwd=pythonpath,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


class Writer(threading.Thread):
    """Steady puts to the busy tables, round robin, `rate` a second in all."""

    def __init__(self, endpoint: str, tables: list[str], rate: float) -> None:
        super().__init__(daemon=True)
        import boto3

        self.ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        self.tables = tables
        self.rate = rate
        self.stop = threading.Event()
        self.written: set[tuple[str, str]] = set()

    def run(self) -> None:
        n = 0
        started = time.monotonic()
        while not self.stop.is_set():
            table = self.tables[n % len(self.tables)]
            pk = f"w{n:08d}"
            self.ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "n": {"N": str(n)}})
            self.written.add((table, pk))
            n += 1
            self.stop.wait(max(0.0, started + n / self.rate - time.monotonic()))


def arrived(bootstrap: str, topics: list[str], expected: set[tuple[str, str]]) -> int:
    """How many of the expected (table, pk) writes are in Kafka (reads for up to 120 s)."""
    from confluent_kafka import Consumer, KafkaError

    from bridge.codec.avro import EventCodec

    codec = EventCodec()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and not expected <= seen:
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"consume error: {msg.error()}")
                event = codec.decode(msg.value())
                pk = event.keys.get("pk")
                seen.add((event.table, pk.get("S", "") if isinstance(pk, dict) else str(pk)))
    finally:
        consumer.close()
    return len(expected & seen)


def wait_until(what: str, cond: Any, proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"the stream process exited {proc.returncode} before {what}")
        try:
            if cond():
                return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(1.0)
    raise SystemExit(f"timed out after {timeout_s:.0f}s waiting for {what}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_stream_tables")
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--active", type=int, default=5, help="tables with steady writes")
    parser.add_argument("--minutes", type=float, default=2.0, help="measured run length")
    parser.add_argument("--rate", type=float, default=10.0, help="writes/s over the busy tables")
    parser.add_argument("--poll-interval-ms", type=int, default=250)
    parser.add_argument("--idle-poll-max-ms", type=int, default=5000)
    parser.add_argument("--max-concurrent-requests", type=int, default=8)
    # 30 s, not the 10 s default: 200 leases renewed every third of 10 s is 60 conditional
    # writes a second, more than moto (one Python process) serves on 2 shared cores beside
    # the reads, so leases lapsed; on DynamoDB that rate is nothing (it costs, see README).
    parser.add_argument("--lease-duration-ms", type=int, default=30_000)
    parser.add_argument("--start-timeout-s", type=float, default=600)
    parser.add_argument("--log", default=None, help="keep the stream process's log here")
    # A/B against another checkout (e.g. one of main from before the reader pool):
    # `--stream-pythonpath /path/to/checkout --plain-config`.
    parser.add_argument("--stream-pythonpath", default=None, help="PYTHONPATH of the stream")
    parser.add_argument(
        "--plain-config",
        action="store_true",
        help="write only [stream] settings older versions know (no idle backoff, no pool)",
    )
    parser.add_argument("--bootstrap", default=None, help="existing broker")
    parser.add_argument("--endpoint", default=None, help="existing moto server")
    args = parser.parse_args(argv)
    # moto takes any credentials; the bench's own clients need some to sign with.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

    from benchmarks.broker import bench_broker
    from benchmarks.report import Results
    from bridge.runtime.settings import KafkaSettings
    from ddb_bridge.services.moto_server import moto_server
    from ddb_bridge.services.processes import free_port

    results = Results("stream_tables")
    run = uuid.uuid4().hex[:6]
    tables = [f"bench{run}-{i:03d}" for i in range(args.tables)]
    busy, idle = tables[: args.active], tables[args.active :]
    with (
        nullcontext(args.bootstrap) if args.bootstrap else bench_broker(results) as bootstrap,
        nullcontext(args.endpoint) if args.endpoint else moto_server() as endpoint,
        tempfile.TemporaryDirectory() as tmp,
    ):
        created_s = create_tables(endpoint, tables)
        print(f"moto: created {len(tables)} tables with streams in {created_s:.1f}s", flush=True)
        config = Path(tmp) / "bridge.toml"
        write_config(config, tables, f"bench{run}-leases", args)
        port = free_port()
        log_path = Path(args.log) if args.log else Path(tmp) / "stream.log"
        with stream_process(
            config, endpoint, bootstrap, port, log_path, args.stream_pythonpath
        ) as proc:
            try:
                all_held_s = wait_until(
                    "every lease held",
                    lambda: all(scrape(port).get((LEASES_HELD, t)) == 1 for t in tables),
                    proc,
                    timeout_s=args.start_timeout_s,
                )
            except SystemExit:
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-6000:]
                print(f"stream log (tail):\n{tail}", flush=True)
                raise
            print(f"stream: every lease held {all_held_s:.1f}s after start", flush=True)
            writer = Writer(endpoint, busy, args.rate)
            writer.start()
            # Let the idle backoff climb to its cap before the window opens.
            settle_s = (
                sum(min(args.idle_poll_max_ms, args.poll_interval_ms * 2**i) for i in range(12))
                / 1000
            )
            time.sleep(min(settle_s, 60.0))
            before, t0 = scrape(port), time.monotonic()
            cpu0, written0 = cpu_seconds(proc.pid) or 0.0, len(writer.written)
            samples: list[dict[str, int]] = []
            end = t0 + args.minutes * 60
            while time.monotonic() < end:
                samples.append(proc_status(proc.pid))
                time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            after, t1 = scrape(port), time.monotonic()
            cpu1, written1 = cpu_seconds(proc.pid) or 0.0, len(writer.written)
            status = proc_status(proc.pid)
            writer.stop.set()
            writer.join()
            window_h = (t1 - t0) / 3600

            def per_hour(names: list[str]) -> list[float]:
                return [
                    (after.get((GET_RECORDS, t), 0) - before.get((GET_RECORDS, t), 0)) / window_h
                    for t in names
                ]

            idle_rates, busy_rates = per_hour(idle), per_hour(busy)
            kafka = KafkaSettings()
            got = arrived(bootstrap, [kafka.changes_topic(t) for t in busy], writer.written)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(120)
        if got != len(writer.written) or code != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
            print(f"stream log (tail):\n{tail}", flush=True)

        mean_idle = sum(idle_rates) / max(1, len(idle_rates))
        results.figure(
            "GetRecords calls per idle shard per hour",
            mean_idle,
            "calls/h",
            baseline=("fixed 250 ms polling", NAIVE_CALLS_PER_HOUR),
            note=f"goal ratio <= 0.10; max over idle shards {max(idle_rates, default=0):,.0f}/h; "
            f"window {t1 - t0:.0f}s",
        )
        results.figure(
            "GetRecords calls per busy shard per hour",
            sum(busy_rates) / max(1, len(busy_rates)),
            "calls/h",
            baseline=("fixed 250 ms polling", NAIVE_CALLS_PER_HOUR),
            note=f"{args.rate / max(1, args.active):.1f} writes/s per busy table",
        )
        peak_mb = max(s["VmHWM"] for s in [*samples, status]) / 1024
        results.figure(
            "stream process RSS",
            status["VmRSS"] / 1024,
            "MB",
            note=f"peak {peak_mb:.0f} MB; goal <= 300 MB; {len(tables)} tables",
        )
        results.figure(
            "stream process threads",
            max(s["Threads"] for s in [*samples, status]),
            "threads",
            note=f"max_concurrent_requests = {args.max_concurrent_requests}; "
            f"one thread per shard would be {len(tables)} and more",
        )
        results.figure(
            "busy-table writes that reached Kafka",
            got,
            "writes",
            baseline=("writes made", len(writer.written)),
            note="must be ratio 1.00; CPU: the stream process over the window per busy-table "
            f"write, the polling of {len(tables)} tables included",
            cpu_us_per_item=(cpu1 - cpu0) * 1e6 / max(1, written1 - written0),
        )
        results.extra.update(
            {
                "tables": len(tables),
                "active": len(busy),
                "moto_create_tables_s": round(created_s, 1),
                "all_leases_held_s": round(all_held_s, 1),
                "window_s": round(t1 - t0, 1),
                "stream_exit_code": code,
                "settings": {
                    "poll_interval_ms": args.poll_interval_ms,
                    "idle_poll_max_ms": args.idle_poll_max_ms,
                    "max_concurrent_requests": args.max_concurrent_requests,
                    "lease_duration_ms": args.lease_duration_ms,
                    "plain_config": args.plain_config,
                    "stream_pythonpath": args.stream_pythonpath,
                },
                "leases_lost_in_log": log_path.read_text(errors="replace").count("lease lost"),
            }
        )
        results.write()
        if got != len(writer.written) or code != 0:
            raise SystemExit(
                f"{len(writer.written) - got} of {len(writer.written)} writes never reached "
                f"Kafka; the stream process exited {code}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
