"""End-to-end latency: a DynamoDB write until its row is in the target, and its two stages.

Through the real processes: `ddb-bridge stream` and `ddb-bridge apply` (one config, as the
demo runs them) against moto (DynamoDB + Streams), the bench broker (Apache Kafka when Java
17+ runs it) and PostgreSQL (a throwaway cluster, as the tests start; SQLite when no
PostgreSQL is installed, or with --target sqlite). A writer makes puts and updates at a
steady rate; every write carries a sequence number in its `seq` attribute (a counter, not a
clock), by which it is found again (benchmarks/latency_ledger.py):
- t_write: when the put/update call returned (the time it was sent is kept too);
- t_kafka: when a tail consumer in this process first read the write's event in the change
  topic (the record's own timestamp is DynamoDB's change time, not the produce time);
- t_target: when the target row first held the write (or a later one of its key), polled
  every --target-poll-ms: the resolution of t_target.
Reported: p50/p95/p99/max of end-to-end (t_target - t_write) and of DynamoDB -> Kafka
(t_kafka - t_write) and Kafka -> target (t_target - t_kafka), in ms, beside the settings
that shape them. The same-run baseline is the floor of any stream reader polling at the same
interval on this moto: a plain GetRecords loop in this process reading the same stream beside
the bridge (no Kafka, no target), put -> record read, for the same writes. A write never seen
in Kafka or in the target fails the bench.
Goals (issue 14, printed, never asserted): p50 <= 500 ms, p99 <= 1.5 s at 250 ms poll.

Run: `python -m benchmarks latency [--rate 50 --seconds 60 --poll-ms 250]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from benchmarks.latency_ledger import Ledger
from benchmarks.latency_probes import (
    KafkaTail,
    Probe,
    RowQuery,
    StreamFloor,
    TargetPoller,
    Writer,
    postgres_query,
    sqlite_query,
)
from benchmarks.latency_stats import summary

GOAL_P50_MS = 500.0
GOAL_P99_MS = 1500.0


def create_table(ddb: Any, table: str) -> str:
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"])


@contextlib.contextmanager
def target(
    kind: str, pg_dsn: str | None, workdir: Path
) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(kind, its [targets.bench] TOML, the PostgreSQL DSN or the SQLite path)."""
    if kind in ("auto", "postgres") and pg_dsn is None:
        from ddb_bridge.services.postgres import PostgresCluster, postgres_bindir

        bindir = postgres_bindir()
        if bindir is None and kind == "postgres":
            raise SystemExit("PostgreSQL binaries (initdb, pg_ctl) not found: pass --pg-dsn")
        if bindir is not None:
            cluster = PostgresCluster(bindir)
            cluster.init()
            cluster.start()
            try:
                yield "postgres", {"type": "postgres", "dsn": cluster.dsn}, cluster.dsn
            finally:
                cluster.destroy()
            return
    if pg_dsn is not None and kind != "sqlite":
        yield "postgres", {"type": "postgres", "dsn": pg_dsn}, pg_dsn
        return
    path = workdir / "target.db"
    yield "sqlite", {"type": "sqlite", "path": path}, str(path)


class Bridge:
    """`ddb-bridge stream` and `ddb-bridge apply` as child processes, logging to files."""

    def __init__(self, workdir: Path, config: Path) -> None:
        self.workdir, self.config = workdir, config
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE__")}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        with open(self.workdir / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ddb_bridge.cli.main",
                    name,
                    "--config",
                    str(self.config),
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system, all threads) each process has used so far."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, proc in self.procs.items():
            try:
                stat = Path(f"/proc/{proc.pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return out

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SystemExit(
                    f"`ddb-bridge {name}` exited early with {proc.returncode}:\n{self.tail(name)}"
                )

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> dict[str, int]:
        codes = {}
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            codes[name] = proc.returncode
        return codes


def check_probes(*probes: Probe) -> None:
    for probe in probes:
        if probe.error is not None:
            raise SystemExit(f"{probe.name} failed: {probe.error!r}")


def wait_until(what: str, cond: Any, timeout_s: float, tick: Any) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        tick()
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.1)


