"""Whether a target answers now: apply's readiness probe (`/readyz`, bridge/runtime/metrics_server).

Each call asks the target afresh on a connection of its own (never the sink's, which belongs
to apply's writer thread), within `timeout_s`: PostgreSQL and SQLite run `SELECT 1`;
ScyllaDB and Alternator accept a TCP connection on one of their addresses (a CQL session per
probe would cost the cluster more than the probe tells). None when it answers, else one line
saying which target and what went wrong, secrets redacted.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable
from urllib.parse import urlsplit

from bridge.runtime.redact import redact_text
from bridge.runtime.settings import (
    AlternatorTarget,
    PostgresTarget,
    ScyllaTarget,
    SqliteTarget,
    TargetSettings,
)

Probe = Callable[[], str | None]


def _tcp(addresses: list[tuple[str, int]], timeout_s: float) -> str | None:
    said = []
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None
        except OSError as exc:
            said.append(f"{host}:{port} ({(exc.strerror or str(exc) or 'no answer').lower()})")
    return ", ".join(said)


def _postgres(target: PostgresTarget, timeout_s: float) -> str | None:
    import psycopg  # deferred: only a PostgreSQL target needs it

    try:
        with psycopg.connect(
            target.dsn.get_secret_value(), connect_timeout=max(1, int(timeout_s))
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def _sqlite(target: SqliteTarget, timeout_s: float) -> str | None:
    try:
        # Read-only, without creating the file: apply creates it; a probe must not.
        conn = sqlite3.connect(f"file:{target.path}?mode=ro", uri=True, timeout=timeout_s)
        try:
            conn.execute("SELECT 1")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"{target.path}: {exc}"
    return None


def _alternator_address(target: AlternatorTarget) -> tuple[str, int]:
    if target.endpoint_url is None:
        return f"dynamodb.{target.region}.amazonaws.com", 443
    url = urlsplit(target.endpoint_url)
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def target_probe(name: str, target: TargetSettings, timeout_s: float = 3.0) -> Probe | None:
    """The probe of target `name`; None for a target that has nothing to ask (`null`)."""

    def ask() -> str | None:
        if isinstance(target, PostgresTarget):
            problem = _postgres(target, timeout_s)
        elif isinstance(target, SqliteTarget):
            problem = _sqlite(target, timeout_s)
        elif isinstance(target, ScyllaTarget):
            problem = _tcp([(h, target.port) for h in target.hosts], timeout_s)
        elif isinstance(target, AlternatorTarget):
            problem = _tcp([_alternator_address(target)], timeout_s)
        else:
            return None
        if problem is None:
            return None
        return redact_text(f"target {name} ({target.type}) does not answer: {problem}")

    return None if target.type == "null" else ask
