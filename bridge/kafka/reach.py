"""Whether Kafka answers at all, asked once at a command's start and answered in seconds.

With every bootstrap server down, librdkafka retries for its whole request timeout (30 s and
more) before a call fails, logging each attempt. A TCP connection to one bootstrap server is
what every client needs first, so a command tries them all, again and again, for
`kafka.connect_timeout_s`; when none accepts, it stops with one line naming the servers and
what each said, as `Unavailable` (exit 75: "run it again once Kafka is reachable"). With
credentials or TLS configured, the first server that accepts is then asked for metadata by an
authenticated client, so a refused login or certificate ends the command here, naming it
(bridge/kafka/refusals.py).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from bridge.kafka.client_config import admin_config
from bridge.kafka.refusals import RefusalWatch, wait_result
from bridge.model.errors import Unavailable
from bridge.runtime.settings import KafkaSettings


def _address(server: str) -> tuple[str, int]:
    server = server.strip()
    for scheme in ("PLAINTEXT://", "SSL://", "SASL_SSL://", "SASL_PLAINTEXT://"):
        server = server.removeprefix(scheme)
    host, _, port = server.rpartition(":")
    return host.strip("[]") or server, int(port) if port.isdigit() else 9092


def _try(host: str, port: int, timeout_s: float) -> str | None:
    """None when the server accepted a connection, else what went wrong."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except socket.gaierror as exc:
        return f"name not resolved ({exc.strerror})"
    except TimeoutError:
        return "no answer"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()


def ensure_reachable(kafka: KafkaSettings, timeout_s: float | None = None) -> None:
    """Return once one bootstrap server accepts a connection; `Unavailable` after the timeout."""
    limit = kafka.connect_timeout_s if timeout_s is None else timeout_s
    servers = [s for s in kafka.bootstrap_servers.split(",") if s.strip()]
    deadline = time.monotonic() + limit
    said: dict[str, str] = {}
    while True:
        for server in servers:
            left = max(0.1, min(2.0, deadline - time.monotonic()))
            problem = _try(*_address(server), left)
            if problem is None:
                ensure_accepted(kafka, max(limit, 10.0))
                return
            said[server.strip()] = problem
        if time.monotonic() >= deadline:
            tried = ", ".join(f"{server} ({problem})" for server, problem in said.items())
            raise Unavailable(
                f"Kafka did not answer within {limit:g} s: tried {tried}; run it again once "
                "a broker is reachable (or fix [kafka] bootstrap_servers)"
            )
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _authenticates(kafka: KafkaSettings) -> bool:
    protocol = str(kafka.extra.get("security.protocol", "")).upper()
    return kafka.auth != "none" or protocol.startswith("SASL") or protocol == "SSL"


def ensure_accepted(kafka: KafkaSettings, timeout_s: float) -> None:
    """With credentials or TLS configured, one metadata request that the broker must accept:
    a refused login or certificate is a ConfigError naming it (bridge/kafka/refusals.py), not
    a later "transport failure" or a command waiting for ever."""
    if _authenticates(kafka):
        described_cluster(kafka, timeout_s)


def described_cluster(
    kafka: KafkaSettings, timeout_s: float
) -> tuple[AdminClient, RefusalWatch, Any]:
    """An admin client whose refusals are watched, and the cluster as it describes itself: a
    refused login or an unanswered request ends in the errors of bridge/kafka/refusals.py."""
    watch = RefusalWatch(kafka.auth)
    config: dict[str, Any] = {**admin_config(kafka), "error_cb": watch}
    admin = AdminClient(config)
    cluster = wait_result(
        admin.describe_cluster(request_timeout=timeout_s),
        admin,
        watch,
        kafka.bootstrap_servers,
        "describing the cluster",
        timeout_s,
    )
    return admin, watch, cluster


def kafka_probe(kafka: KafkaSettings, timeout_s: float = 3.0) -> Callable[[], str | None]:
    """A daemon's health probe (bridge/runtime/metrics_server.py): None while a metadata request
    through a lazily made admin client answers, else why not (librdkafka reconnects itself)."""
    holder: list[AdminClient] = []

    def probe() -> str | None:
        if not holder:
            holder.append(AdminClient(admin_config(kafka)))
        try:
            holder[0].list_topics(timeout=timeout_s)
        except KafkaException as exc:
            return f"Kafka unreachable at {kafka.bootstrap_servers}: {exc.args[0].str()}"
        return None

    return probe
