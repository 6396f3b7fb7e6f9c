"""The metric catalogue follows Prometheus's naming conventions, and exports what operators
alert on: the build's versions, back-fill progress, the data-loss alarm."""

from __future__ import annotations

import platform
import re

import confluent_kafka

import bridge
from bridge.runtime import metrics
from bridge.runtime.metrics import CATALOGUE, Metrics
from tests.support import docs

# Units Prometheus wants converted to a base unit (seconds, bytes) before they are exported.
_NOT_BASE_UNITS = re.compile(
    r"(^|_)(millis|milliseconds|ms|micros|microseconds|us|nanos|ns|minutes|hours|days|"
    r"kb|kib|mb|mib|gb|gib)(_|$)"
)


def test_every_metric_name_carries_a_base_unit() -> None:
    for spec in CATALOGUE:
        assert re.fullmatch(r"ddb_bridge_[a-z0-9_]+", spec.name), spec.name
        assert not _NOT_BASE_UNITS.search(spec.name), f"{spec.name}: export it in seconds/bytes"
        if spec.kind == "counter":
            assert spec.name.endswith("_total"), spec.name
        else:
            assert not spec.name.endswith("_total"), spec.name
        if spec.kind == "histogram":
            assert spec.name.endswith("_seconds"), spec.name


def test_how_far_the_stream_is_behind_is_in_seconds() -> None:
    names = {spec.name for spec in CATALOGUE}
    assert "ddb_bridge_stream_behind_seconds" in names
    m = Metrics()
    m.set(metrics.STREAM_BEHIND_SECONDS, 1.5, table="a", shard="s1")
    assert m.get("ddb_bridge_stream_behind_seconds", table="a", shard="s1") == 1.5


def test_build_info_names_the_versions_it_runs() -> None:
    m = Metrics()
    assert (
        m.get(
            "ddb_bridge_build_info",
            version=bridge.__version__,
            python=platform.python_version(),
            confluent_kafka=confluent_kafka.version()[0],
            librdkafka=confluent_kafka.libversion()[0],
        )
        == 1
    )
    text = m.render_prometheus().decode()
    assert text.count("ddb_bridge_build_info{") == 1, "one series: the running build"


def test_backfill_progress_and_data_loss_are_in_the_catalogue() -> None:
    kinds = {spec.name: (spec.kind, spec.labels) for spec in CATALOGUE}
    assert kinds["ddb_bridge_backfill_items_published_total"] == ("counter", ("table",))
    assert kinds["ddb_bridge_backfill_parts"] == ("gauge", ("table",))
    assert kinds["ddb_bridge_backfill_parts_done"] == ("gauge", ("table",))
    assert kinds["ddb_bridge_stream_data_loss_shards"] == ("gauge", ("table",))


def test_the_readme_lists_every_metric_by_its_exported_name() -> None:
    section = docs.section("Metrics and health")
    listed = set(re.findall(r"`(ddb_bridge_[a-z0-9_]+)`", section))
    names = {spec.name for spec in CATALOGUE}
    assert names - listed == set(), "metrics the README does not list"
    assert listed - names == set(), "the README lists metrics the bridge does not export"
