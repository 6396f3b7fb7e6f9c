"""`/metrics`, `/livez`, `/readyz` and `/healthz` for a daemon, on `[metrics] host` and a port.

`serve(...)` is the one call a daemon (`stream`, `apply`, `audit`, `backfill`) makes before its
main loop. `/metrics` is the Prometheus exposition of `bridge.runtime.metrics.REGISTRY`. The
probes answer 200 `{"status": "ok"}` (or "starting", "waiting"), else 503 with the reason:
- `/livez`, is the process worth keeping: 503 only when its main loop has not turned for
  `stall_s` seconds (the clock is `ddb_bridge_last_progress_timestamp_seconds{daemon=...}`,
  set by the loop itself) and no legitimate wait is in progress (bridge/runtime/waits.py: a
  broker outage, a target's retry backoff). Starting counts as alive: the commands bound
  their own start-up. A Kubernetes liveness probe or Docker's HEALTHCHECK asks this one.
- `/readyz`, does it work now: the loop has started and is not wedged, and every probe the
  daemon handed in answers (Kafka's is bridge/kafka/reach.kafka_probe; apply adds its
  target's, stream and backfill their source's). Probes run at most every
  `probe_interval_s`, from the HTTP thread, never from the daemon's loop.
- `/healthz`, kept for the configurations written before the two: the same as `/readyz`
  (it already went 503 during an outage or a stall), so nothing that polled it changes.
This module imports no Kafka client. The server runs in daemon threads: a stuck scrape never
holds the process open.
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
from bridge.runtime.settings import MetricsSettings
from bridge.runtime.waits import waits_now

log = logging.getLogger(__name__)

# Each daemon's default port is `[metrics] port` plus its offset, so the daemons of one host
# do not collide by default; a second worker of the same daemon needs --metrics-port.
PORT_OFFSETS = {"stream": 0, "apply": 1, "audit": 2, "backfill": 3}

Probe = Callable[[], str | None]  # None when ready, else why not


class Health:
    """The verdicts of `/livez` and `/readyz` (None when fine, else the reason)."""

    def __init__(
        self,
        daemon: str,
        probe: Probe | None = None,
        stall_s: float = 60.0,
        probe_interval_s: float = 5.0,
        metrics: Metrics = REGISTRY,
    ) -> None:
        self.daemon = daemon
        self.stall_s = stall_s
        self.probe_interval_s = probe_interval_s
        self.metrics = metrics
        self._lock = threading.Lock()
        # name -> (probe, when last asked, what it said); Kafka first, so its outage is the
        # reason shown when everything is down.
        self._probes: dict[str, tuple[Probe, float, str | None]] = {}
        if probe is not None:
            self.add_probe("kafka", probe)

    def add_probe(self, name: str, probe: Probe) -> None:
        """Readiness also needs `probe` (a later call with the same name replaces it): apply
        adds its target's once it knows the target."""
        with self._lock:
            self._probes[name] = (probe, float("-inf"), None)

    def _ask(self, name: str) -> str | None:
        with self._lock:
            probe, asked_at, said = self._probes[name]
            if time.monotonic() - asked_at >= self.probe_interval_s:
                try:
                    said = probe()
                except Exception as exc:  # a probe's own bug is a reason, not a dead server
                    said = f"{name} probe failed: {type(exc).__name__}: {exc}"
                self._probes[name] = (probe, time.monotonic(), said)
            return said

    def _stall(self) -> str | None:
        """Why the main loop counts as stalled, None when it turned lately or never yet."""
        last = self.metrics.get(LAST_PROGRESS, daemon=self.daemon)
        idle = time.time() - last
        if last == 0 or idle <= self.stall_s:
            return None
        return f"{self.daemon} made no progress for {idle:.0f}s (limit {self.stall_s:.0f}s)"

    def started(self) -> bool:
        return self.metrics.get(LAST_PROGRESS, daemon=self.daemon) != 0

    def waiting_on(self) -> str | None:
        """What the process waits for on purpose now (the oldest wait), if anything."""
        found = waits_now()
        return found[0][0] if found else None

    def liveness(self) -> str | None:
        """None while the loop turns, starts, or waits legitimately; else why it is wedged."""
        stall = self._stall()
        if stall is None or self.waiting_on() is not None:
            return None
        return f"{stall} and is waiting for nothing: its main loop is stuck"

    def live_report(self) -> tuple[str | None, dict[str, str]]:
        """`/livez`'s verdict and the body that says which kind of alive."""
        problem = self.liveness()
        if problem is not None:
            return problem, {"status": "unavailable", "reason": problem}
        if not self.started():
            return None, {"status": "starting"}
        on = self.waiting_on()
        if on is not None and self._stall() is not None:
            return None, {"status": "waiting", "waiting_on": on}
        return None, {"status": "ok"}

    def readiness(self) -> str | None:
        """None when the daemon works now: every probe answering, started, not wedged. A
        dependency's outage comes first: while starting it is the likelier reason to show."""
        with self._lock:
            names = list(self._probes)
        for name in names:
            problem = self._ask(name)
            if problem is not None:
                return problem
        if not self.started():
            return f"{self.daemon} is starting: its main loop has not run yet"
        stall = self._stall()
        if stall is not None and self.waiting_on() is None:
            return stall
        return None

    def check(self) -> str | None:
        """`/healthz`: readiness, as it always was."""
        return self.readiness()


class MetricsServer:
    def __init__(self, server: ThreadingHTTPServer, health: Health) -> None:
        self._server = server
        self.health = health
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
            elif path == "/livez":
                problem, body = health.live_report()
                self._json(problem, {"daemon": health.daemon, **body})
            elif path in ("/readyz", "/healthz"):
                problem = health.readiness()
                body = {"daemon": health.daemon}
                body.update(
                    {"status": "ok"}
                    if problem is None
                    else {"status": "unavailable", "reason": problem}
                )
                self._json(problem, body)
            else:
                self._send(
                    404, "text/plain", b"not found: try /metrics, /livez, /readyz or /healthz\n"
                )

        def _json(self, problem: str | None, body: dict[str, Any]) -> None:
            code = 200 if problem is None else 503
            self._send(code, "application/json", json.dumps(body).encode())

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
    probe: Probe | None,
    port: int | None = None,
    metrics: Metrics = REGISTRY,
) -> MetricsServer | None:
    """Start serving `/metrics` and the probes for `daemon`; None when metrics are off."""
    resolved = resolve_port(conf, daemon, port)
    if resolved == 0:
        log.info("metrics endpoint off", extra={"daemon": daemon})
        return None
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
    running = MetricsServer(server, health)
    log.info(
        "serving metrics",
        extra={"daemon": daemon, "url": f"http://{conf.host}:{running.port}/metrics"},
    )
    return running
