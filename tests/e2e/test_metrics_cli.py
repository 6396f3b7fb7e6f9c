"""`/metrics` and `/healthz` of `ddb-bridge stream` and `ddb-bridge apply`, run as subprocesses
against the real broker and moto: scraped over HTTP and parsed with prometheus_client's parser;
counters follow the workload, the apply lag falls once apply catches up, /healthz is 200 while
running and 503 (with the reason) when Kafka is unreachable; `--log-format json` logs are JSON
lines."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.metrics_helpers import free_port, healthz, sample, scrape, wait_health
from tests.stream_helpers import (
    cli_env,
    create_stream_table,
    launch_stream,
    put_items,
    stop_process,
    write_config,
)
from tests.support.daemon import run_bridge
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e]


def launch_apply(config: Path, env: dict[str, str], log_path: Path, *extra: str) -> Any:
    log = open(log_path, "ab")  # noqa: SIM115 - closed in stop_process
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddb_bridge.cli.main", "apply", "--config", str(config), *extra],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    proc.log_file = log  # type: ignore[attr-defined]
    return proc


def test_stream_and_apply_serve_metrics_that_follow_the_workload(
    ddb_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table = unique_name("metrics")
    create_stream_table(ddb_client, table)
    db = tmp_path / "target.db"
    config = write_config(
        tmp_path / "bridge.toml",
        [table],
        unique_name("leases"),
        apply={"target": "lite", "batch_window_ms": 50, "session_timeout_ms": 6000},
        targets={"lite": {"type": "sqlite", "path": db}},
    )
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    stream_port, apply_port = free_port(), free_port()
    stream_log, apply_log = tmp_path / "stream.log", tmp_path / "apply.log"
    stream = launch_stream(
        config, env, stream_log, "--metrics-port", str(stream_port), "--log-format", "json"
    )
    apply = None
    try:
        wait_health(stream_port, 200, stream)
        put_items(ddb_client, table, 0, 40)
        published = "ddb_bridge_stream_records_published_total"
        wait_until(
            lambda: (sample(stream_port, published, table=table) or 0) >= 40,
            60,
            "the stream's published counter to reach 40",
        )
        held = sample(stream_port, "ddb_bridge_stream_leases_held", table=table)
        assert held is not None and held >= 1
        # Apply starts only now: the events it meets are already ~3 s old, so its first lag
        # reading is at least that, and falls once it applies fresh ones.
        time.sleep(3)
        apply = launch_apply(
            config,
            env,
            apply_log,
            "--create-schema",
            "--metrics-port",
            str(apply_port),
            "--log-format",
            "json",
        )
        applied = "ddb_bridge_apply_events_total"
        labels = {"table": table, "target": "lite"}
        wait_until(
            lambda: (sample(apply_port, applied, **labels) or 0) >= 40,
            90,
            "apply's applied counter to reach 40",
        )
        first_lag = sample(apply_port, "ddb_bridge_apply_lag_seconds", **labels)
        assert first_lag is not None and first_lag >= 3, first_lag
        assert (sample(apply_port, "ddb_bridge_apply_records_received_total", **labels) or 0) >= 40
        assert (sample(apply_port, "ddb_bridge_apply_batch_seconds_count", target="lite") or 0) >= 1
        assert wait_health(apply_port, 200, apply)["status"] == "ok"

        put_items(ddb_client, table, 40, 10)
        wait_until(
            lambda: (sample(apply_port, applied, **labels) or 0) >= 50,
            60,
            "apply's applied counter to reach 50",
        )
        last_lag = sample(apply_port, "ddb_bridge_apply_lag_seconds", **labels)
        assert last_lag is not None and last_lag < first_lag, (first_lag, last_lag)
        assert (sample(stream_port, published, table=table) or 0) >= 50
        publish_count = sample(stream_port, "ddb_bridge_stream_publish_seconds_count", table=table)
        assert publish_count is not None and publish_count >= 1
        shards = [k for k in scrape(stream_port) if k[0] == "ddb_bridge_stream_behind_seconds"]
        assert shards, "no seconds-behind series for the held shard"
        assert healthz(stream_port)[0] == 200
    finally:
        codes = [stop_process(stream)] + ([stop_process(apply)] if apply is not None else [])
    assert codes == [0] * len(codes)
    for log_path in (stream_log, apply_log):
        lines = [ln for ln in log_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        assert lines
        entries = [json.loads(ln) for ln in lines]  # every line is one JSON object
        assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e.get("message") == "serving metrics" for e in map(json.loads, lines))


def test_healthz_is_503_while_kafka_is_unreachable_and_a_taken_port_is_refused(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any, tmp_path: Path
) -> None:
    table = unique_name("nokafka")
    create_stream_table(ddb_client, table)
    config = write_config(tmp_path / "bridge.toml", [table], unique_name("leases"))
    env = cli_env(dynamodb_endpoint, f"127.0.0.1:{free_port()}")  # nothing listens there
    port = free_port()
    stream = launch_stream(config, env, tmp_path / "stream.log", "--metrics-port", str(port))
    try:
        body = wait_health(port, 503, stream, timeout_s=30)
        assert body["status"] == "unavailable"
        assert "Kafka unreachable" in body["reason"] or "starting" in body["reason"], body
        # Kafka stays unreachable: the reason settles on it, never on 200.
        wait_until(
            lambda: "Kafka unreachable" in healthz(port)[1].get("reason", ""),
            20,
            "/healthz to name Kafka",
        )
        second = run_bridge("stream", config, "--metrics-port", str(port), env=env, timeout_s=60)
        assert second.returncode == 2, second.stderr
        assert f"cannot serve metrics on 127.0.0.1:{port}" in second.stderr
        assert "--metrics-port" in second.stderr
    finally:
        stop_process(stream)
