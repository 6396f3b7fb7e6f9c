"""One chaos run: the real `ddb-bridge` commands (stream, backfill --from scan, two apply
workers into PostgreSQL, verify) against its own Apache Kafka broker, moto and its own
PostgreSQL, under a seeded workload and a seeded fault schedule (tests/chaos/faults.py),
then the checks of tests/chaos/invariants.py. `run()` returns a report; the caller asserts.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from confluent_kafka import OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bridge.apply.app import group_id
from bridge.dlq.writer import HEADER_OFFSET, HEADER_PARTITION, HEADER_REASON
from bridge.kafka import reads as kafka_reads
from bridge.kafka.limits import topic_max_message_bytes
from bridge.kafka.publisher import ensure_topics
from bridge.kafka.schema_registry import make_codec
from bridge.model import attrs
from bridge.runtime.settings import KafkaSettings, Settings, load_settings
from ddb_bridge.demo.stream_check import stream_positions
from ddb_bridge.services.kafka_broker import KafkaNode
from ddb_bridge.services.kafka_cluster import KafkaCluster
from ddb_bridge.services.postgres import PostgresCluster
from tests.chaos import faults, invariants, workload
from tests.chaos.processes import Supervisor
from tests.chaos.sampler import Sampler

TARGET = "pg"
# A broker (re)start took over two minutes at a load average of 50 on two cores.
START_TIMEOUT_S = 600.0
KILL_TARGETS = faults.KILL_TARGETS


@dataclass
class ChaosOptions:
    seed: int
    # `make test`'s size: 50 s of writes, room for both outages and every kill; `make chaos`
    # sets the full size through CHAOS_WRITES / CHAOS_KEYS / CHAOS_RATE / CHAOS_KILLS.
    writes: int = 1_500
    keys: int = 300
    rate: float = 30.0  # writes per second
    kills: int = 12
    outage_s: float = 15.0
    pg_down_s: float = 20.0
    partitions: int = 4
    drain_timeout_s: float = 180.0
    workdir: Path | None = None
    # A running three-node cluster (tests/conftest.py's kafka_cluster): broker kills instead
    # of process kills and outages (faults.plan_cluster), topics as the bridge makes them.
    cluster: KafkaCluster | None = None
    broker_down_s: float = 8.0
    # Short leases so a killed stream's shard is taken over within seconds; a run that kills
    # no process (the cluster run) takes the bridge's default, as a deployment would.
    lease_ms: int = 3_000

    @classmethod
    def from_env(cls, **defaults: Any) -> ChaosOptions:
        """CHAOS_SEED, CHAOS_WRITES, CHAOS_KEYS, CHAOS_RATE, CHAOS_KILLS override `defaults`."""
        env = os.environ
        seed = int(env.get("CHAOS_SEED") or defaults.pop("seed", None) or random.randrange(10**9))
        opts = cls(seed=seed, **defaults)
        for name, cast in (("writes", int), ("keys", int), ("rate", float), ("kills", int)):
            value = env.get(f"CHAOS_{name.upper()}")
            if value:
                setattr(opts, name, cast(value))
        return opts

    @property
    def rerun(self) -> str:
        return (
            f"CHAOS_SEED={self.seed} CHAOS_WRITES={self.writes} CHAOS_KEYS={self.keys} "
            f"CHAOS_RATE={self.rate:g} CHAOS_KILLS={self.kills} make chaos"
        )


@dataclass
class ChaosReport:
    seed: int
    rerun: str
    failures: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def text(self) -> str:
        lines = [f"chaos run, seed {self.seed} (re-run: {self.rerun})"]
        lines += [f"  {k}: {json.dumps(v, default=str)}" for k, v in self.summary.items()]
        if self.failures:
            lines.append(f"FAILED (seed {self.seed}):")
            lines += [f"  - {f}" for f in self.failures]
        return "\n".join(lines)


CONFIG = """\
[aws]
region = "us-east-1"
endpoint_url = "{endpoint}"

