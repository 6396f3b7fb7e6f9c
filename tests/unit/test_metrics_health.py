"""The metrics facade over prometheus_client, /healthz's verdicts, and JSON log lines."""

from __future__ import annotations

import json
import logging
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.model.errors import ConfigError
from bridge.runtime.logs import JsonFormatter
from bridge.runtime.metrics import (
    APPLY_BATCH_SECONDS,
    ERRORS,
    LAST_PROGRESS,
    MILLIS_BEHIND,
    Metrics,
)
from bridge.runtime.metrics_server import Health, resolve_port
from bridge.runtime.settings import MetricsSettings


def test_facade_records_into_its_own_prometheus_registry() -> None:
    m = Metrics()
    m.inc(ERRORS, daemon="apply", error="TransientError")
    m.inc(ERRORS, 2, daemon="apply", error="TransientError")
    m.observe(APPLY_BATCH_SECONDS, 0.3, target="t")
    m.set(MILLIS_BEHIND, 1500, table="a", shard="s1")
    assert m.get(ERRORS, daemon="apply", error="TransientError") == 3
    assert m.get(APPLY_BATCH_SECONDS + "_count", target="t") == 1
    families = {f.name: f for f in text_string_to_metric_families(m.render_prometheus().decode())}
    assert families["ddb_bridge_errors"].type == "counter"
    assert families[APPLY_BATCH_SECONDS].type == "histogram"
    m.remove(MILLIS_BEHIND, table="a", shard="s1")
    m.remove(MILLIS_BEHIND, table="a", shard="never")  # nothing to forget: no error
    assert m.get(MILLIS_BEHIND, table="a", shard="s1") == 0
    assert Metrics().get(ERRORS, daemon="apply", error="TransientError") == 0  # not shared


def test_facade_refuses_unknown_metrics_and_wrong_labels() -> None:
    m = Metrics()
    with pytest.raises(KeyError, match="CATALOGUE"):
        m.inc("ddb_bridge_nope_total")
    with pytest.raises(ValueError, match="takes labels"):
        m.inc(ERRORS, daemon="apply")


def test_healthz_verdicts() -> None:
    m = Metrics()
    health = Health("apply", probe=None, stall_s=5, metrics=m)
    assert "starting" in (health.check() or "")
    m.progress("apply")
    assert health.check() is None
    m.set(LAST_PROGRESS, time.time() - 30, daemon="apply")
    assert "no progress for 30s" in (health.check() or "")
    m.progress("apply")
    down = Health("apply", probe=lambda: "Kafka unreachable at x:1: down", metrics=m)
    assert down.check() == "Kafka unreachable at x:1: down"


def test_kafka_probe_is_cached_between_checks() -> None:
    calls: list[int] = []

    def probe() -> str | None:
        calls.append(1)
        return None

    m = Metrics()
    m.progress("stream")
    health = Health("stream", probe=probe, probe_interval_s=60, metrics=m)
    for _ in range(5):
        assert health.check() is None
    assert len(calls) == 1


def test_ports_per_daemon_and_zero_is_off() -> None:
    conf = MetricsSettings()
    assert resolve_port(conf, "stream", None) == 9464
    assert resolve_port(conf, "apply", None) == 9465
    assert resolve_port(conf, "apply", 7000) == 7000
    assert resolve_port(MetricsSettings(port=0), "apply", None) == 0
    with pytest.raises(ConfigError, match="not a TCP port"):
        resolve_port(conf, "apply", 70000)


def test_json_log_lines_carry_context_and_are_redacted() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    record.table = "orders"
    record.dsn = "postgresql://user:s3cret-pw@db/x"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hello you"
    assert entry["level"] == "WARNING"
    assert entry["table"] == "orders"
    assert "s3cret-pw" not in json.dumps(entry)


def test_throttled_aws_calls_count_as_retries_by_api_name() -> None:
    from botocore.exceptions import ClientError

    from bridge.runtime.metrics import AWS_RETRIES, REGISTRY
    from connectors.dynamodb.aws import Backoff, call_with_backoff

    labels = {"call": "GetRecords", "reason": "ThrottlingException"}
    before = REGISTRY.get(AWS_RETRIES, **labels)
    failures = [2]

    def flaky() -> str:
        if failures[0]:
            failures[0] -= 1
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "GetRecords")
        return "page"

    assert call_with_backoff(flaky, "GetRecords shard-7", backoff=Backoff(0.001, 0.001)) == "page"
    assert REGISTRY.get(AWS_RETRIES, **labels) == before + 2
