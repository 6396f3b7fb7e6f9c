"""Resident memory of back-fill (export files, scan), stream and apply against items done, up
to 1,000,000 items: flat, or growing with the items.

Each path runs the real command line (`python -m ddb_bridge.cli.main ...`) in a process of
its own; the benchmark samples that process's VmRSS (/proc/PID/status, its helpers
included) every 0.5 s against the items it has done, counted from what the bridge itself
made durable: records in the change topic (high watermarks) for back-fill and stream, the
apply group's committed offsets for apply. It reports RSS at `--small` (200,000) and
`--items` (1,000,000) items, the peak, and the ratio RSS(items)/RSS(small) — flat is ~1.0.
Goal (issue 14): <= 300 MB at 1,000,000 items, flat from 200,000.

Where the items come from:
- export: an export folder in AWS's layout (benchmarks/bench_export.py's generator);
- scan and stream: `benchmarks/fake_dynamodb.py`, a local endpoint serving generated Scan
  pages and DynamoDB Streams records (wire format, 1,000 records a page over `--shards`
  open shards) in front of moto, which keeps the lease table, DescribeTable and the capture
  record. moto itself cannot hold or serve a million items in useful time;
- apply: `--items` change events produced into a topic beforehand (bench_apply's
  producer), applied into the null sink and SQLite (`--apply-targets`).
RSS figures hold under load (other work on the machine slows the run, not its memory);
rates printed beside them do not. Run: `python -m benchmarks memory [--items N]`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from confluent_kafka import KafkaException, TopicPartition

from benchmarks.bench_apply import produce
from benchmarks.bench_export import partitions
from benchmarks.broker import bench_broker
from benchmarks.fake_dynamodb import FakeDynamoDB, ScanData, StreamData, fake_dynamodb
from benchmarks.memory_curve import RssSampler, Sample, flatness, growth_mb_per_100k, peak, rss_at
from benchmarks.report import Results
from bridge.apply.app import group_id
from bridge.kafka.reads import reader_consumer, watermarks
from bridge.runtime.config_file import write_config as write_settings_file
from bridge.runtime.settings import KafkaSettings
from ddb_bridge.services.moto_server import moto_server
from ddb_bridge.services.names import unique
from tests.export_layout import build_export
from tests.stream_helpers import create_stream_table

GOAL_MB = 300.0


def write_config(
    path: Path,
    endpoint: str,
    bootstrap: str,
    lease_table: str,
    tables: list[str],
    **sections: Any,
) -> Path:
    """The run's bridge.toml; `sections` add keys to the base's sections, or new sections."""
    stream = {"lease_table": lease_table, "initial_position": "TRIM_HORIZON"}
    return write_settings_file(
        path,
        aws={"endpoint_url": endpoint},
        kafka={"bootstrap_servers": bootstrap, "partitions": 4, "replication_factor": 1},
        stream=stream | sections.pop("stream", {}),
        tables=[
            {"name": t, "hash_key": "pk", "range_key": "sk", "range_key_type": "N"} for t in tables
        ],
        **sections,
    )


class TopicCount:
    """Records in a topic: the sum of its partitions' high watermarks (0 until it exists)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.consumer = reader_consumer(kafka, "bench-memory")
        self.topic = topic
        self.partitions: list[int] = []

    def __call__(self) -> int:
        if not self.partitions:
            meta = self.consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return 0
            self.partitions = sorted(meta.partitions)
        # `watermarks` waits out a partition whose leader is still being elected.
        return sum(
            watermarks(self.consumer, self.topic, p, timeout_s=5)[1] for p in self.partitions
        )

    def close(self) -> None:
        self.consumer.close()


class CommittedCount:
    """Offsets `group` committed on a topic's partitions, summed (records applied).

    Read with `Consumer.committed` (an OffsetFetch; this consumer never subscribes, so it
    never joins the group): the admin client's list_consumer_group_offsets crashed this
    process (SIGSEGV in librdkafka) against a freshly started broker.
    """

    def __init__(self, kafka: KafkaSettings, group: str, topic: str, partitions: int) -> None:
        self.consumer = reader_consumer(kafka, "bench-memory", {"group.id": group})
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]

    def __call__(self) -> int:
        try:
            found = self.consumer.committed(self.tps, timeout=5)
        except KafkaException:
            return 0  # the coordinator is still loading: nothing counted this round
        return sum(tp.offset for tp in found if tp.offset >= 0)

    def close(self) -> None:
        self.consumer.close()


TRACE_PREFIX: Path | None = None  # set by --tracemalloc: children run under tracemalloc


def cli(config: Path, *args: str) -> list[str]:
    runner = ["-m", "ddb_bridge.cli.main"]
    if TRACE_PREFIX is not None:
        runner = ["-m", "benchmarks.traced_child", str(TRACE_PREFIX), "ddb_bridge.cli.main"]
    return [
        sys.executable,
        *runner,
        *args[:1],
        "--config",
        str(config),
        "--log-level",
        "WARNING",
        *args[1:],
    ]


