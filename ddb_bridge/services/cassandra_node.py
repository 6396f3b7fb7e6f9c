"""A real CQL server for the tests: one Apache Cassandra node from Maven Central.

The jars (cassandra-all and its dependencies, named in cassandra/pom.xml beside this module,
package data) are fetched once with Maven into ~/.cache/ddb-bridge/cassandra-<version>/ (or
$XDG_CACHE_HOME) and reused by every later run. The node runs from them with `java -cp`: one
token, its data, commit log, caches and hints in a temp dir, the native (CQL) and storage ports
free loopback ports, a small heap, its log in a file. ScyllaDB cannot run on these machines;
Cassandra speaks the same protocol with the same write-timestamp, tombstone and TTL rules,
which is what the CQL sink relies on.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.runtime import maven_jars
from bridge.runtime.settings import ScyllaTarget
from ddb_bridge.services.kafka_jars import service_jvm_options
from ddb_bridge.services.processes import free_port, kill_process

SERVICE_DIR = Path(__file__).parent / "cassandra"
POM = SERVICE_DIR / "pom.xml"
START_TIMEOUT_S = 240.0  # 7 s measured on an idle 2-core machine; CI shares its two cores


@dataclass(frozen=True)
class CqlEndpoint:
    """Where the CQL tests connect, and what answers there (printed in the test run)."""

    hosts: list[str]
    port: int
    server: str
    timings: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """For the run's summary: the server, and what fetching and starting it cost."""
        fetch_s, start_s = self.timings.get("fetch_s", 0.0), self.timings.get("start_s", 0.0)
        fetched = f"; fetched its jars in {fetch_s:.1f}s" if fetch_s else ""
        return f"{self.server}, started in {start_s:.1f}s{fetched}"

    def target(self, **overrides: Any) -> ScyllaTarget:
        """Sink settings for this server: a one-replica keyspace, consistency ONE."""
        values: dict[str, Any] = {
            "type": "scylla",
            "hosts": self.hosts,
            "port": self.port,
            "keyspace": "ddb_bridge_test",
            "replication": "{'class': 'SimpleStrategy', 'replication_factor': 1}",
            "consistency": "ONE",
        }
        values.update(overrides)
        return ScyllaTarget(**values)

    def toml(self, keyspace: str = "ddb_bridge_test") -> str:
        """The `[targets.x]` body of a bridge.toml for this server."""
        hosts = ", ".join(f'"{h}"' for h in self.hosts)
        return (
            f'type = "scylla"\nhosts = [{hosts}]\nport = {self.port}\nkeyspace = "{keyspace}"\n'
            "replication = \"{'class': 'SimpleStrategy', 'replication_factor': 1}\"\n"
            'consistency = "ONE"\n'
        )


def version() -> str:
    match = re.search(r"<cassandra.version>([^<]+)</cassandra.version>", POM.read_text())
    if match is None:
        raise RuntimeError(f"{POM}: no <cassandra.version> property")
    return match.group(1)


def missing_tools() -> list[str]:
    return [tool for tool in ("java", "mvn") if shutil.which(tool) is None]


def cache_dir() -> Path:
    return maven_jars.cache_folder(f"cassandra-{version()}")


def fetch_jars() -> tuple[Path, float]:
    """The folder holding every jar the node needs, fetched on first use; and the seconds the
    fetch took (0 when cached). A lock keeps two test runs from fetching at once."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    lib = root / "lib"
    # The marker holds the pom's digest: a changed pom (another version or dependency)
    # fetches again instead of running stale jars.
    stamp = hashlib.sha256(POM.read_bytes()).hexdigest() + "\n"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if maven_jars.cached(lib, stamp):
            return lib, 0.0
        started = time.monotonic()

        def failed(code: int, output: str) -> Exception:
            return RuntimeError(
                f"mvn could not fetch Cassandra {version()} ({POM}), exit {code}:\n{output}"
            )

        maven_jars.fetch(
            "mvn", POM, lib, stamp, goals=["dependency:copy-dependencies"], failed=failed
        )
        return lib, time.monotonic() - started


def _yaml(root: Path, native_port: int, storage_port: int, password_auth: bool) -> str:
    data = root / "data"
    # With PasswordAuthenticator the node creates the superuser cassandra/cassandra.
    authenticator = "PasswordAuthenticator" if password_auth else "AllowAllAuthenticator"
    return f"""\
