"""Which Kafka broker the demo starts: Apache Kafka when Java 17+ can run it, else Tansu.

`--broker auto` (the default) prefers Apache Kafka, the broker users run in production, and falls
back to the pip-installed Tansu broker when Java 17+ is missing, or when the jars are not cached
and Maven is missing or the fetch fails; the demo prints which one it started and why.
`--broker kafka` fails instead of falling back; `--broker tansu` never touches Java.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from bridge.model.errors import ConfigError, PermanentError
from ddb_bridge.demo import kafka_broker
from ddb_bridge.demo.services import tansu_broker

BrokerMode = Literal["auto", "kafka", "tansu"]
BROKER_MODES: tuple[BrokerMode, ...] = ("auto", "kafka", "tansu")


@dataclass(frozen=True)
class BrokerChoice:
    kind: Literal["kafka", "tansu"]
    why: str


def choose_broker(mode: BrokerMode) -> BrokerChoice:
    """Decides from what is installed; starts nothing and downloads nothing."""
    if mode == "tansu":
        return BrokerChoice("tansu", "chosen with --broker tansu")
    try:
        kafka_broker.check_tools()
    except kafka_broker.MissingTool as exc:
        if mode == "kafka":
            raise ConfigError(f"--broker kafka: {exc}") from None
        return BrokerChoice("tansu", str(exc))
    if mode == "kafka":
        return BrokerChoice("kafka", "chosen with --broker kafka")
    return BrokerChoice("kafka", "Java 17+ is installed")


def _fetch_jars(mode: BrokerMode, report: Callable[[str], None]) -> str | None:
    """Fetches the jars if needed; the reason to fall back to Tansu when that fails."""
    if not kafka_broker.jars_cached():
        report(
            f"fetching Apache Kafka {kafka_broker.KAFKA_VERSION} jars with Maven into "
            f"{kafka_broker.jars_dir()} (first run only: about 55 MB)"
        )
    try:
        kafka_broker.ensure_jars()
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        if mode == "kafka":
            raise ConfigError(f"--broker kafka: {exc}") from None
        # The first line says what failed, the last one usually why (Maven's last error).
        lines = [line for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
        said = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1].strip()}"
        return f"fetching Apache Kafka failed: {said}"
    return None


@contextlib.contextmanager
def demo_broker(mode: BrokerMode, report: Callable[[str], None]) -> Iterator[str]:
    """Starts the chosen broker, reports which one it is, yields its bootstrap address."""
    choice = choose_broker(mode)
    if choice.kind == "kafka":
        failed = _fetch_jars(mode, report)
        if failed is not None:
            choice = BrokerChoice("tansu", failed)
    with contextlib.ExitStack() as stack:
        if choice.kind == "kafka":
            try:
                broker = stack.enter_context(kafka_broker.apache_kafka())
            except RuntimeError as exc:  # a broker that will not start is a failed demo
                raise PermanentError(f"demo: {exc}") from None
            report(f"started {broker.describe()} ({choice.why})")
            yield broker.bootstrap
            return
        bootstrap = stack.enter_context(tansu_broker())
        report(f"started Tansu, the embedded pip-installed broker, on {bootstrap} ({choice.why})")
        yield bootstrap