def ms(stats: dict[str, float]) -> dict[str, float]:
    return {k: (v if k == "count" else round(v * 1000, 1)) for k, v in stats.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured run length")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="writes before measuring")
    parser.add_argument(
        "--poll-ms", type=int, default=250, help="[stream] poll_interval_ms (and the floor's)"
    )
    parser.add_argument("--idle-poll-max-ms", type=int, default=5000)
    parser.add_argument("--target-poll-ms", type=float, default=10.0, help="t_target resolution")
    parser.add_argument(
        "--keys", type=int, default=500, help="distinct items written (each every keys/rate s)"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--linger-ms", type=int, default=None, help="[kafka] linger_ms")
    parser.add_argument("--batch-window-ms", type=int, default=None, help="[apply]")
    parser.add_argument("--batch-size", type=int, default=None, help="[apply]")
    parser.add_argument("--target", choices=("auto", "postgres", "sqlite"), default="auto")
    parser.add_argument("--pg-dsn", default=None, help="an existing PostgreSQL")
    parser.add_argument("--writer-threads", type=int, default=8, help="writes in flight")
    parser.add_argument("--drain-timeout-s", type=float, default=120.0)
    parser.add_argument("--bootstrap", default=None, help="existing broker")
    parser.add_argument("--endpoint", default=None, help="existing moto server")
    parser.add_argument("--keep-logs", default=None, help="copy the processes' logs here")
    parser.add_argument("--name", default="latency", help="results file name (A/B runs)")
    args = parser.parse_args(argv)
    # moto takes any credentials; boto3 and the child processes need some to sign with.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    import boto3

    from benchmarks.broker import bench_broker
    from benchmarks.report import Results
    from bridge.consumer import consumer_config
    from bridge.kafka.publisher import ensure_topics
    from bridge.kafka.schema_registry import make_codec
    from bridge.runtime.config_file import write_config
    from bridge.runtime.settings import load_settings
    from ddb_bridge.services.moto_server import moto_server

    results = Results(args.name)
    run = uuid.uuid4().hex[:8]
    table = f"lat_{run}"
    with (
        nullcontext(args.bootstrap) if args.bootstrap else bench_broker(results) as bootstrap,
        nullcontext(args.endpoint) if args.endpoint else moto_server() as endpoint,
        tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp,
    ):
        workdir = Path(tmp)
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")

        with target(args.target, args.pg_dsn, workdir) as (kind, target_section, where):
            kafka_extra = {} if args.linger_ms is None else {"linger_ms": args.linger_ms}
            apply_extra = {
                k: v
                for k, v in (
                    ("batch_size", args.batch_size),
                    ("batch_window_ms", args.batch_window_ms),
                )
                if v is not None
            }
            config = write_config(
                workdir / "bridge.toml",
                aws={"region": "us-east-1", "endpoint_url": endpoint},
                kafka={
                    "bootstrap_servers": bootstrap,
                    "partitions": args.partitions,
                    "replication_factor": 1,
                    **kafka_extra,
                },
                tables=[{"name": table}],
                stream={
                    "lease_table": f"{table}-leases",
                    "poll_interval_ms": args.poll_ms,
                    "idle_poll_max_ms": max(args.idle_poll_max_ms, args.poll_ms),
                },
                apply={"target": "bench", **apply_extra},
                targets={"bench": target_section},
                # Off: the bench may run next to a bridge holding the default ports.
                metrics={"port": 0},
            )
            settings = load_settings(config)
            stream_arn = create_table(ddb, table)
            ensure_topics(settings.kafka, [table])
            query: RowQuery = (
                postgres_query(where, "public", table)
                if kind == "postgres"
                else sqlite_query(where, table)
            )
            ledger = Ledger()
            tail = KafkaTail(
                consumer_config(settings.kafka, None, from_beginning=True, commit=False),
                settings.kafka.changes_topic(table),
                args.partitions,
                ledger,
                make_codec(settings.kafka),
            )
            poller = TargetPoller(query, ledger, args.target_poll_ms / 1000)
            floor = StreamFloor(streams, stream_arn, ledger, args.poll_ms / 1000)
            writer = Writer(ddb, table, ledger, args.rate, args.keys, args.writer_threads)
            bridge = Bridge(workdir, config)
            try:
                tail.start()
                poller.start()
                floor.start()
                bridge.start("stream")
                bridge.start("apply", "--create-schema")

                def tick() -> None:
                    bridge.check()
                    check_probes(tail, poller, writer, floor)

                # The floor reader starts at LATEST: before the first write.
                wait_until("the floor reader", floor.ready.is_set, 60, tick)
                # Warm-up: writes (not counted) until every process is up and the writes
                # of the last few seconds all arrive; then the measured window opens.
                writer.start()
                started = time.monotonic()

                def warm() -> bool:
                    if time.monotonic() - started < args.warmup_s:
                        return False
                    old = time.time() - 3.0
                    return not any(w.sent < old for w in ledger.missing())

                wait_until("the warm-up writes to arrive", warm, 300, tick)
                writer.measured.set()
                cpu_before = bridge.cpu_s()
                print(
                    f"warm-up done after {time.monotonic() - started:.0f}s; measuring", flush=True
                )
                end = time.monotonic() + args.seconds
                while time.monotonic() < end:
                    tick()
                    time.sleep(0.2)
                writer.stop_event.set()
                writer.join()
                cpu_after = bridge.cpu_s()
                check_probes(writer)
                with contextlib.suppress(SystemExit):
                    wait_until(
                        "every write in Kafka and in the target",
                        lambda: not ledger.missing(),
                        args.drain_timeout_s,
                        tick,
                    )
            finally:
                for probe in (writer, tail, poller, floor):
                    probe.stop_event.set()
                codes = bridge.stop()
                if args.keep_logs:
                    Path(args.keep_logs).mkdir(parents=True, exist_ok=True)
                    for name in bridge.procs:
                        shutil.copy(workdir / f"{name}.log", Path(args.keep_logs) / f"{name}.log")
            tail.join(10)
            poller.join(10)
            floor.join(10)

        cpu = {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 2) for k in cpu_after}
        report(results, args, ledger, floor, writer, poller, tail, kind, codes, settings, cpu)


def report(
    results: Any,
    args: argparse.Namespace,
    ledger: Ledger,
    floor: StreamFloor,
    writer: Writer,
    poller: TargetPoller,
    tail: KafkaTail,
    kind: str,
    codes: dict[str, int],
    settings: Any,
    cpu: dict[str, float],
) -> None:
    stages = ledger.stages()
    e2e = ms(summary(stages.end_to_end))
    to_kafka = ms(summary(stages.to_kafka))
    to_target = ms(summary(stages.kafka_to_target))
    base = ms(summary(stages.floor))
    missing = ledger.missing()
    mismatches = ledger.version_mismatches()
    measured = sum(1 for w in ledger.writes.values() if w.measured)
    measured_missing = sum(1 for w in missing if w.measured)
    poll = f"stream poll {args.poll_ms} ms"
    floor_name = f"same writes, plain GetRecords every {args.poll_ms} ms"
    if e2e["count"]:
        for q, goal in (("p50", GOAL_P50_MS), ("p95", None), ("p99", GOAL_P99_MS)):
            results.figure(
                f"end-to-end {q} (write -> {kind} row)",
                e2e[q],
                "ms",
                baseline=(f"{floor_name}, {q}", base[q]) if base["count"] else None,
                note=(f"goal <= {goal:,.0f} ms; " if goal else "") + poll,
            )
        results.figure("end-to-end max", e2e["max"], "ms", note=poll)
        for name, stats in (("DynamoDB -> Kafka", to_kafka), ("Kafka -> target", to_target)):
            for q in ("p50", "p99"):
                results.figure(f"{name} {q}", stats[q], "ms", note=poll)
        over = ms(summary(stages.over_floor))
        if over["count"]:
            results.figure(
                "stream -> Kafka over the plain reader, per write, mean",
                over["mean"],
                "ms",
                note=f"p50 {over['p50']:,.0f} ms; what the stream producer, linger_ms and "
                "the broker add to a plain GetRecords loop reading the same writes",
            )
    results.figure(
        "measured writes seen in Kafka and in the target",
        measured - measured_missing,
        "writes",
        baseline=("writes made", measured),
        note="must be ratio 1.00; CPU: stream + apply processes per write, polling included",
        cpu_us_per_item=sum(cpu.values()) * 1e6 / max(1, measured),
    )
    q_ms = [s * 1000 for s in poller.query_s] or [0.0]
    kafka_conf, apply_conf = settings.kafka, settings.apply
    results.extra.update(
        {
            "target": kind,
            "rate_per_s": args.rate,
            "measured_s": args.seconds,
            "measured_writes": measured,
            "achieved_rate_per_s": (
                round(measured / (writer.measured_span[1] - writer.measured_span[0]), 1)
                if writer.measured_span and writer.measured_span[1] > writer.measured_span[0]
                else None
            ),
            "writes_behind_schedule": writer.late,
            "writes_sent_after_due_ms": ms(summary(writer.lateness)),
            "puts": writer.puts,
            "updates": writer.updates,
            "keys": args.keys,
            "end_to_end_ms": e2e,
            "dynamodb_to_kafka_ms": to_kafka,
            "kafka_to_target_ms": to_target,
            "record_timestamp_to_kafka_ms": ms(summary(stages.stamp_to_kafka)),
            "put_call_ms": ms(summary(stages.put)),
            "floor_ms": base,
            "kafka_minus_floor_ms": ms(summary(stages.over_floor)),
            "floor_get_records_calls": floor.calls,
            "resolution": {
                "t_target": f"target polled every {args.target_poll_ms} ms; a row is stamped "
                "with the snapshot time of the first query that returned it (PostgreSQL "
                "statement_timestamp(); SQLite: the send time)",
                "target_query_ms": ms(summary([q / 1000 for q in q_ms])),
                "t_kafka": "time consume() returned the record to the tail (fetch.wait.max.ms 50)",
            },
            "settings": {
                "stream.poll_interval_ms": settings.stream.poll_interval_ms,
                "stream.idle_poll_max_ms": settings.stream.idle_poll_max_ms,
                "kafka.linger_ms": kafka_conf.linger_ms,
                "kafka.partitions": kafka_conf.partitions,
                "kafka.compression": kafka_conf.compression,
                "apply.batch_size": apply_conf.batch_size,
                "apply.batch_window_ms": apply_conf.batch_window_ms,
                "apply.commit_interval_ms": apply_conf.commit_interval_ms,
            },
            "missing_writes": len(missing),
            "missing_examples": [(w.key, w.seq, w.kafka_seen is not None) for w in missing[:10]],
            "version_mismatches": len(mismatches),
            "superseded_before_visible": sum(1 for w in ledger.writes.values() if w.superseded),
            "events_of_no_write": ledger.unmatched_events,
            "duplicate_events": ledger.duplicate_events,
            "events_read": tail.records,
            "exit_codes": codes,
            # What each process spent while the measured writes were made: a shorter batch
            # window or poll interval buys latency with CPU, this is its price.
            "cpu_s_during_measured_writes": cpu,
            "cpu_ms_per_write": {k: round(v * 1000 / max(1, measured), 2) for k, v in cpu.items()},
        }
    )
    print(f"CPU during the measured writes (s): {cpu}", flush=True)
    print(
        "settings: " + ", ".join(f"{k} = {v}" for k, v in results.extra["settings"].items()),
        flush=True,
    )
    for name, stats in (
        ("end-to-end", e2e),
        ("DynamoDB -> Kafka", to_kafka),
        ("Kafka -> target", to_target),
        ("floor (no bridge)", base),
        ("Kafka - floor", ms(summary(stages.over_floor))),
    ):
        print(f"  {name:<18} " + "  ".join(f"{k} {v}" for k, v in stats.items()), flush=True)
    results.write()
    failed = []
    if missing:
        failed.append(f"{len(missing)} writes never seen in Kafka or in the target")
    if mismatches:
        failed.append(f"{len(mismatches)} target rows with another version than their event")
    if any(code != 0 for code in codes.values()):
        failed.append(f"processes did not stop cleanly: {codes}")
    if failed:
        raise SystemExit("bench_latency failed: " + "; ".join(failed))


if __name__ == "__main__":
    main(sys.argv[1:])
