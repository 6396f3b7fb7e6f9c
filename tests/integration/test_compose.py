"""docker-compose.yml is valid (Debian's docker-compose; no Docker engine runs here)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.runtime import metrics_server
from bridge.runtime.metrics import CATALOGUE
from bridge.runtime.metrics_server import PORT_OFFSETS
from bridge.runtime.settings import MetricsSettings, load_settings
from ddb_bridge.cli.main import build_parser
from ddb_bridge.services.kafka_jars import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "ddb-bridge-dashboard.json"
ALERTS = ROOT / "docker" / "prometheus" / "alerts.yml"


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
        service = services[name]  # every daemon that serves metrics runs in the stack
        assert service["ports"] == [f"{port + offset}:{port + offset}"], name
        if service.get("restart") == "no":
            continue  # a one-shot command (backfill): no health to keep
        assert service["depends_on"]["seed"] == {"condition": "service_completed_successfully"}
        probe = service["healthcheck"]["test"]
        assert probe == ["CMD", "python", "-m", "ddb_bridge.healthcheck", str(port + offset)], (
            name,
            probe,
        )
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
        == {"stream:9464", "apply:9465", "audit:9466", "backfill:9467"}
        == {f"{name}:{port + offset}" for name, offset in PORT_OFFSETS.items()}
    )
    grafana_mounts = " ".join(services["grafana"]["volumes"])
    assert "./docker/grafana/ddb-bridge-dashboard.json:" in grafana_mounts
    datasource = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["type"] == "prometheus"
    dashboard = json.loads(DASHBOARD.read_text())
    # Provisioned, the dashboard's datasource variable picks the stack's (only) Prometheus.
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "DS_PROMETHEUS"]
    assert (variable["type"], variable["query"]) == ("datasource", datasource["type"])


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


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_texts() -> list[str]:
    """Each alert's expression, and its annotations (they may query too)."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [
        text
        for group in groups
        for rule in group["rules"]
        for text in [rule["expr"], *rule.get("annotations", {}).values()]
    ]


def test_dashboard_and_alerts_query_only_metrics_the_bridge_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for wanted in (
        "records in / out",
        "lag",
        "dead letters",
        "dlq depth",
        "errors",
        "behind",
        "getrecords",
        "idle shards",
        "back-fill progress",
        "data-loss",
        "latency",
    ):
        assert wanted in titles, wanted
    exported = exported_names()
    for source, texts in (("dashboard", dashboard_exprs()), ("alert rules", alert_texts())):
        queried = {name for text in texts for name in re.findall(r"\bddb_bridge_[a-z0-9_]+", text)}
        assert len(queried) >= 5, source
        assert queried <= exported, (source, sorted(queried - exported))


def test_dashboard_takes_its_datasource_as_an_input_and_filters_by_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (source,) = dashboard["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    wanted = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel in dashboard["panels"]:
        assert panel["datasource"] == wanted, panel["title"]
        assert all(t["datasource"] == wanted for t in panel["targets"]), panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"DS_PROMETHEUS", "table", "target", "instance"} <= set(variables)
    for name in ("table", "target", "instance"):
        assert variables[name]["datasource"] == wanted, name
    # Every selector of a bridge metric filters by each variable its labels allow.
    labels = {spec.name: spec.labels for spec in CATALOGUE}
    selectors = [
        (name, body)
        for expr in dashboard_exprs()
        for name, body in re.findall(r"\b(ddb_bridge_[a-z0-9_]+)\{([^}]*)\}", expr)
    ]
    assert len(selectors) == sum(e.count("ddb_bridge_") for e in dashboard_exprs())
    for name, body in selectors:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        for label in ("table", "target"):
            if label in labels[base]:
                assert f'{label}=~"${label}"' in body, (name, label)
        assert 'instance=~"$instance"' in body, name


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return services


def test_compose_kafka_is_the_tested_apache_kafka_in_kraft_mode() -> None:
    kafka = compose_services()["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}


def test_compose_keeps_the_durable_history_in_named_volumes() -> None:
    """`docker compose down` (without -v) must not drop the change topics: Kafka's log
    directory, ScyllaDB's data and the audit archive live in named volumes."""
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services, named = spec["services"], set(spec.get("volumes") or {})
    kafka_logs = services["kafka"]["environment"]["KAFKA_LOG_DIRS"]
    audit_root = services["audit"]["command"][services["audit"]["command"].index("--root") + 1]
    for service, path in (
        ("kafka", kafka_logs),
        ("scylla", "/var/lib/scylla"),
        ("audit", audit_root),
    ):
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[service]["volumes"]}
        assert path in mounts, (service, path, mounts)
        assert mounts[path] in named, f"{service}: {path} is not on a named volume"


def test_compose_healthchecks_start_no_jvm() -> None:
    for name, service in compose_services().items():
        check = service.get("healthcheck")
        if check is None or check.get("disable"):
            continue
        probe = " ".join(check["test"])
        for jvm in ("java", "/opt/kafka/bin", "kafka-", ".sh"):
            assert jvm not in probe, (name, probe)


def test_compose_prometheus_loads_the_tested_alert_rules() -> None:
    prometheus = compose_services()["prometheus"]
    mounts = dict(v.rsplit(":", 2)[:2] for v in prometheus["volumes"])
    config = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    assert config["rule_files"] == [mounts["./docker/prometheus/alerts.yml"]]
    # The rules are tested by promtool of the same major version as the image's Prometheus.
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed: `sh tools/ensure-promtool.sh` installs it")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
    tested = re.search(r"version (\d+)\.", version.stdout + version.stderr)
    image = re.fullmatch(r"prom/prometheus:v(\d+)\.\d+\.\d+", prometheus["image"])
    assert tested and image and tested.group(1) == image.group(1), (version.stdout, image)


def _cli_help(argv: list[str]) -> str:
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (argv, result.stderr[-2000:])
    return result.stdout


def test_every_service_command_is_accepted_by_the_cli() -> None:
    """What each bridge service runs parses, and each option it passes is in the --help of
    the command it runs."""
    parser = build_parser()
    checked = set()
    for name, service in compose_services().items():
        if service.get("image") != "ddb-bridge:local":
            continue
        command = service["command"]
        entrypoint = service.get("entrypoint")
        if entrypoint is None:
            parser.parse_args(command)  # exits (SystemExit 2) on anything it does not take
            # The image's ENTRYPOINT: the installed console script.
            help_text = _cli_help([str(Path(sys.executable).with_name("ddb-bridge")), command[0]])
        else:
            assert entrypoint[:2] == ["python", "-m"], name
            help_text = _cli_help([sys.executable, *entrypoint[1:]])
        for option in (a for a in command if a.startswith("--")):
            assert option in help_text, (name, option)
        checked.add(name)
    assert {"seed", "stream", "apply", "audit", "backfill", "verify"} <= checked
