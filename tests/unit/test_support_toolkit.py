"""The tests' toolkit itself: `wait_until` and the daemon helper say what went wrong."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from bridge.runtime.config_file import write_config
from tests.support.config_sections import merged
from tests.support.daemon import BridgeDaemon, run_bridge
from tests.support.wait import wait_until


def test_wait_until_returns_once_the_predicate_holds() -> None:
    calls = itertools.count()
    wait_until(lambda: next(calls) >= 3, 5, "the third call", interval=0.001)
    assert next(calls) == 4


def test_wait_until_fails_naming_what_and_the_details() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"waiting for the moon\nseen: 0 moons"):
        wait_until(lambda: False, 0.2, "the moon", details=lambda: "seen: 0 moons")
    assert time.monotonic() - started >= 0.2


def test_a_one_shot_command_gives_its_exit_code_and_output(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bridge.toml", kafka={"partitions": 5})
    done = run_bridge("config show", config, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "partitions" in done.stdout and "5" in done.stdout


def test_a_daemon_that_exits_fails_the_wait_with_its_code_and_log(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text("[kafka]\nno_such_key = 1\n", encoding="utf-8")  # refused at start
    daemon = BridgeDaemon("stream", config, ready="never printed")
    with pytest.raises(AssertionError, match=r"(?s)stream exited 2\b.*no_such_key"):
        daemon.wait_ready(timeout_s=60)
    assert daemon.wait() == 2  # EXIT_CONFIG
    assert daemon.log_path.exists() and "no_such_key" in daemon.output


def test_merged_sections_keep_the_base_keys_a_test_does_not_change() -> None:
    base = {"kafka": {"bootstrap_servers": "b:1", "partitions": 3}, "tables": [{"name": "a"}]}
    out = merged(base, kafka={"partitions": 1}, tables=[{"name": "b"}], apply={"target": "x"})
    assert out == {
        "kafka": {"bootstrap_servers": "b:1", "partitions": 1},
        "tables": [{"name": "b"}],
        "apply": {"target": "x"},
    }
    assert base["kafka"] == {"bootstrap_servers": "b:1", "partitions": 3}  # not changed