cluster_name: ddb-bridge-test
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
auto_bootstrap: false
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:{storage_port}"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: {storage_port}
native_transport_port: {native_port}
start_native_transport: true
data_file_directories: [{data / "data"}]
commitlog_directory: {data / "commitlog"}
saved_caches_directory: {data / "saved_caches"}
hints_directory: {data / "hints"}
commitlog_sync: periodic
commitlog_sync_period: 10000ms
# Small: the node shares two cores and the memory with the whole test run.
memtable_heap_space: 64MiB
memtable_offheap_space: 64MiB
key_cache_size: 8MiB
counter_cache_size: 0MiB
concurrent_reads: 8
concurrent_writes: 8
concurrent_compactors: 1
# Tests create a table each and never drop one to keep: no snapshots to pay for.
auto_snapshot: false
authenticator: {authenticator}
"""


def _die_with_parent() -> None:
    """In the child: be killed when the test run dies, even by SIGKILL, so that no node is
    left holding a gigabyte of memory and two ports (Linux's PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def jvm_options() -> list[str]:
    lines = (SERVICE_DIR / "jvm17.options").read_text().splitlines()
    # "--add-opens module/package=ALL-UNNAMED" is two arguments to the java launcher.
    return [arg for line in lines if not line.startswith("#") for arg in line.split()]


class CassandraNode:
    """One node in a temp dir; `start` returns when it answers CQL, `stop` kills and removes
    it all."""

    def __init__(self, lib: Path, password_auth: bool = False) -> None:
        self.lib = lib
        self.password_auth = password_auth
        self.root = Path(tempfile.mkdtemp(prefix="ddb-bridge-cassandra-"))
        self.native_port = free_port()
        self.storage_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "system.log"

    def argv(self) -> list[str]:
        config = self.root / "cassandra.yaml"
        config.write_text(_yaml(self.root, self.native_port, self.storage_port, self.password_auth))
        jamm = next(self.lib.glob("jamm-*.jar"), None)
        return [
            "java",
            "-Xms512m",
            "-Xmx1g",
            "-Xss256k",
            "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError",
            *service_jvm_options(),
            *jvm_options(),
            # Cassandra measures memtable sizes with jamm's agent, as its start script does.
            *([f"-javaagent:{jamm}"] if jamm else []),
            f"-Dcassandra.config=file://{config}",
            f"-Dlogback.configurationFile=file://{SERVICE_DIR / 'logback.xml'}",
            f"-Dcassandra.logdir={self.root}",
            "-Dcassandra-foreground=yes",
            # A single fresh node: nothing to gossip with or wait for.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=0",
            "-Dcassandra.superuser_setup_delay_ms=0",
            "-cp",
            f"{self.lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    def log_tail(self, chars: int = 3000) -> str:
        out = ""
        for path in (self.root / "stdout.log", self.log):
            with contextlib.suppress(OSError):
                out += f"--- {path}\n{path.read_text(errors='replace')[-chars:]}\n"
        return out

    def start(self) -> None:
        stdout = open(self.root / "stdout.log", "wb")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            preexec_fn=_die_with_parent,  # a prctl call only: safe between fork and exec
        )
        stdout.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Cassandra exited with {self.proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            # The native port opens last in the start-up sequence; the log line tells that it
            # is this node listening there, not another process on a port we thought free.
            if self._logged("Startup complete"):
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", self.native_port), timeout=0.5).close()
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Cassandra did not start in {START_TIMEOUT_S:.0f}s:\n{self.log_tail()}")

    def _logged(self, text: str) -> bool:
        try:
            return text in self.log.read_text(errors="replace")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the node and delete its dir: its data is thrown away, so a drain and a
        graceful shutdown (up to 30 s at a test worker's end) buy nothing."""
        if self.proc is not None:
            kill_process(self.proc)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_node(password_auth: bool = False) -> Iterator[CqlEndpoint]:
    """Fetch (first time only), start, yield the endpoint, stop and delete the node.
    password_auth: Cassandra's PasswordAuthenticator, superuser cassandra/cassandra."""
    lib, fetch_s = fetch_jars()
    started = time.monotonic()
    node = CassandraNode(lib, password_auth)
    try:
        try:
            node.start()
        except RuntimeError as exc:
            # A free port taken by another process between our check and the node's bind:
            # try once more on new ports; any other failure is reported as it is.
            if "Address already in use" not in str(exc):
                raise
            node.stop()
            node = CassandraNode(lib, password_auth)
            node.start()
        start_s = time.monotonic() - started
        yield CqlEndpoint(
            hosts=["127.0.0.1"],
            port=node.native_port,
            server=f"Apache Cassandra {version()} (single node, 127.0.0.1:{node.native_port}"
            + (", PasswordAuthenticator)" if password_auth else ")"),
            timings={"fetch_s": fetch_s, "start_s": start_s},
        )
    finally:
        node.stop()
