"""The dashboard's HTTP server and the sampler that feeds it.

Gathering the status reads DynamoDB and the broker and can take seconds, so a background
thread gathers every `interval_s` and keeps the latest report plus a ring buffer of samples
(apply lag, back-fill items/s, applied events/s); requests only read what is already there
and never wait for a gather. The page (`page.html`, package data) is self-contained:
machines running a migration may be offline.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from bridge.status.report import StatusReport, as_json

# At the default 5 s interval: the last hour of lag.
HISTORY_SAMPLES = 720


@dataclass(frozen=True)
class LagSample:
    at_ms: int
    lag: dict[str, int | None]  # "<table> -> <target>": total apply lag in events
    # Rates since the sample before (None: no sample before, or nothing to compare with).
    backfill_per_s: dict[str, float | None]  # "<table>": items its latest back-fill run read
    applied_per_s: dict[str, float | None]  # "<table> -> <target>": offsets apply committed


@dataclass(frozen=True)
class Counters:
    """The cumulative counts of one report that rates are drawn from."""

    at_ms: int
    backfill: dict[str, tuple[str, int]]  # table: (run id, items read)
    committed: dict[str, int | None]  # "<table> -> <target>": None before the topic exists

    @classmethod
    def of(cls, report: StatusReport) -> Counters:
        backfill = {
            t.table: (t.backfill_runs[-1].run_id, t.backfill_runs[-1].items)
            for t in report.tables
            if t.backfill_runs
        }
        # A partition apply has not committed on yet counts 0: it consumed nothing there
        # (a partition no event reached keeps no commit all along).
        committed: dict[str, int | None] = {
            f"{t.table} -> {target.target}": (
                sum(p.committed or 0 for p in target.partitions) if target.partitions else None
            )
            for t in report.tables
            for target in t.targets
        }
        return cls(report.generated_at_ms, backfill, committed)


def per_s(before: int | None, now: int | None, seconds: float) -> float | None:
    if before is None or now is None or seconds <= 0:
        return None
    return max(0, now - before) / seconds


def rates(
    before: Counters | None, now: Counters
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Back-fill items/s per table and applied events/s per target since `before`."""
    if before is None:
        return dict.fromkeys(now.backfill, None), dict.fromkeys(now.committed, None)
    seconds = (now.at_ms - before.at_ms) / 1000
    backfill: dict[str, float | None] = {}
    for table, (run, items) in now.backfill.items():
        was_run, was_items = before.backfill.get(table, (None, None))
        # Another run's items count from 0 again: no rate across the two.
        backfill[table] = per_s(was_items, items, seconds) if was_run == run else None
    applied = {
        key: per_s(before.committed.get(key), offset, seconds)
        for key, offset in now.committed.items()
    }
    return backfill, applied


class Sampler:
    """Calls `gather` every `interval_s` on its own thread; keeps the last report and lags."""

    def __init__(
        self,
        gather: Callable[[], StatusReport],
        interval_s: float,
        history: int = HISTORY_SAMPLES,
    ) -> None:
        self._gather, self._interval_s = gather, interval_s
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None
        self._error: str | None = None
        self._error_at_ms: int | None = None
        self._history: deque[LagSample] = deque(maxlen=history)
        self._counters: Counters | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-sampler", daemon=True)

    def start(self) -> None:
        """Sample every `interval_s` from now on; the first sample is due one interval from
        now, so take one with `sample_once` before for the page to have something."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop sampling; False when a gather in flight (waiting on a broker or AWS timeout)
        did not end within `timeout_s`."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
        return not self._thread.is_alive()

    def sample_once(self, raising: tuple[type[Exception], ...] = ()) -> None:
        """Gather once and record it; a failure is kept for the page, or raised when it is
        one of `raising`."""
        try:
            report = self._gather()
        except Exception as exc:  # shown on the page; the next sample retries
            if isinstance(exc, raising):
                raise
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
                self._error_at_ms = int(time.time() * 1000)
            return
        lags = {
            f"{t.table} -> {target.target}": target.lag
            for t in report.tables
            for target in t.targets
        }
        counters = Counters.of(report)
        backfill, applied = rates(self._counters, counters)
        self._counters = counters
        with self._lock:
            self._latest = as_json(report)
            self._error = self._error_at_ms = None
            self._history.append(LagSample(report.generated_at_ms, lags, backfill, applied))

    def _run(self) -> None:
        # The caller took the first sample in the foreground (see `start`): wait first.
        started = time.monotonic()
        while not self._stop.wait(max(0.0, self._interval_s - (time.monotonic() - started))):
            started = time.monotonic()
            self.sample_once()

    def snapshot(self) -> dict[str, Any]:
        """What `/api/status` returns: the latest report (None before the first gather),
        the last gather error if the latest attempt failed, and the lag history."""
        with self._lock:
            return {
                "interval_s": self._interval_s,
                "report": self._latest,
                "error": self._error,
                "error_at_ms": self._error_at_ms,
                "history": [dataclasses.asdict(s) for s in self._history],
            }


def page_html() -> bytes:
    return resources.files("ddb_bridge.dashboard").joinpath("page.html").read_bytes()


def make_server(host: str, port: int, sampler: Sampler) -> ThreadingHTTPServer:
    page = page_html()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server dispatches to
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", page)
            elif path == "/api/status":
                body = json.dumps(sampler.snapshot(), sort_keys=True).encode()
                self._send(HTTPStatus.OK, "application/json", body)
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found: " + path.encode())

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a poll every few seconds would flood stderr

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
