"""Runs the demo migration end to end, through the real commands, and checks the result.

Order of events, as the runbook has it: source table with a NEW_AND_OLD_IMAGES stream and
seeded items → `stream` running → a writer keeps updating/deleting/inserting → `backfill
--from scan` while it writes → `apply` into SQLite → writer stops → wait until `apply` has
consumed every event in the topic → `verify`. Every child process is stopped on the way
out, also on Ctrl-C or failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bridge.kafka import lag
from bridge.kafka.publisher import ensure_topics
from bridge.kafka.schema_registry import make_codec
from bridge.model.errors import BridgeError, PermanentError
from bridge.runtime.config_file import write_config
from bridge.runtime.settings import Settings, load_settings
from bridge.verify.passes import VerifyReport
from ddb_bridge.demo.brokers import BrokerMode, demo_broker
from ddb_bridge.demo.stream_check import SeenPositions, stream_positions
from ddb_bridge.demo.topic_tail import TopicTail
from ddb_bridge.demo.workload import Writer, create_table, enable_stream, seed
from ddb_bridge.invocation import command_name
from ddb_bridge.services.moto_server import moto_server
from ddb_bridge.services.processes import stop_process

TABLE = "orders"
TARGET = "local"


@dataclass
class DemoOptions:
    items: int = 10_000
    write_rate: float = 150.0  # writer operations per second
    min_write_s: float = 10.0  # the writer runs at least this long, and through the back-fill
    partitions: int = 4
    timeout_s: float = 600.0
    workdir: Path | None = None
    table: str = TABLE
    # Existing services instead of embedded ones (tests pass their session services).
    endpoint_url: str | None = None
    bootstrap_servers: str | None = None
    # Which broker to start when bootstrap_servers is None (ddb_bridge/demo/brokers.py).
    broker: BrokerMode = "auto"


@dataclass
class DemoResult:
    items: int = 0
    writes: dict[str, int] = field(default_factory=dict)
    events: int = 0
    stream_records: int = 0
    backfill_s: float = 0.0
    catch_up_s: float = 0.0
    apply_s: float = 0.0
    final_lag: int = -1
    verify: VerifyReport | None = None
    total_s: float = 0.0
    workdir: str = ""
    # (seconds since start, apply lag) as `ddb-bridge status --json` reported it during the run.
    status_lags: list[tuple[float, int]] = field(default_factory=list)
    status_command: str = ""
    dashboard_url: str = ""

    @property
    def ok(self) -> bool:
        return self.verify is not None and self.verify.ok and self.final_lag == 0


def write_demo_config(
    path: Path, endpoint: str, bootstrap: str, partitions: int, table: str, db: Path
) -> Path:
    """The demo's bridge.toml, checked against the settings models as it is written."""
    return write_config(
        path,
        aws={"region": "us-east-1", "endpoint_url": endpoint},
        kafka={
            "bootstrap_servers": bootstrap,
            "partitions": partitions,
            "replication_factor": 1,
            "linger_ms": 5,
        },
        tables=[{"name": table}],
        stream={
            "lease_table": "ddb-bridge-leases",
            "poll_interval_ms": 100,
            "lease_duration_ms": 10000,
        },
        backfill={"segments": 4},
        apply={"target": TARGET, "batch_size": 1000, "batch_window_ms": 100},
        targets={TARGET: {"type": "sqlite", "path": db}},
        # Off: the demo may run next to a real bridge (or another demo) holding the default
        # ports.
        metrics={"port": 0},
    )