[kafka]
bootstrap_servers = "{bootstrap}"
partitions = {partitions}
{replication}linger_ms = 5

[[tables]]
name = "{table}"

[stream]
lease_table = "{lease_table}"
poll_interval_ms = 100
idle_poll_max_ms = 1000
lease_duration_ms = {lease_ms}

[backfill]
segments = 4
skew_margin_s = 2

[apply]
target = "{target}"
batch_size = 200
batch_window_ms = 100
retry_backoff_max_ms = 2000
# A killed worker's partitions move to the other one after this long.
session_timeout_ms = 6000
heartbeat_interval_ms = 1000

[targets.{target}]
type = "postgres"
dsn = "{dsn}"

[metrics]
port = 0
"""


def run(opts: ChaosOptions, endpoint: str, say: Callable[[str], None] = print) -> ChaosReport:
    report = ChaosReport(opts.seed, opts.rerun)
    say(f"CHAOS_SEED={opts.seed}  (re-run: {opts.rerun})")
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(_workdir(opts.workdir))
        say(f"working in {workdir}")
        _Run(opts, endpoint, workdir, report, say, stack).go()
    report.summary["wall_s"] = round(time.monotonic() - began, 1)
    return report


@contextlib.contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="ddb-bridge-chaos-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Run:
    def __init__(
        self,
        opts: ChaosOptions,
        endpoint: str,
        workdir: Path,
        report: ChaosReport,
        say: Callable[[str], None],
        stack: contextlib.ExitStack,
    ) -> None:
        self.opts, self.endpoint, self.workdir = opts, endpoint, workdir
        self.report, self.say, self.stack = report, say, stack
        self.rng = random.Random(opts.seed)
        suffix = uuid.uuid4().hex[:6]
        self.table = f"chaos_{opts.seed}_{suffix}"
        self.lease_table = f"chaos-leases-{suffix}"
        self.outages: list[dict[str, Any]] = []
        self.injected: tuple[int, int, bytes, bytes] | None = None  # partition, offset, key, value
        self.substituted: list[str] = []
        self.outage_error: str | None = None
        self.kafka_up = threading.Event()  # set while the broker serves
        self.kafka_up.set()

    # -- setup ---------------------------------------------------------------------------

    def go(self) -> None:
        opts, say = self.opts, self.say
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        self.cluster = opts.cluster
        if self.cluster is None:
            self.node = KafkaNode()
            self.stack.callback(self.node.destroy)
            self.node.start(START_TIMEOUT_S)
            bootstrap = self.node.bootstrap
            say(f"own Apache Kafka broker on {bootstrap} (data in {self.node.root})")
        else:
            bootstrap = self.cluster.bootstrap
            say(f"three-node Apache Kafka cluster on {bootstrap}")
        self.broker_faults: list[dict[str, Any]] = []
        from ddb_bridge.services.postgres import postgres_bindir

        bindir = postgres_bindir()
        if bindir is None:
            # It stops and starts its own cluster: an external PG_DSN cannot stand in.
            raise RuntimeError(
                "the chaos test needs PostgreSQL's server binaries (initdb, pg_ctl): "
                "apt-get install --no-install-recommends postgresql (make test installs it)"
            )
        self.pg = PostgresCluster(bindir)
        self.stack.callback(self.pg.destroy)
        self.pg.init()
        self.pg.start()
        say(f"own PostgreSQL on port {self.pg.port}")

        config = self.workdir / "bridge.toml"
        config.write_text(
            CONFIG.format(
                endpoint=self.endpoint,
                bootstrap=bootstrap,
                partitions=opts.partitions,
                # One broker: one replica. A cluster: the bridge's defaults (3, min ISR 2).
                replication="replication_factor = 1\n" if self.cluster is None else "",
                table=self.table,
                lease_table=self.lease_table,
                lease_ms=opts.lease_ms,
                target=TARGET,
                dsn=self.pg.dsn,
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE__")}
        env.update({"PYTHONUNBUFFERED": "1", "AWS_DEFAULT_REGION": "us-east-1"})
        self.env = env
        self.config = config
        self.settings: Settings = load_settings(config)
        self.kafka: KafkaSettings = self.settings.kafka
        self.topic = self.kafka.changes_topic(self.table)
        self.dlq = self.kafka.dlq_topic(self.table)
        self.ddb = boto3.client("dynamodb", endpoint_url=self.endpoint, region_name="us-east-1")

        workload.create_table(self.ddb, self.table)
        live = workload.seed(self.ddb, self.table, opts.keys, self.rng)
        self.seeded = len(live)
        stream_arn = workload.enable_stream(self.ddb, self.table)
        enabled_at = time.time()
        self.create_topics()
        say(f"table {self.table}: {self.seeded} items seeded, stream enabled, topics created")

        sup = Supervisor(self.workdir, config, env)
        self.sup = sup
        self.stack.callback(sup.stop_all, 30.0)
        sup.add("stream", "stream", "--worker-id", "chaos-stream")
        for name in ("apply-a", "apply-b"):
            sup.add(name, "apply", "--target", TARGET)
        workload_s = opts.writes / opts.rate
        backfill_s = 0.3 * workload_s
        # A read budget that keeps the scan going through about half the workload.
        budget = max(2.0, opts.keys * 0.6 / backfill_s)
        sup.add(
            "backfill",
            "backfill",
            "--table",
            self.table,
            "--from",
            "scan",
            "--worker-id",
            "chaos-backfill",
            "--processes",
            "1",
            "--max-items-per-second",
            f"{budget:.1f}",
            "--no-progress",
        )
        self.sampler = Sampler(
            self.ddb,
            self.lease_table,
            self.kafka,
            group_id(TARGET),
            self.topic,
            opts.partitions,
            self.pg.dsn,
            self.table,
            sup.started_at,
        )
        self.sampler.start()
        self.stack.callback(self.sampler.stop_event.set)

        sup.start("stream")
        self.wait("the stream's capture record", lambda: self.captured(stream_arn), 90)
        sup.start("apply-a", "--create-schema")
        self.wait_log("apply-a", "joined its group", 120)
        sup.start("apply-b")
        self.wait_log("apply-b", "joined its group", 120)
        # The back-fill's version sits skew_margin_s below its start: begin only once the
        # stream has been captured for longer than that (the back-fill checks it too).
        time.sleep(max(0.0, enabled_at + self.settings.backfill.skew_margin_s + 1 - time.time()))

        if self.cluster is None:
            schedule = faults.plan(
                self.rng,
                workload_s,
                opts.kills,
                opts.outage_s,
                opts.pg_down_s,
                backfill_window_s=0.8 * backfill_s,
            )
        else:
            schedule = faults.plan_cluster(self.rng, workload_s, opts.broker_down_s)
        say(f"fault schedule (seconds from the writer's start): {schedule.describe()}")
        writer = workload.Writer(
            self.ddb, self.table, opts.keys, live, opts.writes, opts.rate, self.rng.randrange(2**32)
        )
        self.writer = writer
        self.stack.callback(writer.stop_event.set)
        self.t0 = time.monotonic()
        # One clock for the whole report: seconds from the writer's start.
        sup.started_at = self.sampler.started_at = self.t0
        writer.start()
        sup.start("backfill")
        self.execute(schedule)
        say(f"writer done: {dict(writer.counts)}; draining")
        self.drain(stream_arn)
        self.sampler.stop_event.set()
        self.sampler.join(30)
        sup.stop_all()
        self.verify()
        self.check(stream_arn, schedule)

    def create_topics(self) -> None:
        """The change topic with LogAppendTime (each record's timestamp is then the broker's
        append time, which check (a) compares with checkpoint times); the DLQ as the bridge
        makes it."""
        admin = AdminClient({"bootstrap.servers": self.kafka.bootstrap_servers})
        config = {
            "cleanup.policy": "delete",
            "retention.ms": "-1",
            "retention.bytes": "-1",
            "max.message.bytes": str(topic_max_message_bytes(self.kafka)),
            "message.timestamp.type": "LogAppendTime",
        }
        replicas = 1
        if self.cluster is not None:  # as the bridge would make it (kafka_durability.py)
            replicas = 3
            config["min.insync.replicas"] = "2"
        topic = NewTopic(self.topic, self.opts.partitions, replicas, config=config)
        admin.create_topics([topic])[self.topic].result(60)
        ensure_topics(self.kafka, [self.table])

    def captured(self, stream_arn: str) -> bool:
        from connectors.dynamodb.capture import read_capture

        self.fail_on_exits()
        return read_capture(self.ddb, self.lease_table, stream_arn) is not None

    def wait(self, what: str, check: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"seed {self.opts.seed}: timed out waiting for {what}")
            time.sleep(0.2)

    def wait_log(self, name: str, text: str, timeout_s: float) -> None:
        def seen() -> bool:
            self.fail_on_exits()
            return text in self.sup.log_tail(name, 200_000)

        self.wait(f"{name} to log {text!r}", seen, timeout_s)

    def fail_on_exits(self) -> None:
        for ex in self.sup.reap():
            if not ex.expected:
                raise AssertionError(
                    f"seed {self.opts.seed}: {ex.name} exited {ex.code} during start-up: "
                    f"{ex.reason}\n{self.sup.log_tail(ex.name)}"
                )

    # -- the faults ----------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def execute(self, schedule: faults.Schedule) -> None:
        """Run the schedule while the writer writes; restart what dies, record every exit."""
        pending: list[tuple[float, str, Any]] = [(k.at, "kill", k) for k in schedule.kills]
        for o in schedule.outages:
            pending.append((o.at, "down", o))
        pending.append((schedule.inject.at, "inject", schedule.inject))
        pending.sort(key=lambda p: p[0])
        restarts: list[tuple[float, str]] = []
        outages: list[threading.Thread] = []
        if schedule.broker_faults:
            thread = threading.Thread(
                target=self.broker_kills, args=(schedule.broker_faults,), daemon=True
            )
            thread.start()
            outages.append(thread)
        while True:
            self.check_threads()
            self.handle_exits(restarts)
            now = self.elapsed()
            while pending and pending[0][0] <= now:
                _at, kind, what = pending.pop(0)
                if kind == "kill":
                    if not self.kill(what.target, restarts):  # nothing running: a bit later
                        pending.append((now + 2.0, kind, what))
                        pending.sort(key=lambda p: p[0])
                elif kind == "down":
                    # On its own thread: kills, exits and restarts go on while the service is
                    # down and while it starts again (tens of seconds on a loaded machine).
                    thread = threading.Thread(target=self.outage, args=(what,), daemon=True)
                    thread.start()
                    outages.append(thread)
                elif not self.kafka_up.is_set():  # the broker is down: inject once it serves
                    pending.append((now + 2.0, kind, what))
                    pending.sort(key=lambda p: p[0])
                else:
                    self.inject()
            for due, name in [r for r in restarts if r[0] <= self.elapsed()]:
                restarts.remove((due, name))
                self.sup.start(name)
            if self.outage_error is not None:
                raise AssertionError(f"seed {self.opts.seed}: {self.outage_error}")
            busy = any(t.is_alive() for t in outages)
            if not pending and not restarts and not busy and not self.writer.is_alive():
                return
            time.sleep(0.1)

    def check_threads(self) -> None:
        if self.writer.error is not None:
            raise AssertionError(f"seed {self.opts.seed}: writer failed: {self.writer.error!r}")
        if self.sampler.error is not None:
            raise AssertionError(f"seed {self.opts.seed}: sampler failed: {self.sampler.error!r}")

    def handle_exits(self, restarts: list[tuple[float, str]]) -> None:
        for ex in self.sup.reap():
            self.say(f"  {ex.at_s:7.1f}s  {ex.name} exited {ex.code}: {ex.reason}")
            if self.sup.children[ex.name].finished:
                continue
            # What a supervisor does. After any exit but 75 the run has failed (the check
            # says so), but it goes on to the checks, which tell whether anything was lost.
            if self.sup.children[ex.name].starts < 40:
                restarts.append((self.elapsed() + 1.0, ex.name))

    def kill(self, target: str, restarts: list[tuple[float, str]]) -> bool:
        """SIGKILL `target` (another running process when it is not running: the back-fill
        finished, or it waits for its restart) and schedule its restart; False when no
        process runs at all."""
        if not self.sup.running(target):
            alive = [n for n in KILL_TARGETS if self.sup.running(n)]
            if not alive:
                return False
            chosen = self.rng.choice(alive)
            self.substituted.append(f"{target}->{chosen}")
            target = chosen
        self.sup.kill(target)
        delay = self.rng.uniform(0.2, 2.0)
        self.say(f"  {self.elapsed():7.1f}s  SIGKILL {target} (restart in {delay:.1f}s)")
        restarts.append((self.elapsed() + delay, target))
        return True

    def outage(self, outage: faults.Outage) -> None:
        """Stop the service, keep it down `duration_s`, start it again (same ports and data);
        down_s counts from the stop's start to serving again."""
        try:
            stop, start = (
                (self.node.stop, self.node.start)
                if outage.service == "kafka"
                else (self.pg.stop, self.pg.start)
            )
            began = self.elapsed()
            self.say(f"  {began:7.1f}s  stopping {outage.service} for {outage.duration_s:.0f}s")
            if outage.service == "kafka":
                self.kafka_up.clear()
            stop(**({"timeout_s": 10.0} if outage.service == "kafka" else {}))
            time.sleep(outage.duration_s)
            self.say(f"  {self.elapsed():7.1f}s  starting {outage.service} again")
            start(*([START_TIMEOUT_S] if outage.service == "kafka" else []))
            if outage.service == "kafka":
                self.kafka_up.set()
            up = self.elapsed()
            self.say(f"  {up:7.1f}s  {outage.service} back after {up - began:.1f}s")
            self.outages.append(
                {"service": outage.service, "at_s": round(began, 1), "down_s": round(up - began, 1)}
            )
        except BaseException as exc:  # the run fails with it
            self.outage_error = f"{outage.service} outage: {exc!r}"

    def broker_kills(self, planned: tuple[faults.BrokerFault, ...]) -> None:
        """Each fault in turn, the next only once the cluster has all its brokers again:
        SIGKILL the node(s), keep them down `down_s`, start them again (same ports, data)."""
        assert self.cluster is not None
        cluster = self.cluster
        try:
            for fault in planned:
                while self.elapsed() < fault.at:
                    time.sleep(0.1)
                if fault.what == "controller":
                    victims = [cluster.active_controller()]
                else:
                    leader = cluster.leader(self.topic, self.rng.randrange(self.opts.partitions))
                    victims = [leader]
                    if fault.what == "two":
                        victims.append(self.rng.choice([n for n in cluster.nodes if n != leader]))
                began = self.elapsed()
                for node_id in victims:
                    cluster.kill(node_id)
                self.say(f"  {began:7.1f}s  SIGKILL broker(s) {victims} ({fault.what})")
                time.sleep(fault.down_s)
                for node_id in victims:
                    cluster.restart(node_id, START_TIMEOUT_S)
                cluster.wait_brokers(len(cluster.nodes), START_TIMEOUT_S)
                up = self.elapsed()
                self.say(f"  {up:7.1f}s  broker(s) {victims} back after {up - began:.1f}s")
                self.broker_faults.append(
                    {
                        "what": fault.what,
                        "nodes": victims,
                        "at_s": round(began, 1),
                        "down_s": round(up - began, 1),
                    }
                )
        except BaseException as exc:  # the run fails with it
            self.outage_error = f"broker kill: {exc!r}"

    def inject(self) -> None:
        """One record no decoder can read, under a real item's key, into the change topic."""
        key = attrs.canonical_key({workload.KEY: {"S": workload.key_name(0)}})
        value = b"\xff" + self.rng.randbytes(63)  # never the Avro single-object marker C3 01
        producer = Producer(
            {
                "bootstrap.servers": self.kafka.bootstrap_servers,
                "acks": "all",
                "partitioner": "murmur2_random",
            }
        )
        where: list[tuple[int, int]] = []

        def delivered(err: Any, msg: Any) -> None:
            assert err is None, err
            where.append((msg.partition(), msg.offset()))

        producer.produce(self.topic, value=value, key=key, on_delivery=delivered)
        assert producer.flush(120) == 0 and where, "the injected record was not acknowledged"
        self.injected = (*where[0], key, value)
        self.say(f"  {self.elapsed():7.1f}s  injected an undecodable record at {where[0]}")

    # -- the end -------------------------------------------------------------------------

    def drain(self, stream_arn: str) -> None:
        """Until every stream record is checkpointed, the back-fill finished, and apply's
        committed offsets reached the end of every partition (the bridge's own records)."""
        streams = boto3.client(
            "dynamodbstreams", endpoint_url=self.endpoint, region_name="us-east-1"
        )
        last = {}
        for shard, seq in stream_positions(streams, stream_arn):
            last[shard] = max(last.get(shard, 0), int(seq))
        restarts: list[tuple[float, str]] = []
        deadline = time.monotonic() + self.opts.drain_timeout_s
        started = time.monotonic()
        while True:
            self.check_threads()
            self.handle_exits(restarts)
            for due, name in [r for r in restarts if r[0] <= self.elapsed()]:
                restarts.remove((due, name))
                self.sup.start(name)
            state = self.behind(last)
            if not state:
                self.report.summary["drain_s"] = round(time.monotonic() - started, 1)
                return
            if time.monotonic() > deadline:
                self.report.fail(f"not drained after {self.opts.drain_timeout_s:.0f}s: {state}")
                return
            time.sleep(1.0)

    def behind(self, last: dict[str, int]) -> str:
        """What is not done yet ('' when everything is)."""
        if not self.sup.children["backfill"].finished:
            return "back-fill running"
        checkpoints = {}
        for item in self.ddb.scan(TableName=self.lease_table, ConsistentRead=True)["Items"]:
            if "shardId" in item:
                checkpoints[item["shardId"]["S"]] = item["checkpoint"]["S"]
        for shard, seq in last.items():
            cp = checkpoints.get(shard, "")
            if cp != "SHARD_END" and not (cp.isdigit() and int(cp) >= seq):
                return f"shard {shard} checkpoint {cp or 'none'} before {seq}"
        tps = [(self.topic, p) for p in range(self.opts.partitions)]
        with kafka_reads.OffsetFetcher(self.kafka) as offsets:
            committed = offsets.committed(group_id(TARGET), tps)
        with kafka_reads.reader(self.kafka, "chaos-drain") as consumer:
            for t, p in tps:
                high = kafka_reads.watermarks(consumer, t, p)[1]
                if (committed.get((t, p)) or 0) < high:
                    return f"apply at {committed.get((t, p))} of {high} on partition {p}"
        return ""

    def verify(self) -> None:
        cmd = [sys.executable, "-m", "ddb_bridge.cli.main", "verify", "--config", str(self.config)]
        cmd += ["--table", self.table, "--target", TARGET]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300)
        out = (done.stdout + done.stderr).strip()
        self.report.summary["verify"] = {"exit": done.returncode, "says": out.splitlines()[-1:]}
        (self.workdir / "verify.log").write_text(out)
        if done.returncode != 0 or "0 differences" not in out:
            self.report.fail(f"verify exited {done.returncode}:\n{out[-3000:]}")

    def read_topic(self, topic: str) -> list[Any]:
        with kafka_reads.reader(self.kafka, "chaos-read") as consumer:
            ends = {
                p: kafka_reads.watermarks(consumer, topic, p)[1]
                for p in range(self.opts.partitions)
            }
            consumer.assign(
                [TopicPartition(topic, p, OFFSET_BEGINNING) for p, h in ends.items() if h > 0]
            )
            records: list[Any] = []
            wanted = {p for p, h in ends.items() if h > 0}
            deadline = time.monotonic() + 120
            while wanted and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None or msg.error() is not None:
                    continue
                records.append(msg)
                if msg.offset() >= ends[msg.partition()] - 1:
                    wanted.discard(msg.partition())
            assert not wanted, f"could not read {topic} to its end (partitions {wanted})"
        return records

    def check(self, stream_arn: str, schedule: faults.Schedule) -> None:
        report = self.report
        codec = make_codec(self.kafka)
        events: list[invariants.TopicEvent] = []
        origins: Counter[str] = Counter()
        undecodable: list[tuple[int, int]] = []
        for msg in self.read_topic(self.topic):
            try:
                ev = codec.decode(msg.value())
            except Exception:
                undecodable.append((msg.partition(), msg.offset()))
                continue
            origins[ev.origin.value] += 1
            events.append(
                invariants.TopicEvent(
                    msg.partition(),
                    msg.offset(),
                    ev.keys[workload.KEY]["S"],
                    ev.version,
                    ev.shard_id,
                    ev.sequence_number,
                    msg.timestamp()[1],
                )
            )
        assert self.injected is not None
        inj_part, inj_off, inj_key, inj_value = self.injected
        if undecodable != [(inj_part, inj_off)]:
            report.fail(
                f"undecodable records in the topic {undecodable}, injected only one at "
                f"{(inj_part, inj_off)}"
            )

        # The DLQ holds the injected record, byte for byte, as undecodable, and nothing else.
        # Dead letters are at-least-once (design §10.5): a worker killed after its dead letter
        # was acknowledged and before its offset was committed writes it again on restart,
        # with the same origin headers. So: one or more copies, every one of them that record.
        dlq = self.read_topic(self.dlq)
        dlq_ok = bool(dlq) and all(
            letter.value() == inj_value
            and letter.key() == inj_key
            and _header(letter, HEADER_REASON).startswith("undecodable")
            and _header(letter, HEADER_PARTITION) == str(inj_part)
            and _header(letter, HEADER_OFFSET) == str(inj_off)
            for letter in dlq
        )
        if not dlq_ok:
            shown = [(m.key(), m.value()[:16], dict(m.headers() or [])) for m in dlq[:5]]
            report.fail(f"DLQ should hold only the injected record; holds {len(dlq)}: {shown}")

        streams = boto3.client(
            "dynamodbstreams", endpoint_url=self.endpoint, region_name="us-east-1"
        )
        stream: dict[str, list[str]] = {}
        for shard, seq in stream_positions(streams, stream_arn):
            stream.setdefault(shard, []).append(seq)
        samples = self.sampler.samples
        checked_a, bad_a = invariants.stream_checkpoints_behind_acks(
            samples.checkpoints, stream, events
        )
        missing = invariants.stream_records_all_in_topic(stream, events)
        checked_b, bad_b = invariants.apply_offsets_behind_writes(samples.offsets, events)
        for what, bad in (
            ("(a) checkpoint ahead of an unacknowledged record", bad_a),
            ("stream record lost", missing),
            ("(b) committed offset ahead of an unwritten event", bad_b),
            ("target row moved backwards", samples.rows_backwards),
        ):
            for line in bad[:10]:
                report.fail(f"{what}: {line}")
        # Enough checkpoints seen for (a) to mean something: 20 at the full size, fewer for a
        # shorter run, which has fewer pages to checkpoint between its stream kills and its
        # 15 s broker outage (7 were seen at 1,500 writes): never under 5.
        if checked_a < max(5, min(20, self.opts.writes // 300)):
            report.fail(f"(a) checked only {checked_a} sampled checkpoints")
        if checked_b < 50:
            report.fail(f"(b) checked only {checked_b} samples")
        kills = {n: c.kills for n, c in self.sup.children.items()}
        if self.cluster is None and sum(kills.values()) < 10:
            report.fail(f"only {sum(kills.values())} kills: {kills}")
        if self.cluster is not None:
            self.check_cluster(schedule, events)
        for o in self.outages:
            need = self.opts.outage_s if o["service"] == "kafka" else self.opts.pg_down_s
            if o["down_s"] < need:
                report.fail(f"{o['service']} was down {o['down_s']}s only")
        for e in self.sup.exits:
            if not e.expected:
                report.fail(f"{e.name} exited {e.code} at {e.at_s:.1f}s: {e.reason}")
        for name in self.sup.tracebacks():
            report.fail(f"a traceback in the log of {name}:\n{self.sup.log_tail(name)}")

        report.summary.update(
            {
                "seed": self.opts.seed,
                "sizes": {
                    "writes": self.opts.writes,
                    "keys": self.opts.keys,
                    "rate_per_s": self.opts.rate,
                    "seeded_items": self.seeded,
                    "partitions": self.opts.partitions,
                },
                "writes_by_kind": dict(self.writer.counts),
                "kills": kills,
                "kill_substitutions": self.substituted,
                "starts": {n: c.starts for n, c in self.sup.children.items()},
                "outages": self.outages,
                "broker_kills": self.broker_faults,
                "process_exits": [e.as_dict() for e in self.sup.exits],
                "samples": {
                    "a_checkpoints_checked": checked_a,
                    "b_offset_samples_checked": checked_b,
                    "lease_table_reads": samples.lease_reads,
                    "skipped": dict(samples.skipped),
                },
                "events": {"total": len(events), "by_origin": dict(origins)},
                "stream_records": sum(len(v) for v in stream.values()),
                "dlq_records": len(dlq),
                "injected_at": [inj_part, inj_off],
                "schedule": schedule.describe(),
                "clock_tolerance_ms": invariants.CLOCK_TOLERANCE_MS,
                "workdir": str(self.workdir),
            }
        )

    def check_cluster(self, schedule: faults.Schedule, events: list[invariants.TopicEvent]) -> None:
        """What only brokers failing may not change: every fault happened, and — no bridge
        process was killed, so nothing was re-published — every stream record is in the topic
        exactly once, each key's stream events in version order along its partition.

        One re-publication is the bridge's design, not a fault: a shard whose lease lapsed
        (its renewal late on a loaded machine) is read again by its next holder from the
        last checkpoint, and the records the first holder had in flight are then in the
        topic twice (at-least-once, same versions). The stream's log says when that
        happened and from which checkpoint; only records after such a checkpoint may have
        a second copy, and the run's summary counts them."""
        done = [f["what"] for f in self.broker_faults]
        if done != [f.what for f in schedule.broker_faults]:
            self.report.fail(f"broker kills done {done}, planned {schedule.describe()}")
        retaken = invariants.retaken_checkpoints((self.workdir / "stream.log").read_text())
        lines, republished = invariants.stream_records_once_in_order(events, retaken)
        self.report.summary["republished_after_lease_loss"] = republished
        for line in lines[:10]:
            self.report.fail(f"stream record duplicated or out of order: {line}")


def _header(msg: Any, name: str) -> str:
    for k, v in msg.headers() or []:
        if k == name:
            return bytes(v).decode(errors="replace")
    return ""
