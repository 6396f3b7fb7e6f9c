"""The Dockerfile, read statically (no Docker engine here), and its HEALTHCHECK command run
against a real metrics endpoint: healthy, unhealthy, and a command with nothing to probe."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.runtime import metrics_server
from bridge.runtime.metrics import LAST_PROGRESS, Metrics
from bridge.runtime.settings import MetricsSettings
from tests.metrics_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages() -> dict[str, str]:
    """Each build stage's name and its instructions."""
    out = {}
    for part in re.split(r"^FROM ", DOCKERFILE, flags=re.M)[1:]:
        named = re.search(r"\bAS (\S+)", part.splitlines()[0])
        assert named, f"a stage without a name: FROM {part.splitlines()[0]}"
        out[named.group(1)] = part
    return out


def test_the_image_runs_the_tested_python() -> None:
    image = re.search(r"^FROM python:(\d+)\.(\d+)-slim", DOCKERFILE, re.M)
    assert image and (int(image.group(1)), int(image.group(2))) == sys.version_info[:2]


def test_the_default_image_has_a_healthcheck_and_the_kcl_variant_has_java() -> None:
    built = stages()
    last = re.split(r"^FROM ", DOCKERFILE, flags=re.M)[-1]
    assert "kcl" in built and not last.startswith("base AS kcl"), "kcl is not the default"
    health = re.search(r"^HEALTHCHECK ((?:.*\\\n)*.*)$", built["base"], re.M)
    assert health and '["python", "-m", "ddb_bridge.healthcheck"]' in health.group(1)
    assert re.search(r"openjdk-17-jre-headless|default-jre-headless", built["kcl"])
    assert "'.[kcl]'" in built["kcl"]


def serve(state: str = "ok") -> metrics_server.MetricsServer:
    """A daemon's endpoint: "ok", "wedged" (no progress for 10 minutes), or "kafka down"
    (its loop turns, its Kafka probe fails: an outage)."""
    metrics = Metrics()
    metrics.progress("apply")
    if state == "wedged":
        metrics.set(LAST_PROGRESS, time.time() - 600, daemon="apply")
    probe = (lambda: "Kafka unreachable at x:1: down") if state == "kafka down" else None
    server = metrics_server.serve(
        MetricsSettings(), "apply", probe, port=free_port(), metrics=metrics
    )
    assert server is not None
    return server


def healthcheck(*args: str, cmdline: str | None = None, tmp: Path | None = None) -> int:
    env = {"PATH": "/usr/bin:/bin", "DDB_BRIDGE__METRICS__PORT": "9464"}
    if cmdline is not None and tmp is not None:
        (tmp / "cmdline").write_bytes(cmdline.replace(" ", "\0").encode() + b"\0")
        env["DDB_BRIDGE_HEALTHCHECK_CMDLINE"] = str(tmp / "cmdline")
    run = subprocess.run(
        [sys.executable, "-m", "ddb_bridge.healthcheck", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    return run.returncode


@pytest.mark.parametrize(
    ("state", "args", "code"),
    [
        ("ok", [], 0),
        ("wedged", [], 1),
        # Docker's health is liveness (Swarm and autoheal replace an unhealthy container):
        # a broker outage must not cycle every container; --ready asks /readyz instead.
        ("kafka down", [], 0),
        ("kafka down", ["--ready"], 1),
        ("ok", ["--ready"], 0),
    ],
)
def test_healthcheck_asks_livez_or_with_ready_readyz(
    state: str, args: list[str], code: int
) -> None:
    server = serve(state)
    try:
        assert healthcheck(*args, str(server.port)) == code
    finally:
        server.close()


def test_healthcheck_finds_the_port_in_the_containers_command(tmp_path: Path) -> None:
    server = serve()
    try:
        command = f"/usr/local/bin/ddb-bridge apply --target scylla --metrics-port {server.port}"
        assert healthcheck(cmdline=command, tmp=tmp_path) == 0
    finally:
        server.close()
    # Nothing listens there any more: unhealthy.
    assert healthcheck(cmdline=command, tmp=tmp_path) == 1


def test_healthcheck_passes_commands_that_serve_nothing(tmp_path: Path) -> None:
    # A one-shot command (verify) serves no /healthz: its exit code is its health.
    assert healthcheck(cmdline="ddb-bridge verify --table t --target x", tmp=tmp_path) == 0
