"""What a second process buys the back-fill: `ddb-bridge backfill --processes 2` against 1.

Runs the real command line in a child process, alternately with `--processes 1` and
`--processes 2` (A/B in the same minutes, `--repeats` times, the median kept), for:
- an export folder in AWS's layout (`--files` data files of ~300-byte items) → Kafka;
- a parallel Scan of a moto table (`--segments` segments) → Kafka.
Rates are the command's own (items published / its elapsed time, helper start-up included);
wall times with interpreter start-up are printed beside them. Goal (issue 13): two
processes >= 1.7 x one. moto serves every Scan page from one Python process, so the scan
figure measures moto's serving as much as the back-fill: said in its note.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from benchmarks.bench_export import bench_item, partitions
from benchmarks.broker import bench_broker
from benchmarks.procfs import CpuWatch, cpu_line, median_shares
from benchmarks.report import Results
from bridge.model import attrs
from bridge.runtime.config_file import write_config
from ddb_bridge.services.moto_server import moto_server
from ddb_bridge.services.names import unique
from tests.backfill_helpers import create_table, write_items
from tests.export_layout import build_export


def run_cli(config: Path, table: str, processes: int, *options: str) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "ddb_bridge.cli.main",
        "backfill",
        "--config",
        str(config),
        "--table",
        table,
        "--no-stream",
        "--no-progress",
        "--log-level",
        "WARNING",
        "--processes",
        str(processes),
        *options,
    ]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # Who takes the cores meanwhile (the bridge, the broker, moto, this process, others).
    with CpuWatch() as watch:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    # The command's CPU time, its helpers' included (it waits for them, so they are counted).
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"backfill failed ({done.returncode}): {done.stderr[-3000:]}")

    def figure(label: str) -> float:
        match = re.search(label + r"\s+([\d,\.]+)", done.stdout)
        if match is None:
            raise SystemExit(f"no {label!r} in output:\n{done.stdout}")
        return float(match.group(1).replace(",", ""))

    items, elapsed = figure("items published"), figure("elapsed")
    return {
        "items": items,
        "elapsed": elapsed,
        "rate": items / elapsed,
        "wall": wall,
        "cpu_s": cpu,
        "items_per_cpu_s": items / cpu if cpu > 0 else 0.0,
        "cpu_by_role": watch.summary(),
    }


def ab(
    label: str, repeats: int, one_run: Any, results: Results
) -> tuple[float, float, list[dict[str, Any]]]:
    """Alternate 1 and 2 processes (order swapped every repeat); medians of the rates."""
    runs: list[dict[str, Any]] = []
    for repeat in range(repeats):
        for processes in (1, 2) if repeat % 2 == 0 else (2, 1):
            got = one_run(processes)
            got["processes"] = processes
            runs.append(got)
            print(
                f"  {label}, {processes} process{'es' if processes > 1 else ''}: "
                f"{got['rate']:,.0f} items/s ({int(got['items']):,} items in "
                f"{got['elapsed']:.1f}s; command wall time {got['wall']:.1f}s, "
                f"CPU {got['cpu_s']:.1f}s: {got['items_per_cpu_s']:,.0f} items per CPU-second)",
                flush=True,
            )
            print(f"    {cpu_line(got['cpu_by_role'])}", flush=True)
    one = statistics.median(r["rate"] for r in runs if r["processes"] == 1)
    two = statistics.median(r["rate"] for r in runs if r["processes"] == 2)
    results.extra[f"{label}_runs"] = runs
    # The CPU shares of the two-process runs: what a third core would be taken by.
    results.extra[f"{label}_cpu_share_2_processes"] = median_shares(
        [r["cpu_by_role"] for r in runs if r["processes"] == 2]
    )
    results.extra[f"{label}_cpu_share_1_process"] = median_shares(
        [r["cpu_by_role"] for r in runs if r["processes"] == 1]
    )
    # What a second process costs in CPU per item (start-up, a second producer, claims):
    # unlike the rates, this holds on a machine whose cores are busy with other work.
    per_cpu = {
        n: statistics.median(r["items_per_cpu_s"] for r in runs if r["processes"] == n)
        for n in (1, 2)
    }
    results.figure(
        f"{label}, 2 processes, items per CPU-second",
        per_cpu[2],
        "items/CPU-s",
        baseline=(f"{label}, 1 process, items per CPU-second", per_cpu[1]),
        note="1.0: the second process costs no extra CPU per item",
        cpu_us_per_item=1e6 / per_cpu[2],
        baseline_cpu_us_per_item=1e6 / per_cpu[1],
    )
    return one, two, runs


def cpu_us_per_item(runs: list[dict[str, Any]], processes: int) -> float:
    """Median CPU µs per item of the back-fill's processes over the runs with `processes`."""
    rates = [r["items_per_cpu_s"] for r in runs if r["processes"] == processes]
    return 1e6 / statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_backfill_processes")
    parser.add_argument("--items", type=int, default=200_000, help="export items")
    parser.add_argument("--files", type=int, default=8, help="export data files")
    parser.add_argument("--scan-items", type=int, default=20_000, help="0: no scan figure")
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    report = Results("backfill_processes")
    report.extra["cores_seen"] = os.cpu_count()
    with (
        bench_broker(report) as bootstrap,
        moto_server() as endpoint,
        tempfile.TemporaryDirectory(prefix="bench-procs-") as tmp,
    ):
        runs = args.repeats * 2
        tables = [unique("procs") for _ in range(runs)]
        lease_table = unique("leases")
        config = Path(tmp, "bridge.toml")
        write_config(
            config,
            aws={"endpoint_url": endpoint},
            kafka={"bootstrap_servers": bootstrap, "partitions": 4, "replication_factor": 1},
            stream={"lease_table": lease_table},
            tables=[
                {"name": t, "hash_key": "pk", "range_key": "sk", "range_key_type": "N"}
                for t in tables
            ],
        )
        started = time.perf_counter()
        folder = build_export(
            Path(tmp, "export"), partitions(args.items, args.files), compresslevel=1
        )
        print(
            f"generated {args.items:,} items in {args.files} files in "
            f"{time.perf_counter() - started:.1f}s",
            flush=True,
        )
        names = iter(tables)
        one, two, runs = ab(
            "export",
            args.repeats,
            lambda p: run_cli(
                config, next(names), p, "--from", "export", "--dir", str(folder.root)
            ),
            report,
        )
        report.figure(
            "export, 2 processes",
            two,
            "items/s",
            baseline=("export, 1 process", one),
            goal_ratio=1.7,
            note=f"{args.items:,} items in {args.files} files; median of {args.repeats}",
            cpu_us_per_item=cpu_us_per_item(runs, 2),
            baseline_cpu_us_per_item=cpu_us_per_item(runs, 1),
        )

        if args.scan_items:

            def client() -> Any:
                return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")

            table = unique("procscan")
            create_table(client(), table, stream=False)
            write_items(
                client, table, [attrs.to_boto(bench_item(i)) for i in range(args.scan_items)]
            )
            one, two, runs = ab(
                "scan",
                args.repeats,
                lambda p: run_cli(
                    config,
                    table,
                    p,
                    "--from",
                    "scan",
                    "--segments",
                    str(args.segments),
                    "--new-run",
                ),
                report,
            )
            report.figure(
                "scan, 2 processes",
                two,
                "items/s",
                baseline=("scan, 1 process", one),
                goal_ratio=1.7,
                note=(
                    f"{args.scan_items:,} items, {args.segments} segments, moto server: one "
                    "Python process serves every Scan page, on the same cores (limits the figure)"
                ),
                cpu_us_per_item=cpu_us_per_item(runs, 2),
                baseline_cpu_us_per_item=cpu_us_per_item(runs, 1),
            )
    report.write()


if __name__ == "__main__":
    main(sys.argv[1:])
