"""Apache Kafka for the demo and the tests: a single KRaft node (broker and controller in one JVM).

The jars come from Maven Central through kafka_broker.pom.xml (package data, beside this module),
copied once into a cache folder outside the repository (`$DDB_BRIDGE_KAFKA_JARS`, default
`~/.cache/ddb-bridge/kafka-<version>/`) and reused by every later run. Each test session or
demo run formats a throwaway log dir, starts the node on free loopback ports and stops it at
the end. Kafka's command-line tools (e.g. the consumer-group command) run from the same jars.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
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

from ddb_bridge.demo.services import free_port, stop_process


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


# Keep in step with kafka.version in the pom (the cache folder is named after it).
KAFKA_VERSION = "4.4.0"
# The pom's bytes are the cache's stamp (jars_stamp): editing even a comment in it fetches the
# jars again, on every machine, once.
POM = Path(__file__).parent / "kafka_broker.pom.xml"
CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


class MissingTool(RuntimeError):
    """Java or Maven is not installed: Apache Kafka cannot be fetched or run."""


def jars_dir() -> Path:
    override = os.environ.get("DDB_BRIDGE_KAFKA_JARS")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ddb-bridge" / f"kafka-{KAFKA_VERSION}"


def _require(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise MissingTool(
            f"Apache Kafka needs `{tool}`, which is not installed: "
            f"install {package} (Debian: apt-get install {package}; `make test` does this "
            "as root or with passwordless sudo)"
        )
    return found


def _require_java() -> str:
    java = _require("java", "default-jre-headless")
    shown = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    match = re.search(r'version "(\d+)', shown)
    if match is None or int(match.group(1)) < 17:
        raise MissingTool(
            f"Apache Kafka {KAFKA_VERSION} needs Java 17 or newer; `{java} "
            f"-version` says: {shown.strip()!r}. Install default-jre-headless (Debian 12) or "
            "openjdk-17-jre-headless"
        )
    return java


def jars_stamp() -> str:
    """What the cached copy was fetched for: a changed pom fetches again."""
    return f"{KAFKA_VERSION} {hashlib.sha256(POM.read_bytes()).hexdigest()[:16]}\n"


def jars_cached() -> bool:
    """A complete copy of the jars for this pom is in the cache: no Maven, no download."""
    marker = jars_dir() / ".complete"
    return marker.exists() and marker.read_text() == jars_stamp()


def check_tools() -> None:
    """Raises MissingTool unless Apache Kafka can run here: Java 17+, and Maven when the jars
    still have to be fetched."""
    _require_java()
    if not jars_cached():
        _require("mvn", "maven")


# Set when this process fetched the jars (for the run's summary: the first-run cost).
FETCHED: list[str] = []


def ensure_jars() -> Path:
    """The broker's jars, fetched with Maven on first use (a marker file says the copy is whole
    and which pom it came from). Raises MissingTool when Java 17+, or Maven for a fetch, is
    not installed."""
    _require_java()
    target = jars_dir()
    marker = target / ".complete"
    stamp = jars_stamp()
    if jars_cached():
        return target
    mvn = _require("mvn", "maven")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Copy into a private folder and rename it into place, so two sessions fetching at once
    # never run a half-copied classpath.
    staging = Path(tempfile.mkdtemp(prefix=f".kafka-{KAFKA_VERSION}-", dir=target.parent))
    # Maven runs on a copy of the pom: the installed package may sit in a read-only folder.
    pom_dir = Path(tempfile.mkdtemp(prefix="ddb-bridge-kafka-pom-"))
    pom = pom_dir / "pom.xml"
    shutil.copyfile(POM, pom)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
            cwd=pom_dir,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"fetching Apache Kafka {KAFKA_VERSION} with Maven ({POM}) failed "
                f"(exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
            )
        (staging / ".complete").write_text(stamp)
        size = sum(f.stat().st_size for f in staging.glob("*.jar"))
        if target.exists():  # fetched for another pom: set the old copy aside
            stale = target.with_name(f".stale-{target.name}-{uuid.uuid4().hex[:6]}")
            with contextlib.suppress(OSError):
                target.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
        with contextlib.suppress(OSError):  # another session won the race: use its copy
            staging.rename(target)
            FETCHED.append(
                f"fetched {size / 1e6:.0f} MB of jars with Maven into {target} "
                f"in {time.monotonic() - started:.0f}s (once; later runs reuse them)"
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(pom_dir, ignore_errors=True)
    if not (marker.exists() and marker.read_text() == stamp):
        raise RuntimeError(f"{target} is not a complete copy of the jars; delete it and retry")
    return target


def java_argv(main_class: str, *args: str, heap: str = "256m") -> list[str]:
    java = _require("java", "default-jre-headless")
    classpath = str(ensure_jars() / "*")
    return [java, f"-Xmx{heap}", "-Djava.awt.headless=true", "-cp", classpath, main_class, *args]


def run_tool(main_class: str, *args: str, timeout_s: float = 120.0) -> str:
    """Run one of Kafka's command-line tools to completion; its output, or an error with it."""
    done = subprocess.run(
        java_argv(main_class, *args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"{main_class} {' '.join(args)} exited {done.returncode}:\n{output}")
    return output


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

    def start(self, timeout_s: float = 120.0, wait: bool = True) -> None:
        """Format the data dir the first time, then run the node until it serves (`wait`;
        a cluster's first nodes cannot serve before a quorum of them runs)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if not self._formatted:
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
        argv = java_argv("kafka.Kafka", str(self.properties), heap="512m")
        argv[1:1] = [f"-Dlog4j2.configurationFile={self.log4j}", f"-Dkafka.logs.dir={self.root}"]
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
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, timeout_s: float = 30.0) -> None:
        """A controlled shutdown (SIGTERM; SIGKILL after `timeout_s`); the data dir stays."""
        if self.proc is not None:
            stop_process(self.proc, timeout_s=timeout_s)
            self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def apache_kafka(
    start_timeout_s: float = 120.0, extra_listener: ExtraListener | None = None
) -> Iterator[KafkaBroker]:
    """A formatted, running single-node Kafka; stopped and deleted when the context exits.
    `extra_listener` adds a second client listener (tests/kafka_secured.py: SASL_SSL)."""
    started = time.monotonic()
    node = KafkaNode(extra_listener)
    try:
        node.start(start_timeout_s)
        yield KafkaBroker(
            node.bootstrap, KAFKA_VERSION, time.monotonic() - started, node.log, extra_listener
        )
    finally:
        node.destroy()
