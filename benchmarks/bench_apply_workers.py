"""What a second apply worker buys: one worker process against two in the same group.

What it measures: a topic of N change events on 4 partitions (the events of bench_apply),
applied by a consumer group of one worker process, then (a new group, the same topic) by
two worker processes started together. Each worker is `ApplyWorker` in a process of its
own (the real deployment: `ddb-bridge apply` twice); the group shares the partitions,
2 + 2. Throughput counts the events applied from the moment every worker of the group had
written its first batch (so group joins and the rebalance when the second joins are not
counted) to the last batch. The figure is the two-worker rate with the one-worker rate
as its same-run baseline; goal ratio 1.7. Figures are printed, never asserted.
Run: `python -m benchmarks apply_workers [--events N] [--targets null,sqlite,postgres]`.
During each run the CPU seconds of every process (workers, broker, PostgreSQL, this one)
are read from /proc (benchmarks/procfs.py) and stored with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.bench_apply import produce
from benchmarks.procfs import CpuWatch, cpu_line, postmaster_pid
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import (
    ApplySettings,
    KafkaSettings,
    NullTarget,
    PostgresTarget,
    Settings,
    SqliteTarget,
)

PARTITIONS = 4


def child(argv: list[str]) -> None:
    """One worker process: waits for the go file, applies until SIGTERM, writing one line
    `[monotonic time, rows written]` per batch to its marks file."""
    bootstrap, table, group, target_json, marks_path, go_path, batch = argv
    from bridge.apply.app import ApplyWorker
    from bridge.apply.processor import BatchResult
    from ddb_bridge.registry import sink_class

    target_conf = json.loads(target_json)
    target: Any = {"null": NullTarget, "sqlite": SqliteTarget, "postgres": PostgresTarget}[
        target_conf["type"]
    ](**target_conf)
    settings = Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, partitions=PARTITIONS, replication_factor=1
        ),
        apply=ApplySettings(
            target=group,
            batch_size=int(batch),
            batch_window_ms=100,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        ),
        targets={group: target},
    )
    spec = TableSpec(table, table, "pk", "S", "sk", "N")
    marks = open(marks_path, "a", buffering=1)  # noqa: SIM115 - open for the process' life

    def on_batch(result: BatchResult) -> None:
        marks.write(json.dumps([time.monotonic(), result.written]) + "\n")

    worker = ApplyWorker(
        settings,
        group,
        [spec],
        sink_class(target.type)(target),
        create_schema=True,
        install_signal_handlers=True,
        on_batch=on_batch,
    )
    while not os.path.exists(go_path):
        time.sleep(0.01)
    sys.exit(worker.run())


def _target_json(target: Any) -> str:
    conf = target.model_dump()
    if "dsn" in conf:
        conf["dsn"] = target.dsn.get_secret_value()
    return json.dumps(conf)


def _marks(path: Path) -> list[tuple[float, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        when, written = json.loads(line)
        out.append((float(when), int(written)))
    return out


def group_rate(
    bootstrap: str,
    table: str,
    n: int,
    workers: int,
    target: Any,
    batch: int,
    tmp: Path,
    daemons: list[int] | None = None,
) -> tuple[float, list[int], dict[str, Any]]:
    """(events/s of the whole group once every worker wrote, rows per worker, the CPU per
    role — workers, broker, this process — from the start to the last event applied)."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    go = tmp / f"{group}.go"
    paths = [tmp / f"{group}.{i}.marks" for i in range(workers)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_apply_workers",
                "--child",
                bootstrap,
                table,
                group,
                _target_json(target),
                str(path),
                str(go),
                str(batch),
            ]
        )
        for path in paths
    ]
    try:
        time.sleep(3.0)  # let every process import and build its worker before the start
        with CpuWatch(extra_roots=daemons or []) as watch:
            go.touch()
            deadline = time.monotonic() + 600
            while sum(w for p in paths for _, w in _marks(p)) < n:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"{workers} workers did not apply {n} events")
                time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
    marks = [_marks(p) for p in paths]
    if any(not m for m in marks):
        raise RuntimeError("a worker wrote no batch: it got no partition")
    start = max(m[0][0] for m in marks)  # every worker has written
    end = max(m[-1][0] for m in marks)
    rows = sum(w for m in marks for when, w in m if when > start)
    cpu = watch.summary()
    print(f"    {workers} worker(s): {cpu_line(cpu)}", flush=True)
    return rows / (end - start), [sum(w for _, w in m) for m in marks], cpu


