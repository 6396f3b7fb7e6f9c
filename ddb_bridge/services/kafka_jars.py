"""Apache Kafka's jars, fetched from Maven Central through kafka_broker.pom.xml (package data,
beside this module) once into a cache folder outside the repository (`$DDB_BRIDGE_KAFKA_JARS`,
default `~/.cache/ddb-bridge/kafka-<version>/`) and reused by every later run; the Java that
runs them, and Kafka's command-line tools (e.g. the consumer-group command) run from them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from bridge.runtime import maven_jars

# Keep in step with kafka.version in the pom (the cache folder is named after it).
KAFKA_VERSION = "4.4.0"
# The pom's bytes are the cache's stamp (jars_stamp): editing even a comment in it fetches the
# jars again, on every machine, once.
POM = Path(__file__).parent / "kafka_broker.pom.xml"
CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


class MissingTool(RuntimeError):
    """Java or Maven is not installed: Apache Kafka cannot be fetched or run."""


def jars_dir() -> Path:
    return maven_jars.cache_folder(f"kafka-{KAFKA_VERSION}", "DDB_BRIDGE_KAFKA_JARS")


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
    major, shown = maven_jars.java_major(java)
    if major is None or major < 17:
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
    return maven_jars.cached(jars_dir(), jars_stamp())


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
    if jars_cached():
        return target
    mvn = _require("mvn", "maven")
    started = time.monotonic()

    def failed(code: int, output: str) -> Exception:
        return RuntimeError(
            f"fetching Apache Kafka {KAFKA_VERSION} with Maven ({POM}) failed "
            f"(exit {code}):\n{output}"
        )

    fetched = maven_jars.fetch(
        mvn,
        POM,
        target,
        jars_stamp(),
        goals=["dependency:copy-dependencies", "-DincludeScope=runtime"],
        failed=failed,
        timeout_s=900,
    )
    if not jars_cached():
        raise RuntimeError(f"{target} is not a complete copy of the jars; delete it and retry")
    if fetched:
        size = sum(f.stat().st_size for f in target.glob("*.jar"))
        FETCHED.append(
            f"fetched {size / 1e6:.0f} MB of jars with Maven into {target} "
            f"in {time.monotonic() - started:.0f}s (once; later runs reuse them)"
        )
    return target


# For the JVMs started here (Kafka's tools; the brokers and Cassandra node of the demo and
# the tests, unless benchmarked): the first JIT tier only. The optimising compiler's work pays
# off in a long busy run, which these never are. Measured on a 2-core machine: a broker's CPU
# to start 5.6 -> 3.5 s, to take and serve 20,000 records 2.1 -> 1.1 s, idle 1.3 -> 0.7 s per
# 30 s; a Cassandra node's start 10.9 -> 8.2 s, 5,000 INSERTs 6.8 -> 3.5 s.
SHORT_LIVED_JVM = ("-XX:TieredStopAtLevel=1",)
# The benchmarks measure the bridge against the broker's and Cassandra's own best speed, so
# they set it to "full" (benchmarks/__init__.py).
SERVICES_JIT_ENV = "DDB_BRIDGE_SERVICES_JIT"


def service_jvm_options() -> tuple[str, ...]:
    """The JIT options of a broker or Cassandra node started here (see SHORT_LIVED_JVM)."""
    return () if os.environ.get(SERVICES_JIT_ENV) == "full" else SHORT_LIVED_JVM


def java_argv(
    main_class: str, *args: str, heap: str = "256m", jvm_options: tuple[str, ...] = ()
) -> list[str]:
    java = _require("java", "default-jre-headless")
    classpath = str(ensure_jars() / "*")
    return [
        java,
        f"-Xmx{heap}",
        "-Djava.awt.headless=true",
        *jvm_options,
        "-cp",
        classpath,
        main_class,
        *args,
    ]


def run_tool(main_class: str, *args: str, timeout_s: float = 120.0) -> str:
    """Run one of Kafka's command-line tools to completion; its output, or an error with it."""
    done = subprocess.run(
        java_argv(main_class, *args, jvm_options=SHORT_LIVED_JVM),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"{main_class} {' '.join(args)} exited {done.returncode}:\n{output}")
    return output