def run_sampled(
    label: str,
    cmd: list[str],
    progress: Callable[[], int],
    target: int,
    *,
    stop_at_target: bool,
    timeout_s: float,
    logs: Path,
) -> tuple[list[Sample], float]:
    """Run `cmd`, sampling it until it exits (back-fill) or, with `stop_at_target`, until
    `target` items are done, then SIGTERM (the daemons). (samples, seconds to the target)."""
    out = open(logs / f"{label}.out", "wb")  # noqa: SIM115 - closed below
    err = open(logs / f"{label}.err", "wb")  # noqa: SIM115
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=out, stderr=err)
    sampler = RssSampler(proc.pid, progress, say=print)
    deadline = started + timeout_s
    reached: list[float] = []
    asked: set[str] = set()

    def ask(when: str) -> Path | None:
        # --tracemalloc: the child writes its top allocations to <prefix>.<label>.txt.
        if TRACE_PREFIX is None or when in asked:
            return None
        asked.add(when)
        Path(f"{TRACE_PREFIX}.{label}-{when}.ask").touch()
        return Path(f"{TRACE_PREFIX}.{label}-{when}.txt")

    def done(sample: Sample) -> bool:
        if sample.items >= target and not reached:
            reached.append(time.monotonic() - started)
        if sample.items >= target // 5:
            ask("early")
        if sample.items >= target * 9 // 10:
            late = ask("late")
            if late is not None and stop_at_target:
                for _ in range(300):  # a daemon is stopped only once it has answered
                    if late.exists():
                        break
                    time.sleep(0.2)
        if time.monotonic() > deadline:
            return True
        return stop_at_target and sample.items >= target

    try:
        sampler.run(done, alive=lambda: proc.poll() is None)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        out.close()
        err.close()
    samples = sampler.samples
    final = samples[-1].items if samples else 0
    if final < target:
        tail = (logs / f"{label}.err").read_text()[-3000:]
        print(tail, file=sys.stderr, flush=True)
        raise SystemExit(f"{label}: {final:,} of {target:,} items after exit code {code}:\n{tail}")
    if not stop_at_target and code != 0:
        tail = (logs / f"{label}.err").read_text()[-3000:]
        raise SystemExit(f"{label} failed with exit code {code}:\n{tail}")
    return samples, reached[0] if reached else time.monotonic() - started


