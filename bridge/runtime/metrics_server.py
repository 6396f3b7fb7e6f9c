"""`/metrics` and `/healthz` for a daemon, on `[metrics] host` and a port of its own.

`serve(...)` is the one call a daemon (`stream`, `apply`, a future `audit`) makes before its
main loop. `/metrics` is the Prometheus exposition of `bridge.runtime.metrics.REGISTRY`. `/healthz`
answers 200 `{"status": "ok"}` when the daemon is ready, else 503 with the reason as JSON:
- its main loop has not run yet, or has not made progress for `stall_s` seconds (the clock
  is `ddb_bridge_last_progress_timestamp_seconds{daemon=...}`, set by the loop itself);
- Kafka is unreachable: a metadata request to the bootstrap servers fails. Probed at most
  every `probe_interval_s`, from the HTTP thread, never from the daemon's loop.
The server runs in daemon threads: a stuck scrape never holds the process open.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from bridge.model.errors import ConfigError
from bridge.runtime.metrics import LAST_PROGRESS, REGISTRY, Metrics
from bridge.runtime.settings import KafkaSettings, MetricsSettings

log = logging.getLogger(__name__)

# Each daemon's default port is `[metrics] port` plus its offset, so the daemons of one host
# do not collide by default; a second worker of the same daemon needs --metrics-port.
PORT_OFFSETS = {"stream": 0, "apply": 1, "audit": 2}

Probe = Callable[[], str | None]  # None when reachable, else why not


def kafka_probe(kafka: KafkaSettings, timeout_s: float = 3.0) -> Probe:
    """A metadata request through a lazily made admin client (librdkafka reconnects itself)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from bridge.kafka.publisher import admin_config

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


class Health:
    def __init__(
        self,
        daemon: str,
        probe: Probe | None = None,
        stall_s: float = 60.0,
        probe_interval_s: float = 5.0,
        metrics: Metrics = REGISTRY,
    ) -> None:
        self.daemon = daemon
        self.probe = probe
        self.stall_s = stall_s
        self.probe_interval_s = probe_interval_s
        self.metrics = metrics
        self._lock = threading.Lock()
        self._probed_at = float("-inf")
        self._probe_result: str | None = None

    def check(self) -> str | None:
        """None when ready, else the reason it is not."""
        if self.probe is not None:
            with self._lock:
                if time.monotonic() - self._probed_at >= self.probe_interval_s:
                    self._probe_result = self.probe()
                    self._probed_at = time.monotonic()
                problem = self._probe_result
            if problem is not None:
                return problem
        last = self.metrics.get(LAST_PROGRESS, daemon=self.daemon)
        if last == 0:
            return f"{self.daemon} is starting: its main loop has not run yet"
        idle = time.time() - last
        if idle > self.stall_s:
            return f"{self.daemon} made no progress for {idle:.0f}s (limit {self.stall_s:.0f}s)"
        return None


class MetricsServer:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(health: Health, metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.render_prometheus())
            elif path == "/healthz":
                problem = health.check()
                body: dict[str, Any] = {"daemon": health.daemon}
                body.update(
                    {"status": "ok"}
                    if problem is None
                    else {"status": "unavailable", "reason": problem}
                )
                self._send(
                    200 if problem is None else 503, "application/json", json.dumps(body).encode()
                )
            else:
                self._send(404, "text/plain", b"not found: try /metrics or /healthz\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not worth a log line

    return Handler


def resolve_port(conf: MetricsSettings, daemon: str, override: int | None) -> int:
    """The port this daemon serves on; 0 means metrics are off."""
    if override is not None:
        port = override
    elif conf.port == 0:
        return 0
    else:
        port = conf.port + PORT_OFFSETS.get(daemon, 0)
    if not 0 <= port <= 65535:
        raise ConfigError(f"metrics port {port} is not a TCP port (0 turns metrics off)")
    return port


def serve(
    conf: MetricsSettings,
    daemon: str,
    kafka: KafkaSettings | None,
    port: int | None = None,
    metrics: Metrics = REGISTRY,
) -> MetricsServer | None:
    """Start serving `/metrics` and `/healthz` for `daemon`; None when metrics are off."""
    resolved = resolve_port(conf, daemon, port)
    if resolved == 0:
        log.info("metrics endpoint off", extra={"daemon": daemon})
        return None
    probe = kafka_probe(kafka) if kafka is not None else None
    health = Health(daemon, probe, stall_s=conf.stall_s, metrics=metrics)
    try:
        server = ThreadingHTTPServer((conf.host, resolved), _handler(health, metrics))
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {conf.host}:{resolved} ({exc.strerror}): another process "
            f"(a second `{daemon}` on this host?) holds it; give each process its own "
            "--metrics-port, or --metrics-port 0 to turn metrics off"
        ) from exc
    server.daemon_threads = True
    running = MetricsServer(server)
    log.info(
        "serving metrics",
        extra={"daemon": daemon, "url": f"http://{conf.host}:{running.port}/metrics"},
    )
    return running
