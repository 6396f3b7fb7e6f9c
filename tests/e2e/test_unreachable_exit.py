"""A command that cannot reach Kafka at start-up exits with the documented transient code
(75), naming the broker, without a traceback: an operator's supervisor restarts it. The chaos
suite (tests/chaos) restarts processes this way when one starts during a broker outage."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.runtime.config_file import write_config as write_settings_file
from ddb_bridge.cli.helptext import EXIT_UNAVAILABLE
from ddb_bridge.services.processes import free_port, wait_port
from tests.apply_harness import ApplyProcess, write_config
from tests.support.daemon import BridgeDaemon, run_bridge

pytestmark = [pytest.mark.e2e]


def test_apply_started_while_kafka_is_down_exits_75_naming_the_broker(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    config = write_config(tmp_path / "bridge.toml", dead, "null", {"type": "null"}, ["t"])
    proc = ApplyProcess(config)
    code = proc.wait(120)
    assert code == EXIT_UNAVAILABLE == 75, proc.output
    assert "Traceback" not in proc.output
    assert dead in proc.output and "run it again" in proc.output


def test_apply_started_while_postgresql_is_down_exits_75_naming_the_target(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    table = unique_name("pgdown")
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        "pg",
        {"type": "postgres", "dsn": dsn},
        [table],
    )
    proc = ApplyProcess(config)
    code = proc.wait(120)
    assert code == EXIT_UNAVAILABLE, proc.output
    assert "Traceback" not in proc.output
    assert "target pg" in proc.output and "run it again" in proc.output


def _config_with_dead_kafka(
    tmp_path: Path, endpoint: str = "http://127.0.0.1:1", connect_timeout_s: int = 3
) -> tuple[Path, str]:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    config = write_settings_file(
        tmp_path / "bridge.toml",
        aws={"region": "us-east-1", "endpoint_url": endpoint},
        kafka={"bootstrap_servers": dead, "connect_timeout_s": connect_timeout_s},
        tables=[{"name": "orders", "hash_key": "pk", "hash_key_type": "S"}],
        targets={"local": {"type": "sqlite", "path": tmp_path / "t.db"}},
    )
    return config, dead


@pytest.mark.parametrize(
    "command",
    [
        ["tail", "--table", "orders"],
        ["dlq", "list", "--table", "orders"],
        ["dlq", "redrive", "--table", "orders", "--all"],
        ["replay", "--target", "local", "--to-earliest"],
        ["status"],
        ["apply"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_kafka_down_is_said_once_within_the_connect_timeout_and_exits_75(
    command: list[str], tmp_path: Path
) -> None:
    """Main waited ~30 s and printed ~580 identical librdkafka lines (apply ~780) first."""
    config, dead = _config_with_dead_kafka(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE__")}
    env |= {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "DDB_BRIDGE__METRICS__PORT": "0",
    }
    began = time.monotonic()
    done = run_bridge(command, config, env=env, timeout_s=120)
    took = time.monotonic() - began
    out = done.stdout + done.stderr
    assert done.returncode == EXIT_UNAVAILABLE, out
    assert "Traceback" not in out and "rdkafka" not in out, out
    said = [line for line in out.splitlines() if dead in line]
    assert len(said) == 1 and "connection refused" in said[0] and "run it again" in said[0], out
    # The setting is 3 s; Python's start and imports take the rest. Main took over 30 s.
    assert took < 20, f"took {took:.1f}s:\n{out}"


def test_status_exits_75_when_aws_does_not_answer(kafka_bootstrap: str, tmp_path: Path) -> None:
    config = write_settings_file(
        tmp_path / "bridge.toml",
        aws={"region": "us-east-1", "endpoint_url": f"http://127.0.0.1:{free_port()}"},
        kafka={"bootstrap_servers": kafka_bootstrap},
        tables=[{"name": "orders"}],
        targets={"local": {"type": "sqlite", "path": tmp_path / "t.db"}},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE__")}
    env |= {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    done = run_bridge("status", config, env=env, timeout_s=180)
    out = done.stdout + done.stderr
    assert done.returncode == EXIT_UNAVAILABLE, out
    assert "Traceback" not in out, out


@pytest.mark.parametrize("command", [["apply"], ["audit", "--root", "archive"]], ids=lambda c: c[0])
def test_sigterm_while_still_starting_exits_0(command: list[str], tmp_path: Path) -> None:
    """Both document "SIGTERM ... exits 0", but installed their handlers only once connected:
    a stop during start-up (here: Kafka not answering for 10 s) ended them by the signal
    (-15), which the chaos harness caught as a crash."""
    # Long enough that the stop always comes while apply still waits for Kafka.
    config, _dead = _config_with_dead_kafka(tmp_path, connect_timeout_s=60)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE__")}
    env |= {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    command = [*command, "--metrics-port", str(port)]
    daemon = BridgeDaemon(command[0], config, *command[1:], env=env)
    # /healthz answers before the command reaches Kafka: it is past its imports, starting.
    wait_port("127.0.0.1", port, timeout_s=30)
    code = daemon.terminate(timeout_s=30)
    assert code == 0, daemon.output
    assert "stopped while starting" in daemon.output and "Traceback" not in daemon.output