def report_path(
    results: Results,
    path: str,
    samples: list[Sample],
    small: int,
    big: int,
    seconds: float,
    how: str,
) -> None:
    at_small, at_big = rss_at(samples, small), rss_at(samples, big)
    ratio = flatness(samples, small, big)
    growth = growth_mb_per_100k(samples, small, big)
    top = peak(samples)
    results.extra[path] = {
        "how": how,
        "items": big,
        "seconds_to_items": round(seconds, 1),
        "rss_mb_at_small": at_small,
        "rss_mb_at_items": at_big,
        "rss_mb_peak": top,
        "flatness": None if ratio is None else round(ratio, 3),
        "growth_mb_per_100k_items": None if growth is None else round(growth, 2),
        "samples_seconds_items_rss_mb": [[s.seconds, s.items, s.rss_mb] for s in samples],
    }
    if at_small is None or at_big is None:
        print(f"{path}: too few samples for RSS at {small:,} and {big:,} items")
        return
    results.figure(
        f"{path}: RSS at {big:,} items",
        at_big,
        "MB",
        baseline=(f"RSS at {small:,} items", at_small),
        note=(
            f"peak {top:.0f} MB; {growth:+.1f} MB per 100k items; goal <= {GOAL_MB:.0f} MB, "
            f"ratio ~1.0 (flat); {how}"
        ),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_memory")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=200_000, help="the first RSS point")
    parser.add_argument("--paths", default="export,scan,stream,apply")
    parser.add_argument("--files", type=int, default=8, help="export data files")
    parser.add_argument("--segments", type=int, default=8, help="scan segments")
    parser.add_argument(
        "--scan-options",
        default="",
        help="more `backfill --from scan` options, e.g. '--threads 2' or '--page-size 1000'",
    )
    parser.add_argument("--shards", type=int, default=4, help="stream shards")
    parser.add_argument(
        "--stream-in-flight-mb",
        type=int,
        default=None,
        help="[stream] max_in_flight_mb of the stream run [default: the setting's default]",
    )
    parser.add_argument("--apply-targets", default="null,sqlite")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per path")
    parser.add_argument(
        "--tracemalloc",
        metavar="DIR",
        default=None,
        help="run each command under tracemalloc and write its top allocations at 1/5 and "
        "9/10 of the items to DIR (slows the commands: for finding growth, not for figures)",
    )
    args = parser.parse_args(argv)
    global TRACE_PREFIX
    if args.tracemalloc:
        Path(args.tracemalloc).mkdir(parents=True, exist_ok=True)
        TRACE_PREFIX = Path(args.tracemalloc, "top")
    if args.small >= args.items:
        parser.error("--small must be below --items")
    for var, value in (
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(var, value)
    paths = args.paths.split(",")
    n, small = args.items, args.small

    results = Results("memory")
    results.extra.update(items=n, small=small, goal_mb=GOAL_MB, sample_interval_s=0.5)
    with (
        bench_broker(results) as bootstrap,
        moto_server() as moto,
        tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp_dir,
    ):
        tmp = Path(tmp_dir)
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=4, replication_factor=1)
        lease_table = unique("leases")

        def ddb() -> Any:
            return boto3.client("dynamodb", endpoint_url=moto, region_name="us-east-1")

        if "export" in paths:
            table = unique("memexport")
            config = write_config(tmp / "export.toml", moto, bootstrap, lease_table, [table])
            started = time.perf_counter()
            folder = build_export(tmp / table, partitions(n, args.files), compresslevel=1)
            print(f"export: generated {n:,} items in {time.perf_counter() - started:.1f}s")
            count = TopicCount(kafka, kafka.changes_topic(table))
            cmd = cli(
                config,
                "backfill",
                "--table",
                table,
                "--from",
                "export",
                "--dir",
                str(folder.root),
                "--no-stream",
                "--no-progress",
                "--processes",
                "1",
            )
            samples, seconds = run_sampled(
                "export", cmd, count, n, stop_at_target=False, timeout_s=args.timeout, logs=tmp
            )
            count.close()
            report_path(
                results,
                "back-fill, export files",
                samples,
                small,
                n,
                seconds,
                f"{args.files} files in AWS's layout, 1 process",
            )

        if "scan" in paths:
            table = unique("memscan")
            create_stream_table(ddb(), table, None)
            fake = FakeDynamoDB(moto, scan=ScanData(table, n))
            with fake_dynamodb(fake) as endpoint:
                config = write_config(tmp / "scan.toml", endpoint, bootstrap, lease_table, [table])
                count = TopicCount(kafka, kafka.changes_topic(table))
                cmd = cli(
                    config,
                    "backfill",
                    "--table",
                    table,
                    "--from",
                    "scan",
                    "--segments",
                    str(args.segments),
                    "--new-run",
                    "--no-stream",
                    "--no-progress",
                    "--processes",
                    "1",
                    *shlex.split(args.scan_options),
                )
                samples, seconds = run_sampled(
                    "scan", cmd, count, n, stop_at_target=False, timeout_s=args.timeout, logs=tmp
                )
                count.close()
            report_path(
                results,
                "back-fill, scan",
                samples,
                small,
                n,
                seconds,
                f"{args.segments} segments, Scan served by benchmarks/fake_dynamodb.py, "
                f"1 process {args.scan_options}".strip(),
            )

        if "stream" in paths:
            table = unique("memstream")
            create_stream_table(ddb(), table, "NEW_AND_OLD_IMAGES")
            fake = FakeDynamoDB(moto, stream=StreamData(n, args.shards))
            with fake_dynamodb(fake) as endpoint:
                in_flight = args.stream_in_flight_mb
                config = write_config(
                    tmp / "stream.toml",
                    endpoint,
                    bootstrap,
                    lease_table,
                    [table],
                    stream={} if in_flight is None else {"max_in_flight_mb": in_flight},
                )
                count = TopicCount(kafka, kafka.changes_topic(table))
                cmd = cli(config, "stream", "--table", table, "--metrics-port", "0")
                samples, seconds = run_sampled(
                    "stream", cmd, count, n, stop_at_target=True, timeout_s=args.timeout, logs=tmp
                )
                count.close()
                served = fake.records_served
            report_path(
                results,
                "stream",
                samples,
                small,
                n,
                seconds,
                f"{args.shards} shards served by benchmarks/fake_dynamodb.py "
                f"({served:,} records served)",
            )

        if "apply" in paths:
            table = unique("memapply").replace("-", "_")
            started = time.perf_counter()
            produce(kafka, table, n)
            print(f"apply: produced {n:,} events in {time.perf_counter() - started:.1f}s")
            for target in args.apply_targets.split(","):
                config = write_config(
                    tmp / f"apply-{target}.toml",
                    moto,
                    bootstrap,
                    lease_table,
                    [table],
                    apply={
                        "session_timeout_ms": 6000,
                        "heartbeat_interval_ms": 1000,
                        "batch_size": 2000,
                    },
                    targets={
                        target: {"type": "null"}
                        if target == "null"
                        else {"type": "sqlite", "path": tmp / "apply.db"}
                    },
                )
                committed = CommittedCount(kafka, group_id(target), kafka.changes_topic(table), 4)
                cmd = cli(
                    config,
                    "apply",
                    "--target",
                    target,
                    "--table",
                    table,
                    "--create-schema",
                    # No /metrics: another apply on this host may hold the default port.
                    "--metrics-port",
                    "0",
                )
                samples, seconds = run_sampled(
                    f"apply-{target}",
                    cmd,
                    committed,
                    n,
                    stop_at_target=True,
                    timeout_s=args.timeout,
                    logs=tmp,
                )
                committed.close()
                report_path(
                    results,
                    f"apply, {target} sink",
                    samples,
                    small,
                    n,
                    seconds,
                    "RSS against committed offsets; events produced beforehand",
                )
    results.write()


if __name__ == "__main__":
    main(sys.argv[1:])
