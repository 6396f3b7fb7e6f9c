"""docker-compose.yml is valid (Debian's docker-compose; no Docker engine runs here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bridge.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_validates() -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (Debian package docker-compose) is not installed")
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_compose_stack_shape() -> None:
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"kafka", "scylla", "dynamodb", "stream", "apply"} <= set(services)
    for infra in ("kafka", "scylla", "dynamodb"):
        assert "healthcheck" in services[infra], infra
    assert "--alternator-port" in services["scylla"]["command"]
    assert services["apply"]["command"][:3] == ["apply", "--target", "scylla"]
    assert "KRaft" not in services["kafka"]["environment"].get("KAFKA_PROCESS_ROLES", "KRaft")


def test_compose_config_file_is_valid() -> None:
    settings = load_settings(ROOT / "docker" / "bridge.toml")
    assert settings.target().type == "scylla"
    assert settings.tables[0].hash_key == "customer_id"
