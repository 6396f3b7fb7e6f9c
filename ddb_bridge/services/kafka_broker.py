"""Apache Kafka for the demo and the tests: a single KRaft node (broker and controller in one JVM).

Its jars come from kafka_jars.py. Each test session or demo run formats a throwaway log dir,
starts the node on free loopback ports and, at the end, kills it and deletes the dir (the data
is never needed again, and a controlled shutdown costs seconds). A node may also serve a
second client listener (kafka_secured.py: SASL_SSL) beside its plaintext one.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ddb_bridge.services.kafka_jars import (
    FETCHED,
    KAFKA_VERSION,
    ensure_jars,
    java_argv,
    run_tool,
    service_jvm_options,
)
from ddb_bridge.services.processes import free_port, kill_process, stop_process


class ExtraListener(Protocol):
    """A second client listener (e.g. SASL_SSL for the secured-Kafka tests): its security
    protocol and address, the broker properties it needs, and the StorageTool format
    arguments (SCRAM users)."""

    @property
    def protocol(self) -> str: ...

    @property
    def bootstrap(self) -> str: ...

    def server_properties(self) -> dict[str, str]: ...

    def format_args(self) -> list[str]: ...


def _cluster_id() -> str:
    # Kafka's Uuid text form: the 16 bytes in URL-safe base64 without padding. One that starts
    # with "-" is drawn again, as Kafka's own Uuid.randomUuid does: StorageTool would read it
    # as an option ("argument --cluster-id/-t: expected one argument"), 1 start in 64.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


LOG4J2 = """\
Configuration:
  Appenders:
    File:
      name: file
      fileName: "{log}"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        ref: file
"""


def _server_properties(
    root: Path,
    port: int,
    controller_port: int,
    extra: ExtraListener | None = None,
    node_id: int = 1,
    voters: str | None = None,
) -> str:
    """One node's properties. Alone (`voters` unset) it is its own quorum and every internal
    topic has one replica; in a cluster (kafka_cluster.py) `voters` names every node's
    controller listener and the internal topics are replicated like a production cluster's."""
    replicas = "1" if voters is None else "3"
    internal_min_isr = "1" if voters is None else "2"
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(root / "data"),
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": internal_min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": internal_min_isr,
        # Fewer offsets partitions than the default 50: creating them is the slow part of the
        # first group join on two cores; group semantics do not depend on the count.
        "offsets.topic.num.partitions": "8",
        # Tests start and stop consumers constantly; don't wait 3 s for more members to join.
        "group.initial.rebalance.delay.ms": "0",
        # As on managed clusters (MSK, Confluent Cloud): the bridge creates its own topics,
        # so a missing topic is an error, not a silent default-configured creation.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
    }
    if voters is not None:
        # A killed broker is fenced (its partitions get new leaders) after this, not Kafka's
        # 9 s: the tests kill leaders and wait for the next one.
        settings["broker.session.timeout.ms"] = "3000"
        settings["broker.heartbeat.interval.ms"] = "500"
        # A follower that stopped fetching leaves the ISR after 5 s, not 30: producers with
        # acks=all then get NOT_ENOUGH_REPLICAS (and retry) instead of waiting for it.
        settings["replica.lag.time.max.ms"] = "5000"
    if extra is not None:  # a second client listener; the node's own traffic stays plaintext
        protocol, address = extra.protocol, extra.bootstrap
        settings["listeners"] += f",{protocol}://{address}"
        settings["advertised.listeners"] += f",{protocol}://{address}"
        settings["listener.security.protocol.map"] += f",{protocol}:{protocol}"
        settings |= extra.server_properties()
    return "".join(f"{k}={v}\n" for k, v in settings.items())


@dataclass
class KafkaBroker:
    bootstrap: str
    version: str
    started_in_s: float
    log_path: Path
    extra_listener: ExtraListener | None = None

    def describe(self) -> str:
        fetched = "".join(f"; {line}" for line in FETCHED)
        return (
            f"Apache Kafka {self.version} (KRaft) on {self.bootstrap}, "
            f"started in {self.started_in_s:.1f}s{fetched}"
        )


