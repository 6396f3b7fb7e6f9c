"""Loading the configuration: `config show` says which file it read (or that it read none),
every setting is checked at load whatever the command, and the default target is the only
one defined."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.runtime.config_file import write_config
from ddb_bridge.cli.helptext import EXIT_CONFIG, EXIT_UNAVAILABLE
from ddb_bridge.services.processes import free_port
from tests.support.daemon import run_bridge

pytestmark = pytest.mark.e2e


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("DDB_BRIDGE")}


def test_config_show_names_the_file_it_read(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mine.toml", kafka={"bootstrap_servers": "b:9092"})
    done = run_bridge("config show", config, env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert str(config) in done.stderr
    assert done.stdout.startswith("{"), "stdout stays the JSON alone"


def test_config_show_without_a_file_says_so(tmp_path: Path) -> None:
    done = run_bridge("config show", None, env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no config file" in done.stderr and "bridge.toml" in done.stderr, done.stderr
    assert "defaults" in done.stderr


def test_config_show_names_bridge_toml_found_in_the_directory(tmp_path: Path) -> None:
    write_config(tmp_path / "bridge.toml")
    done = run_bridge("config show", None, env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "bridge.toml" in done.stderr and "no config file" not in done.stderr


@pytest.mark.parametrize("command", [["config", "show"], ["stream"], ["apply"]])
def test_stream_only_without_item_lifetime_is_a_configuration_error_at_load(
    command: list[str], tmp_path: Path
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[[tables]]\nname = "orders"\nstream_only = true\n')
    done = run_bridge(command, config, env=clean_env(), cwd=tmp_path)
    assert done.returncode == EXIT_CONFIG, done.stdout + done.stderr
    assert "item_lifetime_s" in done.stderr and "orders" in done.stderr, done.stderr
    assert str(config) in done.stderr
    assert "Traceback" not in done.stderr


def test_the_only_target_defined_is_the_default(tmp_path: Path) -> None:
    """Only [targets.pg]: `apply` uses it (here: finds its Kafka down, 75), where main said
    "targets.local: no such target"."""
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "127.0.0.1:{free_port()}"\nconnect_timeout_s = 2\n'
        '[metrics]\nport = 0\n[[tables]]\nname = "orders"\nhash_key = "pk"\n'
        f'[targets.pg]\ntype = "postgres"\ndsn = "postgresql://u@127.0.0.1:{free_port()}/db"\n'
    )
    done = run_bridge("apply", config, env=clean_env(), cwd=tmp_path)
    out = done.stdout + done.stderr
    assert "no such target" not in out, out
    assert done.returncode == EXIT_UNAVAILABLE, out
    shown = run_bridge("config show", config, env=clean_env(), cwd=tmp_path)
    assert '"target": "pg"' in shown.stdout, shown.stdout


def test_several_targets_and_none_chosen_lists_them(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[[tables]]\nname = "orders"\n[metrics]\nport = 0\n'
        '[targets.pg]\ntype = "postgres"\n[targets.archive]\ntype = "sqlite"\n'
    )
    done = run_bridge("apply", config, env=clean_env(), cwd=tmp_path)
    assert done.returncode == EXIT_CONFIG, done.stdout + done.stderr
    assert "archive, pg" in done.stderr and "--target" in done.stderr, done.stderr


def test_an_apply_target_naming_no_target_fails_at_load(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[apply]\ntarget = "pgg"\n[targets.pg]\ntype = "postgres"\n')
    done = run_bridge("config show", config, env=clean_env(), cwd=tmp_path)
    assert done.returncode == EXIT_CONFIG, done.stdout + done.stderr
    assert "pgg" in done.stderr and "pg" in done.stderr, done.stderr
