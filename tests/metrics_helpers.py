"""Reading a daemon's `/metrics` and `/healthz` over HTTP, for the tests of every daemon."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus_client: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(port: int, name: str, **labels: str) -> float | None:
    try:
        return scrape(port).get((name, tuple(sorted(labels.items()))))
    except (urllib.error.URLError, ConnectionError):
        return None  # not listening yet


def healthz(port: int, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of one of the probes: /healthz, /livez or /readyz."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_health(
    port: int, status: int, proc: Any, timeout_s: float = 60.0, path: str = "/healthz"
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited {proc.poll()} while waiting for {path}"
        try:
            code, body = healthz(port, path)
            if code == status:
                return body
            last = (code, body)
        except (urllib.error.URLError, ConnectionError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{path} never answered {status} in {timeout_s}s; last: {last}")
