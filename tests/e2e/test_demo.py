"""The demo end to end on the Apache Kafka it starts itself, and `verify` catching a corrupted
target row afterwards; a smaller run on the Tansu fallback broker."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.model import attrs
from ddb_bridge.demo import kafka_broker
from ddb_bridge.demo.orchestrator import DemoOptions, run_demo, summary

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_converges_then_verify_finds_one_corrupted_row(
    tmp_path: Path, dynamodb_endpoint: str, unique_name: Any
) -> None:
    # The demo's own Apache Kafka (what `make demo` starts when Java 17+ is installed), not the
    # session broker: this is the package's launcher and pom, as an installed demo runs them.
    missing = None
    try:
        kafka_broker.check_tools()
    except kafka_broker.MissingTool as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    table = unique_name("demo")
    opts = DemoOptions(
        items=1500,
        write_rate=100,
        min_write_s=4,
        partitions=3,
        timeout_s=240,
        workdir=tmp_path,
        table=table,
        endpoint_url=dynamodb_endpoint,
        broker="kafka",
    )
    said: list[str] = []
    result = run_demo(opts, report=said.append)
    text = summary(result)
    assert result.ok, text
    started = [line for line in said if line.startswith("started ")]
    assert len(started) == 1, said
    assert started[0].startswith(f"started Apache Kafka {kafka_broker.KAFKA_VERSION} (KRaft)")
    assert "0 differences" in text
    assert result.events >= opts.items  # at least one back-fill event per item, plus the stream
    assert result.verify is not None and result.verify.source_items > 0
    assert sum(result.writes.values()) > 0

    # Corrupt exactly one live row of the target, then verify through the CLI.
    db = sqlite3.connect(tmp_path / "target.db")
    pk, sk, item_json = db.execute(
        f'SELECT customer_id, order_id, item FROM "{table}" WHERE deleted = 0 LIMIT 1'
    ).fetchone()
    item = attrs.loads(item_json)
    item["status"] = {"S": "CORRUPTED"}
    db.execute(
        f'UPDATE "{table}" SET item = ? WHERE customer_id = ? AND order_id = ?',
        (attrs.dumps(item), pk, sk),
    )
    db.commit()
    db.close()

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"}
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddb_bridge.cli.main",
            "verify",
            "--table",
            table,
            "--config",
            str(tmp_path / "bridge.toml"),
            "--recheck-delay-s",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "1 differences" in verify.stdout
    listed = [line.strip() for line in verify.stdout.splitlines() if line.startswith("    ")]
    assert listed == [
        f'different {{"customer_id":{{"S":"{pk}"}},"order_id":{{"N":"{sk}"}}}}: status'
    ]
    assert "missing in target    : 0" in verify.stdout
    assert "only in target       : 0" in verify.stdout


def test_demo_on_the_tansu_fallback_broker_converges(
    tmp_path: Path, dynamodb_endpoint: str, unique_name: Any
) -> None:
    """What `make demo` runs on a machine without Java 17+ (here chosen with --broker tansu)."""
    opts = DemoOptions(
        items=300,
        write_rate=50,
        min_write_s=2,
        partitions=2,
        timeout_s=180,
        workdir=tmp_path,
        table=unique_name("demo_tansu"),
        endpoint_url=dynamodb_endpoint,
        broker="tansu",
    )
    said: list[str] = []
    result = run_demo(opts, report=said.append)
    assert result.ok, summary(result)
    assert result.verify is not None and result.verify.differences == 0
    assert result.events >= opts.items
    started = [line for line in said if line.startswith("started ")]
    assert len(started) == 1, said
    assert started[0].startswith("started Tansu, the embedded pip-installed broker, on 127.0.0.1:")
    assert "--broker tansu" in started[0]
