from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.model.errors import ConfigError
from bridge.runtime.config_template import render_template
from bridge.runtime.settings import PostgresTarget, load_settings, redacted


def test_template_is_a_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(render_template())
    s = load_settings(path)
    assert s.tables[0].name == "orders"
    assert s.kafka.changes_topic("orders") == "ddb.orders.changes"
    assert s.kafka.dlq_topic("orders") == "ddb.orders.dlq"
    assert s.target().type == "sqlite"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(render_template())
    monkeypatch.setenv("DDB_BRIDGE__KAFKA__BOOTSTRAP_SERVERS", "broker-1:9093")
    monkeypatch.setenv("DDB_BRIDGE__BACKFILL__SEGMENTS", "3")
    s = load_settings(path)
    assert s.kafka.bootstrap_servers == "broker-1:9093"
    assert s.backfill.segments == 3
    assert s.kafka.partitions == 12  # untouched keys still come from the file


def test_unknown_and_invalid_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text('[kafka]\nbootstrap_server = "x"\n')
    with pytest.raises(ConfigError, match="kafka.bootstrap_server"):
        load_settings(path)
    path.write_text("[backfill]\nsegments = 0\n")
    with pytest.raises(ConfigError, match="backfill.segments"):
        load_settings(path)
    path.write_text('[targets.x]\ntype = "oracle"\n')
    with pytest.raises(ConfigError, match=r"targets\.x"):
        load_settings(path)
    path.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings(path)


def test_secrets_are_redacted(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text('[targets.pg]\ntype = "postgres"\ndsn = "postgresql://u:hunter2@h/db"\n')
    s = load_settings(path)
    target = s.target("pg")
    assert isinstance(target, PostgresTarget)
    assert target.dsn.get_secret_value().endswith("hunter2@h/db")
    assert "hunter2" not in json.dumps(redacted(s))


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ddb_bridge.cli.main", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        env=env,
        timeout=60,
    )


def test_cli_init_show_and_config_error_exit_code(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DDB_BRIDGE")}
    assert run_cli("init", cwd=tmp_path, env=env).returncode == 0
    assert run_cli("init", cwd=tmp_path, env=env).returncode == 2  # refuses to overwrite
    shown = run_cli("config", "show", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["kafka"]["topic_prefix"] == "ddb."
    bad = run_cli(
        "config", "show", cwd=tmp_path, env={**env, "DDB_BRIDGE__KAFKA__PARTITIONS": "many"}
    )
    assert bad.returncode == 2
    assert "kafka.partitions" in bad.stderr