class Children:
    """The demo's child processes, each logging to a file in the work directory."""

    def __init__(self, workdir: Path, config: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.config = config
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the child
        argv = [
            sys.executable,
            "-m",
            "ddb_bridge.cli.main",
            name,
            "--config",
            str(self.config),
            *args,
        ]
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, stdin=subprocess.DEVNULL
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def check_alive(self, *names: str) -> None:
        for name in names:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise PermanentError(
                    f"`ddb-bridge {name}` exited early with {proc.returncode}:\n"
                    + self.log_tail(name)
                )

    def stop_all(self) -> dict[str, int | None]:
        codes = {}
        for name, proc in self.procs.items():
            stop_process(proc, timeout_s=30)
            codes[name] = proc.returncode
        return codes


def wait_for(
    what: str, check: Callable[[], bool], timeout_s: float, tick: Callable[[], None] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if tick:
            tick()
        if time.monotonic() > deadline:
            raise PermanentError(f"demo: timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.25)


@contextlib.contextmanager
def work_directory(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="ddb-bridge-demo-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_demo(opts: DemoOptions, report: Callable[[str], None] = print) -> DemoResult:
    from connectors.dynamodb import aws
    from connectors.dynamodb.capture import read_capture

    result = DemoResult(items=opts.items)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(work_directory(opts.workdir))
        result.workdir = str(workdir)
        table = opts.table
        report(f"working in {workdir}")
        endpoint = opts.endpoint_url or stack.enter_context(moto_server())
        if opts.endpoint_url is None:
            report(f"started moto (embedded DynamoDB, Streams, S3) on {endpoint}")
        bootstrap = opts.bootstrap_servers or stack.enter_context(demo_broker(opts.broker, report))
        config = write_demo_config(
            workdir / "bridge.toml", endpoint, bootstrap, opts.partitions, table,
            workdir / "target.db",
        )  # fmt: skip
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONUNBUFFERED": "1",
        }
        env = {k: v for k, v in env.items() if not k.startswith("DDB_BRIDGE__")}
        os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
        settings: Settings = load_settings(config)
        ddb = aws.client("dynamodb", settings.aws)

        # As in a real migration: the table already holds its items when the stream is enabled.
        create_table(ddb, table)
        report(f"seeding {opts.items:,} items into DynamoDB table {table!r}")
        seed(ddb, table, opts.items)
        report("enabling its stream (NEW_AND_OLD_IMAGES)")
        enable_stream(ddb, table)
        stream_enabled_at = time.time()
        topic = settings.kafka.changes_topic(table)
        ensure_topics(settings.kafka, [table])
        # Lag is measured against what the tail has read, not the broker's watermarks: the
        # demo may run on Tansu (`bridge.kafka.lag`).
        seen = SeenPositions(make_codec(settings.kafka))
        tail = TopicTail(settings.kafka, topic, opts.partitions, on_record=seen)
        tail.start()
        # Closed before the broker stops (the stack unwinds last-in first).
        stack.callback(tail.stop)

        children = Children(workdir, config, env)
        stack.callback(children.stop_all)
        children.start("stream")
        stream_arn = aws.describe_table(ddb, table)["LatestStreamArn"]
        wait_for(
            "the stream producer to start",
            lambda: read_capture(ddb, settings.stream.lease_table, stream_arn) is not None,
            60,
            lambda: children.check_alive("stream"),
        )
        report("stream producer running; starting the writer and `apply`")
        # moto takes any credentials, but boto3 wants some.
        result.status_command = (
            "AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo "
            f"{command_name()} status --config {config}"
        )
        report(f"where it stands, from another terminal: {result.status_command}")
        children.start("status", "--serve", "0", "--interval-s", "2")
        result.dashboard_url = wait_for_url(children, "status", 60)
        report(f"live dashboard: {result.dashboard_url}")

        writer = Writer(ddb, table, opts.items, opts.write_rate)
        writer.start()
        stack.callback(writer.stop_event.set)
        writer_started = time.monotonic()
        apply_started = time.monotonic()
        children.start("apply", "--create-schema")

        # The back-fill version sits `skew_margin_s` below its start: begin only once the
        # stream has been captured for longer than that (the back-fill checks it too).
        time.sleep(max(0.0, stream_enabled_at + settings.backfill.skew_margin_s + 1 - time.time()))
        report("back-fill by parallel scan while the writer keeps changing items")
        bf_started = time.monotonic()
        backfill = children.start("backfill", "--table", table, "--from", "scan", "--no-progress")

        last_report = [time.monotonic()]
        last_status = [time.monotonic()]
        group = f"ddb-bridge.apply.{TARGET}"

        def sample_status(force: bool = False) -> None:
            """What `ddb-bridge status` says of apply lag, every 15 s (what a user would run)."""
            if not force and time.monotonic() - last_status[0] < 15:
                return
            last_status[0] = time.monotonic()
            behind = status_lag(config, env, table, workdir)
            if behind is not None:
                result.status_lags.append((time.monotonic() - started, behind))
                report(f"  ddb-bridge status: apply lag {behind:,}")

        def live(force: bool = False) -> None:
            """A status line every few seconds: writes, events in Kafka, apply lag."""
            if not force and time.monotonic() - last_report[0] < 5:
                return
            last_report[0] = time.monotonic()
            behind = lag.total_lag(lag.group_lag(settings.kafka, group, [topic], tail=tail))
            report(
                f"  writes {writer.stats.total:,}  events in Kafka {tail.records:,}  "
                f"applied {tail.records - behind:,}  lag {behind:,}"
            )

        def status() -> None:
            if writer.error is not None:
                raise PermanentError(f"demo writer failed: {writer.error!r}")
            if tail.error:
                raise PermanentError(f"demo tail consumer: {tail.error}")
            children.check_alive("stream", "apply")
            live()
            sample_status()

        wait_for("the back-fill", lambda: backfill.poll() is not None, opts.timeout_s, status)
        if backfill.returncode != 0:
            raise PermanentError(
                f"back-fill failed ({backfill.returncode}):\n{children.log_tail('backfill')}"
            )
        result.backfill_s = time.monotonic() - bf_started
        report(f"back-fill done in {result.backfill_s:.1f}s; writer continues briefly")
        wait_for(
            "the writer's minimum run",
            lambda: time.monotonic() - writer_started >= opts.min_write_s,
            opts.timeout_s,
            status,
        )
        writer.stop_event.set()
        writer.join(10)
        result.writes = {
            "puts": writer.stats.puts,
            "updates": writer.stats.updates,
            "deletes": writer.stats.deletes,
        }
        report(
            f"writer stopped after {writer.stats.total:,} changes; waiting for apply to catch up"
        )

        catch_up_started = time.monotonic()
        # Every record now in the stream must be in Kafka, and apply must have committed
        # past every event in the topic.
        expected = stream_positions(aws.client("dynamodbstreams", settings.aws), stream_arn)
        result.stream_records = len(expected)

        def caught_up() -> bool:
            status()
            if not expected <= seen.positions:
                return False
            return lag.caught_up(lag.group_lag(settings.kafka, group, [topic], tail=tail))

        wait_for("apply to consume every event", caught_up, opts.timeout_s)
        result.catch_up_s = time.monotonic() - catch_up_started
        result.events = tail.records
        result.final_lag = 0
        result.apply_s = time.monotonic() - apply_started
        live(force=True)
        sample_status(force=True)

        report("verifying source against target")
        from ddb_bridge.verification import verify_table

        result.verify = verify_table(settings, table, TARGET, recheck_delay_s=1.0)
        codes = children.stop_all()
        failed = {n: c for n, c in codes.items() if n != "backfill" and c not in (0, None)}
        if failed:
            raise PermanentError(f"demo: processes did not stop cleanly: {failed}")
    result.total_s = time.monotonic() - started
    return result


def wait_for_url(children: Children, name: str, timeout_s: float) -> str:
    """The URL `status --serve 0` prints once it listens."""
    found: list[str] = []

    def printed() -> bool:
        for line in children.log_tail(name, 20_000).splitlines():
            if line.startswith("dashboard: http://"):
                found.append(line.split()[1])
                return True
        return False

    wait_for(f"the dashboard ({name})", printed, timeout_s, lambda: children.check_alive(name))
    return found[0]


def status_lag(config: Path, env: dict[str, str], table: str, workdir: Path) -> int | None:
    """apply's total lag on `table` as `ddb-bridge status --json` reports it; None (logged in
    the work directory) when status could not answer."""
    cmd = [sys.executable, "-m", "ddb_bridge.cli.main", "status", "--config", str(config)]
    cmd += ["--json", "--sample-s", "0", "--table", table]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        report = json.loads(done.stdout)
        lags = [t["lag"] for tb in report["tables"] for t in tb["targets"]]
        return int(sum(lag for lag in lags if lag is not None))
    except (subprocess.TimeoutExpired, ValueError, KeyError, TypeError) as exc:
        with (workdir / "status.log").open("a") as log_file:
            log_file.write(f"status failed: {exc!r}\n")
        return None


def summary(result: DemoResult) -> str:
    v = result.verify
    lines = [
        "",
        "ddb-bridge demo summary",
        f"  items seeded          : {result.items:,}",
        f"  writes during run     : {sum(result.writes.values()):,} "
        f"({result.writes.get('puts', 0)} puts, {result.writes.get('updates', 0)} updates, "
        f"{result.writes.get('deletes', 0)} deletes)",
        f"  events in Kafka       : {result.events:,} "
        f"({result.stream_records:,} stream records + back-fill)",
        f"  back-fill             : {result.backfill_s:.1f} s",
        f"  apply                 : all {result.events:,} events written within "
        f"{result.apply_s:.1f} s of its start (paced by the writer)",
        f"  catch-up after writes : {result.catch_up_s:.1f} s, final lag {result.final_lag}",
        f"  total                 : {result.total_s:.1f} s",
    ]
    if result.status_lags:
        lags = " -> ".join(f"{lag:,}" for _, lag in result.status_lags)
        lines.append(f"  `status` apply lag    : {lags}")
    if result.status_command:
        lines.append(f"  where it stands       : {result.status_command} (while it runs)")
    if result.dashboard_url:
        lines.append(f"  live dashboard        : {result.dashboard_url} (while it runs)")
    if v is not None:
        lines.append(
            f"  verified items        : {v.source_items:,} source, "
            f"{v.target_rows_checked:,} target rows"
        )
        for d in v.examples:
            lines.append(f"    {d.describe()}")
        lines.append(f"differences: {v.differences}")
        lines.append(f"{v.differences} differences")
    return "\n".join(lines)


def main_entry(opts: DemoOptions) -> int:
    try:
        result = run_demo(opts)
    except BridgeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    print(summary(result))
    return 0 if result.ok else 1