def bridge_cpu_us(cpu: dict[str, Any], events: int) -> float | None:
    """CPU µs per event of the worker processes (role `bridge` of a CpuWatch summary)."""
    seconds = cpu["cpu_s_by_role"].get("bridge")
    return None if seconds is None else seconds * 1e6 / events


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="bench_apply_workers")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument(
        "--targets",
        default="null,postgres",
        help="comma-separated, each of null, sqlite, postgres (postgres skipped when its "
        "binaries are missing)",
    )
    args = parser.parse_args(argv)
    wanted = args.targets.split(",")
    unknown = set(wanted) - {"null", "sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown --targets {', '.join(sorted(unknown))}")

    from benchmarks.broker import bench_broker
    from benchmarks.report import Results
    from ddb_bridge.services.postgres import PostgresCluster, postgres_bindir

    results = Results("apply_workers")
    results.extra.update(events=args.events, batch_size=args.batch_size, targets=wanted)
    with bench_broker(results) as bootstrap, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        kafka = KafkaSettings(
            bootstrap_servers=bootstrap, partitions=PARTITIONS, replication_factor=1
        )
        table = f"bench_{uuid.uuid4().hex[:8]}"
        produce(kafka, table, args.events)
        print(f"produced {args.events:,} events on {PARTITIONS} partitions", flush=True)
        for name in wanted:
            cluster = None
            targets: list[Any] = []
            if name == "postgres":
                bindir = postgres_bindir()
                if bindir is None:
                    print("postgres: skipped (PostgreSQL binaries not found: initdb, pg_ctl)")
                    continue
                cluster = PostgresCluster(bindir)
                cluster.init()
                cluster.start()
                targets = [
                    PostgresTarget(type="postgres", dsn=cluster.dsn, schema_name=f"s{i}")
                    for i in (1, 2)
                ]
            elif name == "sqlite":
                targets = [SqliteTarget(type="sqlite", path=str(tmp / f"{i}.db")) for i in (1, 2)]
            else:
                targets = [NullTarget(type="null")] * 2
            try:
                pid = None if cluster is None else postmaster_pid(cluster.datadir)
                daemons = [] if pid is None else [pid]
                one, _, cpu_one = group_rate(
                    bootstrap, table, args.events, 1, targets[0], args.batch_size, tmp, daemons
                )
                print(f"{name}: one worker: {one:,.0f} events/s", flush=True)
                two, split, cpu_two = group_rate(
                    bootstrap, table, args.events, 2, targets[1], args.batch_size, tmp, daemons
                )
            finally:
                if cluster is not None:
                    cluster.destroy()
            # Who took the cores (workers, broker, PostgreSQL, this process, other work):
            # with two workers, what a third core would be spent on.
            results.extra[f"{name}_cpu_1_worker"] = cpu_one
            results.extra[f"{name}_cpu_2_workers"] = cpu_two
            results.figure(
                f"apply, 2 worker processes, {name} sink",
                two,
                "events/s",
                baseline=("1 worker process", one),
                goal_ratio=1.7,
                note=f"rows per worker {split[0]:,} + {split[1]:,}; CPU from the start "
                "signal to the last row, group join included",
                cpu_us_per_item=bridge_cpu_us(cpu_two, args.events),
                baseline_cpu_us_per_item=bridge_cpu_us(cpu_one, args.events),
            )
    results.write()


if __name__ == "__main__":
    main()
