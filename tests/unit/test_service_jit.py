"""The brokers and Cassandra node the tests and the demo start run the JVM's first JIT tier
only (half their CPU on CI's two shared cores); the benchmarks' run both tiers, as they measure
the bridge against those services' best speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddb_bridge.services import kafka_jars
from ddb_bridge.services.cassandra_node import CassandraNode
from ddb_bridge.services.kafka_broker import KafkaNode

FIRST_TIER = "-XX:TieredStopAtLevel=1"


def _argvs(tmp_path: Path) -> dict[str, list[str]]:
    if not kafka_jars.jars_cached():
        pytest.skip("Apache Kafka's jars are not cached yet (make test fetches them)")
    kafka = KafkaNode()
    cassandra = CassandraNode(tmp_path)
    try:
        return {"kafka": kafka.argv(), "cassandra": cassandra.argv()}
    finally:
        kafka.destroy()
        cassandra.stop()


def test_tests_services_run_the_first_jit_tier_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(kafka_jars.SERVICES_JIT_ENV, raising=False)
    for name, argv in _argvs(tmp_path).items():
        assert FIRST_TIER in argv, f"{name}: {argv}"


def test_benchmarked_services_run_both_tiers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(kafka_jars.SERVICES_JIT_ENV, "full")
    for name, argv in _argvs(tmp_path).items():
        assert FIRST_TIER not in argv, f"{name}: {argv}"


def test_the_benchmarks_ask_for_both_tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import benchmarks

    # Set, then deleted: both undone after the test, so what the reload sets does not stay.
    monkeypatch.setenv(kafka_jars.SERVICES_JIT_ENV, "undone after the test")
    monkeypatch.delenv(kafka_jars.SERVICES_JIT_ENV)
    importlib.reload(benchmarks)
    assert kafka_jars.service_jvm_options() == ()
