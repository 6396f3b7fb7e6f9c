"""A target outage under a running `ddb-bridge apply`: /livez says "waiting" (on the target's
retry), never 503; /readyz names the target until PostgreSQL is back.

The server is this run's own PostgreSQL (stopped and started); `[metrics] stall_s` is 4 s (2 s
was once passed by a machine at load 35 before the first retry began) and the outage, 10 s,
lasts well past it, so the pump really sits in the retry loop past the stall limit.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bridge.runtime.settings import NullTarget
from tests.apply_harness import (
    ApplyProcess,
    apply_settings,
    produce,
    random_history,
    write_config,
)
from tests.metrics_helpers import free_port, healthz, wait_health

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_apply_waits_for_a_stopped_target_alive_and_not_ready(
    kafka_bootstrap: str, pg_cluster: Any, pg_dsn: str, unique_name: Any, tmp_path: Path
) -> None:
    if pg_cluster is None:
        pytest.skip("PG_DSN points at an external server: this test stops and starts its own")
    table = unique_name("pgprobe")
    events = random_history(table, seed=7, n_keys=20).events
    port = free_port()
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        "pg",
        {"type": "postgres", "dsn": pg_dsn},
        [table],
        sections={"metrics": {"stall_s": 4}},
    )
    settings = apply_settings(kafka_bootstrap, "pg", NullTarget(type="null"), [table])
    apply = ApplyProcess(config, "--create-schema", "--metrics-port", str(port))
    try:
        apply.wait_joined()
        assert wait_health(port, 200, apply, 60, "/readyz")["status"] == "ok"
        pg_cluster.stop()
        try:
            produce(settings.kafka, events)  # a batch apply cannot write
            waiting_on, reason = None, None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                code, body = healthz(port, "/livez")
                assert code == 200, f"/livez during the target outage: {code} {body}"
                waiting_on = body.get("waiting_on", waiting_on)
                code, body = healthz(port, "/readyz")
                if code == 503:
                    reason = body["reason"]
                time.sleep(0.3)
            assert waiting_on == "target pg (retrying a batch)", waiting_on
            assert reason is not None and reason.startswith(
                "target pg (postgres) does not answer"
            ), reason
        finally:
            pg_cluster.start()
        assert wait_health(port, 200, apply, 60, "/readyz")["status"] == "ok"
        assert healthz(port, "/livez") == (200, {"daemon": "apply", "status": "ok"})
        assert apply.terminate() == 0, apply.output
    finally:
        apply.stop()
