"""Through a real broker outage: /livez stays 200 (no restart), /readyz shows the outage.

One Kafka node of this test's own (stopping the session's broker would break the others),
killed and restarted on the same ports and data dir; `stream` (against moto) and `apply`
(into SQLite) as real `ddb-bridge` processes. `[metrics] stall_s` is 3 s and the outage
lasts longer than three of those, so a probe that confused "waiting for Kafka" with "wedged"
would say so within it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddb_bridge.services.kafka_broker import KafkaNode
from tests.metrics_helpers import free_port, healthz, wait_health
from tests.stream_helpers import cli_env, create_stream_table, put_items, write_config
from tests.support.daemon import BridgeDaemon

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STALL_S = 3.0
OUTAGE_S = 12.0


@pytest.fixture
def node() -> Iterator[KafkaNode]:
    own = KafkaNode()
    try:
        own.start()
        yield own
    finally:
        own.destroy()


def test_livez_stays_200_through_a_broker_outage_while_readyz_goes_503_and_back(
    node: KafkaNode,
    ddb_client: Any,
    dynamodb_endpoint: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("probes")
    create_stream_table(ddb_client, table)
    config = write_config(
        tmp_path / "bridge.toml",
        [table],
        unique_name("leases"),
        apply={"target": "lite", "batch_window_ms": 50, "session_timeout_ms": 6000},
        targets={"lite": {"type": "sqlite", "path": tmp_path / "target.db"}},
        metrics={"stall_s": STALL_S},
    )
    env = cli_env(dynamodb_endpoint, node.bootstrap)
    ports = {"stream": free_port(), "apply": free_port()}
    daemons = {
        "stream": BridgeDaemon("stream", config, "--metrics-port", str(ports["stream"]), env=env),
        "apply": BridgeDaemon(
            "apply", config, "--create-schema", "--metrics-port", str(ports["apply"]), env=env
        ),
    }
    try:
        for name, daemon in daemons.items():
            assert wait_health(ports[name], 200, daemon, 90, "/readyz")["status"] == "ok"
            assert healthz(ports[name], "/livez") == (200, {"daemon": name, "status": "ok"})
        put_items(ddb_client, table, 0, 10)

        node.kill()
        # Changes keep coming during the outage: the stream has records it cannot deliver.
        put_items(ddb_client, table, 10, 20)
        reasons: dict[str, str] = {}
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:
            for name, daemon in daemons.items():
                assert daemon.poll() is None, f"{name} exited during the outage:\n{daemon.output}"
                code, body = healthz(ports[name], "/livez")
                assert code == 200, f"{name} /livez during the outage: {code} {body}"
                code, body = healthz(ports[name], "/readyz")
                if code == 503:
                    reasons[name] = body["reason"]
            time.sleep(0.5)
        for name in daemons:
            assert "Kafka" in reasons.get(name, ""), f"{name}: /readyz never said Kafka: {reasons}"
            # /healthz keeps its old meaning: readiness.
            assert healthz(ports[name], "/healthz")[0] == 503

        node.start()
        for name, daemon in daemons.items():
            assert wait_health(ports[name], 200, daemon, 120, "/readyz")["status"] == "ok"
            assert healthz(ports[name], "/livez")[0] == 200
        for name, daemon in daemons.items():
            assert daemon.terminate() == 0, f"{name}:\n{daemon.output}"
    finally:
        for daemon in daemons.values():
            daemon.stop()
