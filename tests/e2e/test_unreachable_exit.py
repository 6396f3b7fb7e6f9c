"""A command that cannot reach Kafka at start-up exits with the documented transient code
(75), naming the broker, without a traceback: an operator's supervisor restarts it. The chaos
suite (tests/chaos) restarts processes this way when one starts during a broker outage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ddb_bridge.cli.helptext import EXIT_UNAVAILABLE
from tests.apply_harness import ApplyProcess, write_config
from tests.services import free_port

pytestmark = [pytest.mark.e2e]


def test_apply_started_while_kafka_is_down_exits_75_naming_the_broker(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    config = write_config(tmp_path / "bridge.toml", dead, "null", 'type = "null"', ["t"])
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
        f'type = "postgres"\ndsn = "{dsn}"',
        [table],
    )
    proc = ApplyProcess(config)
    code = proc.wait(120)
    assert code == EXIT_UNAVAILABLE, proc.output
    assert "Traceback" not in proc.output
    assert "target pg" in proc.output and "run it again" in proc.output
