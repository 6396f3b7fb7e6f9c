"""The demo end to end: the README's `make demo` command on the Apache Kafka it starts itself,
and a smaller run on the Tansu fallback broker, after which `verify` catches a corrupted
target row.

`.ci/run` does not run `make demo` after the suite: the first test here is that run.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.model import attrs
from ddb_bridge.demo.orchestrator import DemoOptions, run_demo, summary
from ddb_bridge.services import kafka_jars

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# What `make demo DEMO_ARGS=...` passes to `ddb-bridge demo`: a small size, the broker it
# chooses itself (Apache Kafka when Java 17+ runs it), its own moto and SQLite.
DEMO_ARGS = ["--items", "1500", "--write-rate", "100", "--min-write-seconds", "4"]
DEMO_ARGS += ["--partitions", "3", "--timeout-s", "300"]


def summary_number(text: str, label: str) -> int:
    """A figure of the demo's summary, e.g. `  items seeded          : 1,500`."""
    found = re.search(rf"^  {re.escape(label)}\s*: ([\d,]+)", text, re.MULTILINE)
    assert found is not None, f"no {label!r} in the demo's summary:\n{text}"
    return int(found.group(1).replace(",", ""))


def test_make_demo_converges_on_the_apache_kafka_it_starts(tmp_path: Path) -> None:
    # The demo's own Apache Kafka (what `make demo` starts when Java 17+ is installed), not the
    # session broker: this is the package's launcher and pom, as an installed demo runs them.
    missing = None
    try:
        kafka_jars.check_tools()
    except kafka_jars.MissingTool as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE__")}
    command = [sys.executable, "-m", "ddb_bridge.cli.main", "demo", *DEMO_ARGS]
    demo = subprocess.run(
        [*command, "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=360,
        env=env,
    )
    said = demo.stdout
    assert demo.returncode == 0, said + demo.stderr[-3000:]
    started = [line for line in said.splitlines() if line.startswith("started ")]
    assert len(started) == 2, said  # its moto, then its broker
    assert started[0].startswith("started moto "), said
    assert started[1].startswith(f"started Apache Kafka {kafka_jars.KAFKA_VERSION} (KRaft)")
    assert said.rstrip().endswith("\n0 differences"), said
    # At least one back-fill event per item, plus the stream.
    assert summary_number(said, "events in Kafka") >= summary_number(said, "items seeded") == 1500
    assert summary_number(said, "verified items") > 0
    assert summary_number(said, "writes during run") > 0


def test_demo_on_the_tansu_fallback_broker_converges_then_verify_finds_one_corrupted_row(
    tmp_path: Path, dynamodb_endpoint: str, unique_name: Any
) -> None:
    """What `make demo` runs on a machine without Java 17+ (here chosen with --broker tansu),
    on the session's moto, whose table outlives the demo for `verify` afterwards."""
    table = unique_name("demo_tansu")
    opts = DemoOptions(
        items=300,
        write_rate=50,
        min_write_s=2,
        partitions=2,
        timeout_s=180,
        workdir=tmp_path,
        table=table,
        endpoint_url=dynamodb_endpoint,
        broker="tansu",
    )
    said: list[str] = []
    result = run_demo(opts, report=said.append)
    text = summary(result)
    assert result.ok, text
    assert "0 differences" in text
    assert result.verify is not None and result.verify.differences == 0
    assert result.verify.source_items > 0
    assert result.events >= opts.items
    assert sum(result.writes.values()) > 0
    started = [line for line in said if line.startswith("started ")]
    assert len(started) == 1, said
    assert started[0].startswith("started Tansu, the embedded pip-installed broker, on 127.0.0.1:")
    assert "--broker tansu" in started[0]

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
