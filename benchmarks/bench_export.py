"""Export folder → Kafka throughput of `ddb-bridge backfill --from export --dir`.

Generates DynamoDB exports in AWS's layout (items of ~300 bytes of DynamoDB JSON), runs the
real command line in a child process against the benchmarks' broker (benchmarks/broker.py;
claims in a moto lease table), and reports items/s, MB/s of uncompressed JSON and the
child's peak RSS (from wait4) for two export sizes, so that memory independent of export
size shows. The same-run baseline is a plain confluent-kafka producer sending the same
records pre-encoded, with the same producer settings. Goals (issue 13): >= 0.5 x that
baseline per process; peak RSS <= 150 MB, flat from 100k to 1M items
(`--items 1000000 --small 100000`). `--small 0` runs one size only (quicker A/B runs).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from benchmarks.broker import bench_broker
from benchmarks.procfs import ProcessCpu
from bridge.codec import compiled
from bridge.codec.avro import EventCodec
from bridge.kafka.client_config import producer_config
from bridge.kafka.publisher import ensure_topics
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Origin
from bridge.runtime.config_file import write_config
from bridge.runtime.settings import KafkaSettings
from ddb_bridge.services.moto_server import moto_server
from ddb_bridge.services.names import unique
from tests.export_layout import build_export


def bench_item(i: int) -> dict[str, Any]:
    """About 300 bytes of DynamoDB JSON, several types."""
    return {
        "pk": {"S": f"customer#{i:09d}"},
        "sk": {"N": str(i % 1000)},
        "name": {"S": f"Name {i} " + "x" * 60},
        "email": {"S": f"user{i}@example.com"},
        "balance": {"N": f"{i * 7 % 100000}.25"},
        "active": {"BOOL": i % 3 == 0},
        "tags": {"SS": ["alpha", f"t{i % 11}"]},
        "address": {"M": {"city": {"S": "Lisboa"}, "zip": {"N": str(1000 + i % 8999)}}},
        "updated": {"N": str(1_700_000_000 + i)},
    }


def partitions(total: int, files: int) -> list[Iterator[dict[str, Any]]]:
    per = total // files

    def lines(start: int, n: int) -> Iterator[dict[str, Any]]:
        for i in range(start, start + n):
            yield {"Item": bench_item(i)}

    return [
        lines(f * per, per if f < files - 1 else total - per * (files - 1)) for f in range(files)
    ]


def run_cli_rss(
    config: Path, table: str, folder: Path, env: dict[str, str] | None = None
) -> dict[str, float]:
    """As run_cli, but reaping the child with wait4 to read its own peak RSS."""
    cmd = [
        sys.executable,
        "-m",
        "ddb_bridge.cli.main",
        "backfill",
        "--config",
        str(config),
        "--table",
        table,
        "--from",
        "export",
        "--dir",
        str(folder),
        "--no-stream",
        "--no-progress",
        "--log-level",
        "WARNING",
        "--processes",  # one process: its figure is per process (bench_backfill_processes: 2)
        "1",
    ]
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdout=out_file,
            stderr=err_file,
            env=None if env is None else {**os.environ, **env},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        out = out_file.read().decode()
        if proc.returncode != 0:
            raise SystemExit(
                f"backfill failed ({proc.returncode}): {err_file.read().decode()[-3000:]}"
            )

    def figure(label: str) -> float:
        match = re.search(label + r"\s+([\d,\.]+)", out)
        if match is None:
            raise SystemExit(f"no {label!r} in output:\n{out}")
        return float(match.group(1).replace(",", ""))

    return {
        "items": figure("items published"),
        "bytes": figure("bytes uncompressed"),
        "elapsed": figure("elapsed"),
        "wall": wall,
        "rss_mb": usage.ru_maxrss / 1024,  # kilobytes on Linux
        # The child's CPU over its whole life (start-up included), from wait4: exact for a
        # process that has exited, which /proc can no longer show.
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def baseline(kafka: KafkaSettings, topic: str, n: int) -> tuple[float, float, float | None]:
    """The same records, pre-encoded, through the same producer settings: (items/s, bytes,
    CPU µs per item of this process while producing).

    Values are real encoded change events of the benchmark's items (a pool of 10,000,
    cycled), so compression sees the same data as the back-fill's.
    """
    codec = EventCodec()
    pool = []
    for i in range(10_000):
        event = ChangeEvent.snapshot("bench", bench_item(i), ("pk", "sk"), 1, Origin.EXPORT)
        pool.append(codec.encode(event))
    keys = [
        attrs.canonical_key({"pk": {"S": f"customer#{i:09d}"}, "sk": {"N": str(i % 1000)}})
        for i in range(n)
    ]
    producer = Producer(producer_config(kafka))
    with ProcessCpu() as cpu:
        started = time.perf_counter()
        for i, key in enumerate(keys):
            while True:
                try:
                    producer.produce(topic, value=pool[i % 10_000], key=key)
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 1000 == 0:
                producer.poll(0)
        producer.flush(120)
        elapsed = time.perf_counter() - started
    return n / elapsed, sum(map(len, pool)) / len(pool), cpu.us_per(n)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_export")
    parser.add_argument("--items", type=int, default=500_000)
    parser.add_argument(
        "--small", type=int, default=100_000, help="second size, for RSS (0: only --items)"
    )
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument(
        "--no-pure-python",
        action="store_true",
        help="skip the run with the compiled core switched off (DDB_BRIDGE_PURE_PYTHON=1)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    from benchmarks.report import Results

    report = Results("export")
    with (
        bench_broker(report) as bootstrap,
        moto_server() as endpoint,
        tempfile.TemporaryDirectory(prefix="bench-export-") as tmp,
    ):
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=4, replication_factor=1)
        config = Path(tmp, "bridge.toml")
        results = {}
        pure: dict[str, float] | None = None
        for n in sorted({args.small, args.items} - {0}):
            table = unique("bench")
            write_config(
                config,
                aws={"endpoint_url": endpoint},
                kafka={"bootstrap_servers": bootstrap, "partitions": 4, "replication_factor": 1},
                stream={"lease_table": unique("leases")},
                tables=[
                    {"name": table, "hash_key": "pk", "range_key": "sk", "range_key_type": "N"}
                ],
            )
            t0 = time.perf_counter()
            folder = build_export(Path(tmp, table), partitions(n, args.files), compresslevel=1)
            gen = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in folder.root.joinpath("data").iterdir())
            print(
                f"generated {n:,} items in {args.files} files "
                f"({size / 1e6:.1f} MB gz) in {gen:.1f}s"
            )
            results[n] = run_cli_rss(config, table, folder.root)
            if n == args.items and not args.no_pure_python and compiled.CORE is not None:
                # The same export again (a new lease table, so a new run) into another
                # table's topic, with the core switched off.
                pure_table = unique("bench")
                write_config(
                    config,
                    aws={"endpoint_url": endpoint},
                    kafka={
                        "bootstrap_servers": bootstrap,
                        "partitions": 4,
                        "replication_factor": 1,
                    },
                    stream={"lease_table": unique("leases")},
                    tables=[
                        {
                            "name": pure_table,
                            "hash_key": "pk",
                            "range_key": "sk",
                            "range_key_type": "N",
                        }
                    ],
                )
                pure = run_cli_rss(config, pure_table, folder.root, {compiled.PURE_PYTHON_ENV: "1"})
        ensure_topics(kafka, ["bench-baseline"])
        base, value_size, base_cpu_us = baseline(
            kafka, kafka.changes_topic("bench-baseline"), args.items
        )

    big = results[args.items]
    rate = big["items"] / big["elapsed"]
    print(f"export -> Kafka, {int(big['items']):,} items:")
    print(
        f"  {rate:,.0f} items/s  ({big['bytes'] / big['elapsed'] / 1e6:.1f} MB/s uncompressed JSON)"
    )
    print(f"  command wall time {big['wall']:.1f}s (incl. start-up), run {big['elapsed']:.1f}s")
    for n, r in sorted(results.items()):
        print(f"  peak RSS of the process, {n:>9,} items: {r['rss_mb']:.0f} MB")
    report.extra["items"] = int(big["items"])
    report.extra["uncompressed_mb_per_s"] = round(big["bytes"] / big["elapsed"] / 1e6, 1)
    report.extra["value_bytes"] = round(value_size)
    report.figure(
        "export folder -> Kafka, one process",
        rate,
        "items/s",
        baseline=("produce the same records pre-encoded", base),
        goal_ratio=0.5,
        cpu_us_per_item=big["cpu_s"] * 1e6 / big["items"],
        baseline_cpu_us_per_item=base_cpu_us,
    )
    if pure is not None:
        report.figure(
            "export folder -> Kafka, one process, pure Python (compiled core off)",
            pure["items"] / pure["elapsed"],
            "items/s",
            baseline=("produce the same records pre-encoded", base),
        )
    report.extra["compiled_core"] = compiled.CORE is not None
    for n, r in sorted(results.items()):
        report.figure(f"export peak RSS at {n:,} items", r["rss_mb"], "MB", note="goal <= 150 MB")
    report.write()


if __name__ == "__main__":
    main(sys.argv[1:])
