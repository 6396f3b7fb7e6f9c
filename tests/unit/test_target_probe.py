"""apply's target readiness probe (connectors/sinks/reach.py) on the targets testable here."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

from pydantic import SecretStr

from bridge.runtime.settings import NullTarget, PostgresTarget, ScyllaTarget, SqliteTarget
from connectors.sinks.reach import target_probe


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def test_sqlite_answers_once_the_file_exists_and_the_probe_never_creates_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "target.db"
    probe = target_probe("lite", SqliteTarget(type="sqlite", path=str(db)))
    assert probe is not None
    assert "target lite (sqlite) does not answer" in (probe() or "")
    assert not db.exists()
    sqlite3.connect(db).close()
    assert probe() is None


def test_scylla_and_postgres_name_the_target_and_hide_the_password() -> None:
    port = closed_port()
    scylla = target_probe("cql", ScyllaTarget(type="scylla", hosts=["127.0.0.1"], port=port))
    assert scylla is not None
    assert f"target cql (scylla) does not answer: 127.0.0.1:{port}" in (scylla() or "")
    dsn = f"postgresql://bridge:Pg-S3cret@127.0.0.1:{port}/db"
    pg = target_probe("pg", PostgresTarget(type="postgres", dsn=SecretStr(dsn)))
    assert pg is not None
    said = pg() or ""
    assert said.startswith("target pg (postgres) does not answer") and "Pg-S3cret" not in said


def test_a_null_target_has_nothing_to_ask() -> None:
    assert target_probe("none", NullTarget(type="null")) is None
