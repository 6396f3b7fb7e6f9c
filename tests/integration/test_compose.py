"""docker-compose.yml is valid (Debian's docker-compose; no Docker engine runs here)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.runtime import metrics_server
from bridge.runtime.metrics_server import PORT_OFFSETS
from bridge.runtime.settings import MetricsSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "ddb-bridge-dashboard.json"


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


def test_compose_runs_a_whole_migration_with_health_and_monitoring() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"seed", "prometheus", "grafana"} <= set(services)
    seed = services["seed"]
    assert seed["entrypoint"] == ["python", "-m", "ddb_bridge.demo.seed"]
    assert seed["restart"] == "no"
    # From the file itself: the test session turns metrics off through the environment.
    port = tomllib.loads((ROOT / "docker" / "bridge.toml").read_text())["metrics"]["port"]
    for name, offset in PORT_OFFSETS.items():
        if name not in services:
            continue  # a daemon the stack does not run
        service = services[name]
        assert service["depends_on"]["seed"] == {"condition": "service_completed_successfully"}
        probe = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port + offset}/healthz" in probe, (name, probe)
    scraped = {
        target
        for job in yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())[
            "scrape_configs"
        ]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    assert (
        scraped
        == {"stream:9464", "apply:9465"}
        == {f"{name}:{port + PORT_OFFSETS[name]}" for name in ("stream", "apply")}
    )
    grafana_mounts = " ".join(services["grafana"]["volumes"])
    assert "./docker/grafana/ddb-bridge-dashboard.json:" in grafana_mounts
    datasource = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {datasource["uid"]}


def exported_names() -> set[str]:
    """Every sample name a live daemon endpoint can expose, from a scrape over HTTP of the
    server the daemons start (bridge/metrics_server.serve), parsed by prometheus_client."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = metrics_server.serve(MetricsSettings(), "stream", None, port=port)
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.close()
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, [""])
    }


def test_dashboard_queries_only_metrics_the_bridge_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for wanted in ("records in / out", "lag", "dead letters", "errors", "behind", "latency"):
        assert wanted in titles, wanted
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bddb_bridge_[a-z0-9_]+", target["expr"])
    }
    exported = exported_names()
    assert len(queried) >= 10
    assert queried <= exported, sorted(queried - exported)