def _wait_serving(
    bootstrap: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout_s
    host, port = bootstrap.rsplit(":", 1)
    # The port first (librdkafka would log every refused connection), then a metadata answer.
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"Apache Kafka exited {proc.returncode} while starting:\n{_tail(log)}"
            )
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 0.5):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Apache Kafka did not listen on {bootstrap} in {timeout_s}s:\n{_tail(log)}"
            )
        time.sleep(0.1)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"Apache Kafka exited {proc.returncode} while starting:\n{_tail(log)}"
            )
        try:
            metadata = admin.list_topics(timeout=2)
            if metadata.brokers:
                return
        except Exception:  # not serving yet; the deadline decides
            pass
        time.sleep(0.2)
    raise RuntimeError(f"Apache Kafka did not serve on {bootstrap} in {timeout_s}s:\n{_tail(log)}")


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError as exc:
        return f"(no log: {exc})"


class KafkaNode:
    """One single-node KRaft cluster that can be stopped and started again on the same ports
    and the same data dir (the chaos suite's broker outage: the log must survive a restart).
    `apache_kafka()` is the one-shot form: format, start, stop, delete."""

    def __init__(
        self,
        extra_listener: ExtraListener | None = None,
        *,
        node_id: int = 1,
        ports: tuple[int, int] | None = None,
        voters: str | None = None,
        cluster_id: str | None = None,
    ) -> None:
        """Alone by default; a member of a cluster (kafka_cluster.py) when given its id, its
        (client, controller) ports, the quorum's voters and the cluster's id."""
        ensure_jars()
        self.extra_listener = extra_listener
        self.node_id = node_id
        self.cluster_id = cluster_id or _cluster_id()
        self.root = Path(tempfile.mkdtemp(prefix=f"ddb-bridge-kafka-{node_id}-"))
        self.port, self.controller_port = ports or (free_port(), free_port())
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.properties = self.root / "server.properties"
        self.properties.write_text(
            _server_properties(
                self.root,
                self.port,
                self.controller_port,
                extra_listener,
                node_id=node_id,
                voters=voters,
            )
        )
        self.log = self.root / "server.log"
        self.log4j = self.root / "log4j2.yaml"
        self.log4j.write_text(LOG4J2.format(log=self.log))
        self.proc: subprocess.Popen[bytes] | None = None
        self._formatted = False

    def format(self) -> None:
        """Format the data dir (once): a JVM of its own, so a cluster formats its nodes at
        the same time (KafkaCluster.start)."""
        if self._formatted:
            return
        users = self.extra_listener.format_args() if self.extra_listener is not None else []
        run_tool(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id,
            "-c",
            str(self.properties),
            *users,
        )
        self._formatted = True

    def argv(self) -> list[str]:
        argv = java_argv(
            "kafka.Kafka", str(self.properties), heap="512m", jvm_options=service_jvm_options()
        )
        argv[1:1] = [f"-Dlog4j2.configurationFile={self.log4j}", f"-Dkafka.logs.dir={self.root}"]
        return argv

    def start(self, timeout_s: float = 120.0, wait: bool = True) -> None:
        """Format the data dir the first time, then run the node until it serves (`wait`;
        a cluster's first nodes cannot serve before a quorum of them runs)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.format()
        argv = self.argv()
        with (self.root / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        if wait:
            self.wait_serving(timeout_s)

    def wait_serving(self, timeout_s: float = 120.0) -> None:
        assert self.proc is not None, "start() first"
        _wait_serving(self.bootstrap, self.proc, self.log, timeout_s)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown, no flush — a machine lost (the data dir stays)."""
        if self.proc is not None:
            kill_process(self.proc)
            self.proc = None

    def stop(self, timeout_s: float = 30.0) -> None:
        """A controlled shutdown (SIGTERM; SIGKILL after `timeout_s`); the data dir stays."""
        if self.proc is not None:
            stop_process(self.proc, timeout_s=timeout_s)
            self.proc = None

    def destroy(self) -> None:
        """Kill the node and delete its data dir. No controlled shutdown: the data is thrown
        away, and a graceful stop cost a test session's teardown up to 50 s (a cluster's
        nodes each waiting for a quorum that was going away)."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def apache_kafka(
    start_timeout_s: float = 120.0, extra_listener: ExtraListener | None = None
) -> Iterator[KafkaBroker]:
    """A formatted, running single-node Kafka; killed and deleted when the context exits.
    `extra_listener` adds a second client listener (kafka_secured.py: SASL_SSL)."""
    started = time.monotonic()
    node = KafkaNode(extra_listener)
    try:
        node.start(start_timeout_s)
        yield KafkaBroker(
            node.bootstrap, KAFKA_VERSION, time.monotonic() - started, node.log, extra_listener
        )
    finally:
        node.destroy()
