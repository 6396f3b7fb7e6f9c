"""Soak: do the long-lived daemons stay flat? `ddb-bridge stream` and `ddb-bridge apply` run for
`--minutes` under a steady write rate, with a `ddb-bridge backfill --from scan` every few minutes.

What runs: the real CLI processes on one config, against a moto server (DynamoDB + Streams),
the bench broker (Apache Kafka when Java 17+ can run it, else Tansu: benchmarks/broker.py) and
a throwaway PostgreSQL when its binaries are installed (else SQLite; `--target` chooses, and
the results say which). A writer thread puts, updates (removing an attribute) and deletes items
over a fixed key space, so the table does not grow. Back-fills start at `--backfill-first-min`
and then every `--backfill-every-min` (`--processes 1`: one fresh process per run); each must
exit 0, and its duration is recorded.

What is sampled every `--sample-s` seconds: RSS, open file descriptors and threads of
`stream`, `apply`, the running back-fill, moto and the broker (/proc); apply's lag (committed
offsets of its group against what the topic holds, `bridge.kafka.lag`); the stream's lag (changes
the writer made, counting a delete only when it removed an item, minus stream events in
Kafka); and the writer's mean DynamoDB call time (moto keeps every stream record in memory:
this shows whether moto slows down over the run, which would distort the lags).

At the end the writer stops, both lags must drain to 0, `verify` compares the table with the
target, and stream and apply get SIGTERM (each must exit 0). Then a verdict per process and
metric, from the second half of the run (benchmarks/soak_metrics.py), is printed and written
with every sample to benchmarks/results/soak.json, and the plot to benchmarks/results/soak.png.

Run: `python -m benchmarks.soak [--minutes 30] [--rate 50] [--backfill-every-min 5]
[--sample-s 5]` or `make soak SOAK_ARGS="--minutes 10"`. Exits 1 when a metric grows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.broker import bench_broker
from benchmarks.report import RESULTS_DIR, Results
from benchmarks.soak_metrics import THRESHOLDS, Verdict, children_of, sample_process, verdict

TABLE = "soak"
TARGET = "soak"
DAEMONS = ("stream", "apply")


@dataclass
class SoakOptions:
    minutes: float = 30.0
    rate: float = 50.0
    backfill_every_min: float = 5.0
    backfill_first_min: float = 1.0
    sample_s: float = 5.0
    keys: int = 5000
    partitions: int = 4
    target: str = "auto"  # auto | postgres | sqlite
    pg_dsn: str | None = None
    drain_timeout_s: float = 180.0
    workdir: Path | None = None
    results: Results | None = None  # records which broker ran
    trace_malloc_s: float | None = None  # stream and apply under tracemalloc, reporting this often


class SteadyWriter(threading.Thread):
    """Puts, updates and deletes over keys 0..key_space-1 at `rate` calls per second.

    `changes` counts the stream records the calls made, as moto makes them (ReturnValues
    ALL_OLD says whether the item existed): one per put; one per update of an existing item
    but two for an update that creates the item (moto records its internal put of the key,
    then the update; DynamoDB records one); one per delete that removed an item, none for a
    delete of a missing key. The soak's stream lag is this count minus the stream events in
    Kafka; after the drain it must be exactly 0.
    """

    def __init__(self, ddb: Any, table: str, key_space: int, rate: float, seed: int = 5) -> None:
        super().__init__(name="soak-writer", daemon=True)
        self.ddb = ddb
        self.table = table
        self.key_space = key_space
        self.rate = rate
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.calls = 0
        self.changes = 0
        self._lock = threading.Lock()
        self._call_s = 0.0
        self._call_n = 0

    def take_call_ms(self) -> float | None:
        """Mean DynamoDB call time since the last take, in ms."""
        with self._lock:
            total, n = self._call_s, self._call_n
            self._call_s, self._call_n = 0.0, 0
        return None if n == 0 else 1000 * total / n

    def run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        try:
            while not self.stop_event.is_set():
                started = time.monotonic()
                records = self.step()
                took = time.monotonic() - started
                with self._lock:
                    self._call_s += took
                    self._call_n += 1
                self.calls += 1
                self.changes += records
                # A fixed schedule, not a fixed pause: the rate holds while calls take longer.
                next_at = max(next_at + interval, time.monotonic() - 1.0)
                self.stop_event.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # reported by the soak's loop, which fails the run
            self.error = exc

    def step(self) -> int:
        """One call; the number of stream records it made."""
        from bridge.model import attrs
        from ddb_bridge.demo.workload import demo_item

        i = self.rng.randrange(self.key_space)
        key = {"customer_id": {"S": f"customer-{i % 997:04d}"}, "order_id": {"N": str(i)}}
        roll = self.rng.random()
        if roll < 0.6:
            updated = self.ddb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET #s = :s, #t = :t REMOVE #n",
                ExpressionAttributeNames={"#s": "status", "#t": "total", "#n": "note"},
                ExpressionAttributeValues={
                    ":s": {"S": self.rng.choice(["PAID", "SHIPPED", "RETURNED"])},
                    ":t": {"N": f"{self.rng.randint(1, 99999)}.{self.rng.randint(0, 99):02d}"},
                },
                ReturnValues="ALL_OLD",
            )
            return 1 if updated.get("Attributes") else 2
        if roll < 0.85:
            gone = self.ddb.delete_item(TableName=self.table, Key=key, ReturnValues="ALL_OLD")
            return 1 if gone.get("Attributes") else 0
        self.ddb.put_item(TableName=self.table, Item=attrs.to_boto(demo_item(i, self.rng)))
        return 1


@dataclass
class BackfillRun:
    started_s: float
    ended_s: float | None = None
    exit_code: int | None = None
    pid: int = 0

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_s is None else self.ended_s - self.started_s


@dataclass
class SoakRun:
    target: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)
    backfills: list[BackfillRun] = field(default_factory=list)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    drain_s: float | None = None
    verify: dict[str, Any] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)
    workdir: str = ""


class Daemons:
    """The soak's `ddb-bridge` child processes, each logging to a file of its own."""

    def __init__(
        self, workdir: Path, config: Path, env: dict[str, str], trace_s: float | None = None
    ) -> None:
        self.workdir = workdir
        self.config = config
        self.env = env
        self.trace_s = trace_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, command: str, *args: str, traced: bool = False
    ) -> subprocess.Popen[bytes]:
        """`ddb-bridge COMMAND --config ... ARGS`; `traced` (with trace_s set): under
        benchmarks/soak_tracemalloc.py, its growth report in <workdir>/<name>.tracemalloc."""
        argv = [sys.executable, "-m", "ddb_bridge.cli.main"]
        if traced and self.trace_s is not None:
            out = str(self.workdir / f"{name}.tracemalloc")
            argv = [sys.executable, "-m", "benchmarks.soak_tracemalloc", out, str(self.trace_s)]
            argv.append("--")
        argv += [command, "--config", str(self.config)]
        with (self.workdir / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [*argv, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                stdin=subprocess.DEVNULL,
            )
        self.procs[name] = proc
        return proc

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def check_alive(self, *names: str) -> None:
        for name in names:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise SystemExit(
                    f"soak: `ddb-bridge {name}` exited early with {proc.returncode}:\n"
                    + self.tail(name)
                )

    def stop(self, name: str, timeout_s: float = 60.0) -> int | None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return None  # did not stop on SIGTERM: reported as such
        return proc.returncode

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def soak_target(opts: SoakOptions, workdir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(description, the [targets.soak] section): PostgreSQL when possible, else SQLite."""
    if opts.target in ("auto", "postgres"):
        if opts.pg_dsn:
            yield "postgres (given DSN)", {"type": "postgres", "dsn": opts.pg_dsn}
            return
        from ddb_bridge.services.postgres import PostgresCluster, postgres_bindir

        bindir = postgres_bindir()
        if bindir is not None:
            cluster = PostgresCluster(bindir)
            cluster.init()
            cluster.start()
            try:
                yield f"postgres ({bindir})", {"type": "postgres", "dsn": cluster.dsn}
            finally:
                cluster.destroy()
            return
        if opts.target == "postgres":
            raise SystemExit("--target postgres: PostgreSQL binaries not found; pass --pg-dsn")
    yield (
        "sqlite (PostgreSQL binaries not found)" if opts.target == "auto" else "sqlite",
        {"type": "sqlite", "path": workdir / "target.db"},
    )


def find_child(pattern: str) -> int | None:
    """The pid of this process's child whose command line holds `pattern` (moto, the broker)."""
    for pid, cmdline in children_of(os.getpid()).items():
        if pattern in cmdline:
            return pid
    return None


def run_soak(opts: SoakOptions, say: Any = print) -> SoakRun:
    from bridge.apply.app import group_id
    from bridge.kafka import lag
    from bridge.kafka.publisher import ensure_topics
    from bridge.kafka.reads import OffsetFetcher, reader
    from bridge.kafka.schema_registry import make_codec
    from bridge.model.errors import BridgeError
    from bridge.model.event import Origin
    from bridge.runtime.config_file import write_config
    from bridge.runtime.settings import load_settings
    from connectors.dynamodb import aws
    from connectors.dynamodb.capture import read_capture
    from ddb_bridge.demo.topic_tail import TopicTail
    from ddb_bridge.demo.workload import create_table, enable_stream, seed
    from ddb_bridge.services.moto_server import moto_server

    run = SoakRun()
    with contextlib.ExitStack() as stack:
        if opts.workdir is not None:
            workdir = opts.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        run.workdir = str(workdir)
        endpoint = stack.enter_context(moto_server())
        bootstrap = stack.enter_context(bench_broker(opts.results))
        run.target, target_body = stack.enter_context(soak_target(opts, workdir))
        say(f"target: {run.target}; work directory {workdir}")
        config = write_config(
            workdir / "bridge.toml",
            aws={"region": "us-east-1", "endpoint_url": endpoint},
            kafka={
                "bootstrap_servers": bootstrap,
                "partitions": opts.partitions,
                "replication_factor": 1,
            },
            tables=[{"name": TABLE}],
            stream={"lease_table": "ddb-bridge-soak-leases", "poll_interval_ms": 250},
            backfill={"segments": 4, "processes": 1},
            apply={"target": TARGET},
            targets={TARGET: target_body},
            # Off: the soak may run next to a bridge holding the default ports.
            metrics={"port": 0},
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE__")}
        env.update(
            AWS_ACCESS_KEY_ID="soak",
            AWS_SECRET_ACCESS_KEY="soak",
            AWS_DEFAULT_REGION="us-east-1",
            PYTHONUNBUFFERED="1",
        )
        os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
        settings = load_settings(config)
        ddb = aws.client("dynamodb", settings.aws)
        create_table(ddb, TABLE)
        say(f"seeding {opts.keys:,} items")
        seed(ddb, TABLE, opts.keys)
        enable_stream(ddb, TABLE)
        stream_arn = aws.describe_table(ddb, TABLE)["LatestStreamArn"]
        topic = settings.kafka.changes_topic(TABLE)
        ensure_topics(settings.kafka, [TABLE])

        codec = make_codec(settings.kafka)
        counts = {"stream": 0, "backfill": 0}
        # Distinct stream positions: the stream is at-least-once (a lease lost under load
        # re-reads from its checkpoint), so a record may reach Kafka twice.
        positions: set[tuple[str | None, str | None]] = set()

        def count(value: bytes) -> None:
            event = codec.decode(value)
            if event.origin is Origin.STREAM:
                counts["stream"] += 1
                positions.add((event.shard_id, event.sequence_number))
            else:
                counts["backfill"] += 1

        tail = TopicTail(settings.kafka, topic, opts.partitions, on_record=count)
        tail.start()
        stack.callback(tail.stop_event.set)
        lag_reader = stack.enter_context(reader(settings.kafka, "soak-lag"))
        lag_offsets = stack.enter_context(OffsetFetcher(settings.kafka))
        group = group_id(TARGET)
        # Partition ends from the broker's watermarks on Apache Kafka (exact, whatever this
        # process's tail has read so far); from the tail on Tansu, whose watermarks are wrong
        # (bridge.kafka.lag).
        on_tansu = "Tansu" in ((opts.results and opts.results.broker) or "")

        def apply_lag() -> int | None:
            try:
                return lag.total_lag(
                    lag.group_lag(
                        settings.kafka,
                        group,
                        [topic],
                        tail=tail if on_tansu else None,
                        consumer=lag_reader,
                        offsets=lag_offsets,
                    )
                )
            except BridgeError:
                return None  # recorded as a gap in the series, not a zero

        daemons = Daemons(workdir, config, env, opts.trace_malloc_s)
        stack.callback(daemons.kill_all)
        daemons.start("stream", "stream", traced=True)
        # Under tracemalloc start-up (imports) is several times slower.
        start_wait_s = 180 if opts.trace_malloc_s is None else 600
        deadline = time.monotonic() + start_wait_s
        while read_capture(ddb, settings.stream.lease_table, stream_arn) is None:
            daemons.check_alive("stream")
            if time.monotonic() > deadline:
                raise SystemExit(f"soak: the stream producer did not start in {start_wait_s} s")
            time.sleep(0.25)
        daemons.start("apply", "apply", "--create-schema", traced=True)
        writer = SteadyWriter(aws.client("dynamodb", settings.aws), TABLE, opts.keys, opts.rate)
        writer.start()
        stack.callback(writer.stop_event.set)
        others = {"moto": find_child("moto_server"), "broker": find_child("kafka.Kafka")}
        say(
            f"stream pid {daemons.procs['stream'].pid}, apply pid {daemons.procs['apply'].pid}; "
            f"writing {opts.rate:g}/s over {opts.keys:,} keys for {opts.minutes:g} min"
        )

        t0 = time.monotonic()
        backfill: subprocess.Popen[bytes] | None = None

        def sample(phase: str) -> dict[str, Any]:
            now = time.monotonic() - t0
            procs: dict[str, Any] = {}
            pids = {name: daemons.procs[name].pid for name in DAEMONS}
            if backfill is not None and backfill.poll() is None:
                pids["backfill"] = backfill.pid
            pids.update({k: v for k, v in others.items() if v is not None})
            for name, pid in pids.items():
                got = sample_process(pid)
                if got is not None:
                    procs[name] = asdict(got)
            behind = apply_lag()
            row = {
                "t": round(now, 2),
                "phase": phase,
                "backfill_running": "backfill" in procs,
                "processes": procs,
                "apply_lag": behind,
                "stream_lag": writer.changes - len(positions),
                "changes": writer.changes,
                "writer_calls": writer.calls,
                "stream_events": counts["stream"],
                "stream_duplicates": counts["stream"] - len(positions),
                "backfill_events": counts["backfill"],
                "writer_call_ms": writer.take_call_ms(),
            }
            run.samples.append(row)
            return row

        def check() -> None:
            if writer.error is not None:
                raise SystemExit(f"soak: the writer failed: {writer.error!r}")
            if tail.error:
                raise SystemExit(f"soak: the topic tail failed: {tail.error}")
            daemons.check_alive(*DAEMONS)

        def backfill_done() -> None:
            nonlocal backfill
            if backfill is None or backfill.poll() is None:
                return
            current = run.backfills[-1]
            current.ended_s = time.monotonic() - t0
            current.exit_code = backfill.returncode
            say(
                f"  back-fill {len(run.backfills)} exited {backfill.returncode} after "
                f"{current.duration_s:.1f}s"
            )
            if backfill.returncode != 0:
                raise SystemExit(
                    f"soak: back-fill {len(run.backfills)} exited {backfill.returncode}:\n"
                    + daemons.tail(f"backfill-{len(run.backfills)}")
                )
            backfill = None

        end = t0 + opts.minutes * 60
        next_backfill = t0 + opts.backfill_first_min * 60
        next_sample = t0
        last_line = t0
        while time.monotonic() < end:
            check()
            backfill_done()
            now = time.monotonic()
            if backfill is None and now >= next_backfill:
                n = len(run.backfills) + 1
                backfill = daemons.start(
                    f"backfill-{n}", "backfill", "--table", TABLE, "--from", "scan",
                    "--no-progress", "--processes", "1",
                )  # fmt: skip
                run.backfills.append(BackfillRun(started_s=now - t0, pid=backfill.pid))
                say(f"  back-fill {n} started at {now - t0:.0f}s")
                while next_backfill <= now:
                    next_backfill += opts.backfill_every_min * 60
            if now >= next_sample:
                row = sample("run")
                next_sample += opts.sample_s
                if now - last_line >= 60:
                    last_line = now
                    say(progress_line(row))
            time.sleep(0.1)

        # A back-fill still running at the end must finish (and exit 0) too.
        while backfill is not None:
            check()
            backfill_done()
            if backfill is not None and time.monotonic() >= next_sample:
                sample("run")
                next_sample += opts.sample_s
            time.sleep(0.2)

        writer.stop_event.set()
        writer.join(30)
        check_writer = writer.error
        if check_writer is not None:
            raise SystemExit(f"soak: the writer failed: {check_writer!r}")
        say(
            f"writer stopped after {writer.calls:,} calls "
            f"({writer.changes:,} stream records); draining"
        )
        drain_started = time.monotonic()
        while True:
            check()
            row = sample("drain")
            if row["stream_lag"] == 0 and row["apply_lag"] == 0:
                break
            if time.monotonic() - drain_started > opts.drain_timeout_s:
                raise SystemExit(
                    f"soak: not drained after {opts.drain_timeout_s:.0f}s: {progress_line(row)}"
                )
            time.sleep(min(opts.sample_s, 1.0))
        run.drain_s = time.monotonic() - drain_started
        writer_s = drain_started - t0
        run.writes = {
            "calls": writer.calls,
            "stream_records": writer.changes,
            "calls_per_s": round(writer.calls / writer_s, 1),
            "stream_duplicates_in_kafka": counts["stream"] - len(positions),
            # at-least-once: each loss re-reads from the checkpoint (the duplicates above)
            "stream_leases_lost": daemons.tail("stream", 10**9).count("lease lost"),
        }
        say(f"drained in {run.drain_s:.1f}s; verifying the target against the table")
        from ddb_bridge.verification import verify_table

        report = verify_table(settings, TABLE, TARGET, recheck_delay_s=1.0)
        run.verify = {
            "ok": report.ok,
            "source_items": report.source_items,
            "missing": report.missing,
            "extra": report.extra,
            "different": report.different,
            "examples": [str(d) for d in report.examples],
        }
        for name in DAEMONS:
            run.exit_codes[name] = daemons.stop(name)
    return run


def progress_line(row: dict[str, Any]) -> str:
    procs = row["processes"]
    parts = [f"t={row['t']:.0f}s"]
    for name in ("stream", "apply", "backfill"):
        if name in procs:
            p = procs[name]
            parts.append(f"{name} {p['rss_kb'] / 1024:.1f}MB/{p['fds']}fd/{p['threads']}thr")
    parts.append(f"apply lag {row['apply_lag']}")
    parts.append(f"stream lag {row['stream_lag']}")
    if "moto" in procs:
        parts.append(f"moto {procs['moto']['rss_kb'] / 1024:.0f}MB")
    return "  " + ", ".join(parts)


def series(samples: list[dict[str, Any]], process: str, metric: str) -> list[tuple[float, float]]:
    """(t, value) of one process's metric over the run phase (the drain is left out: no
    writes then, which is not the steady state being judged)."""
    out = []
    for row in samples:
        got = row["processes"].get(process)
        if row["phase"] != "run" or got is None:
            continue
        value = got["rss_kb"] / 1024 if metric == "rss_mb" else got[metric]
        out.append((float(row["t"]), float(value)))
    return out


def verdicts(samples: list[dict[str, Any]]) -> list[Verdict]:
    return [
        verdict(process, metric, series(samples, process, metric), THRESHOLDS[metric])
        for process in DAEMONS
        for metric in THRESHOLDS
    ]


def backfill_verdicts(run: SoakRun) -> list[dict[str, Any]]:
    """Per back-fill run: its duration and its peak RSS, fds and threads while sampled (a
    fresh process each time: growth across runs would point at the lease table or moto)."""
    out = []
    for n, bf in enumerate(run.backfills, 1):
        rows = [
            r["processes"]["backfill"]
            for r in run.samples
            if "backfill" in r["processes"]
            and bf.started_s <= r["t"] <= (bf.ended_s if bf.ended_s is not None else r["t"])
        ]
        out.append(
            {
                "run": n,
                "started_s": round(bf.started_s, 1),
                "duration_s": None if bf.duration_s is None else round(bf.duration_s, 2),
                "exit_code": bf.exit_code,
                "samples": len(rows),
                "peak_rss_mb": max((r["rss_kb"] for r in rows), default=0) / 1024,
                "peak_fds": max((r["fds"] for r in rows), default=0),
                "peak_threads": max((r["threads"] for r in rows), default=0),
            }
        )
    return out


def moto_note(samples: list[dict[str, Any]]) -> str:
    """Did moto slow down over the run? Its RSS and the writer's mean call time, first
    minute against last minute of the run phase."""
    rows = [r for r in samples if r["phase"] == "run"]
    if not rows:
        return "no samples"
    end = rows[-1]["t"]

    def mean_call(chosen: list[dict[str, Any]]) -> float | None:
        calls = [r["writer_call_ms"] for r in chosen if r["writer_call_ms"] is not None]
        return sum(calls) / len(calls) if calls else None

    first = mean_call([r for r in rows if r["t"] <= 60])
    last = mean_call([r for r in rows if r["t"] >= end - 60])
    rss = [r["processes"]["moto"]["rss_kb"] / 1024 for r in rows if "moto" in r["processes"]]
    text = []
    if rss:
        text.append(f"moto RSS {rss[0]:.0f} -> {rss[-1]:.0f} MB")
    if first is not None and last is not None:
        text.append(f"writer call {first:.1f} -> {last:.1f} ms (first vs last minute)")
    return "; ".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="run phase length")
    parser.add_argument("--rate", type=float, default=50.0, help="writer calls per second")
    parser.add_argument("--backfill-every-min", type=float, default=5.0)
    parser.add_argument("--backfill-first-min", type=float, default=1.0)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--keys", type=int, default=5000, help="key space (seeded first)")
    parser.add_argument("--target", choices=["auto", "postgres", "sqlite"], default="auto")
    parser.add_argument("--pg-dsn", default=None, help="an existing PostgreSQL")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here")
    parser.add_argument("--no-plot", action="store_true", help="skip soak.png")
    parser.add_argument(
        "--trace-malloc",
        type=float,
        default=None,
        metavar="SECONDS",
        help="leak hunting: run stream and apply under tracemalloc, writing what grew every "
        "SECONDS to <workdir>/{stream,apply}.tracemalloc (slower; RSS not comparable)",
    )
    args = parser.parse_args(argv)
    opts = SoakOptions(
        minutes=args.minutes,
        rate=args.rate,
        backfill_every_min=args.backfill_every_min,
        backfill_first_min=args.backfill_first_min,
        sample_s=args.sample_s,
        keys=args.keys,
        target=args.target,
        pg_dsn=args.pg_dsn,
        workdir=args.workdir,
        trace_malloc_s=args.trace_malloc,
    )
    results = Results("soak")
    opts.results = results
    run = run_soak(opts)

    found = verdicts(run.samples)
    print("\nverdicts (second half of the run phase):")
    for v in found:
        print("  " + v.line())
    backfills = backfill_verdicts(run)
    for bf in backfills:
        print(
            f"  back-fill {bf['run']}: {bf['duration_s']}s, exit {bf['exit_code']}, peak "
            f"{bf['peak_rss_mb']:.1f} MB / {bf['peak_fds']} fds / {bf['peak_threads']} threads "
            f"({bf['samples']} samples)"
        )
    moto = moto_note(run.samples)
    print(f"  {moto}")
    print(f"  writer: {run.writes}")
    print(f"  exit codes on SIGTERM: {run.exit_codes}; verify: {run.verify}")

    for v in found:
        if v.metric == "rss_mb":
            results.figure(
                f"{v.process} RSS growth, second half",
                v.slope_per_h,
                "MB/h",
                note=f"{'flat' if v.flat else 'GROWING'}; {v.threshold}",
            )
    settings = {k: v for k, v in vars(opts).items() if k not in ("workdir", "pg_dsn", "results")}
    results.extra.update(
        settings=settings,
        target=run.target,
        verdicts=[asdict(v) for v in found],
        backfills=backfills,
        moto=moto,
        drain_s=run.drain_s,
        writes=run.writes,
        exit_codes=run.exit_codes,
        verify=run.verify,
        samples=run.samples,
    )
    data = results.as_json()
    data["command"] = " ".join(["python", "-m", "benchmarks.soak", *(argv or [])])
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "soak.json"
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"results: {out}")
    if not args.no_plot:
        from benchmarks.soak_plot import plot

        png = plot(run.samples, backfills, RESULTS_DIR / "soak.png", title=data["command"])
        print(f"plot: {png}")
    ok = (
        all(v.flat for v in found)
        and run.verify.get("ok") is True
        and all(code == 0 for code in run.exit_codes.values())
    )
    print("soak: " + ("flat" if ok else "NOT FLAT or not clean: see above"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
