"""`ddb-bridge demo --broker`: Apache Kafka when it can run here, else Tansu, and says why."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bridge.model.errors import ConfigError
from ddb_bridge.demo import kafka_broker
from ddb_bridge.demo.brokers import choose_broker

JAVA_17 = "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2"
JAVA_11 = "echo 'openjdk version \"11.0.2\" 2019-01-15' >&2"


def fake_tool(bindir: Path, name: str, script: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def bindir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PATH and an empty jar cache; each test adds the tools it has."""
    tools = tmp_path / "bin"
    tools.mkdir()
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.setenv("DDB_BRIDGE_KAFKA_JARS", str(tmp_path / "jars"))
    return tools


def cache_jars() -> None:
    jars = kafka_broker.jars_dir()
    jars.mkdir(parents=True)
    (jars / ".complete").write_text(kafka_broker.jars_stamp())


def test_auto_without_java_falls_back_to_tansu_and_names_java(bindir: Path) -> None:
    choice = choose_broker("auto")
    assert choice.kind == "tansu"
    assert "`java`" in choice.why and "default-jre-headless" in choice.why


def test_auto_with_an_old_java_falls_back_and_names_its_version(bindir: Path) -> None:
    fake_tool(bindir, "java", JAVA_11)
    cache_jars()
    choice = choose_broker("auto")
    assert choice.kind == "tansu"
    assert "Java 17 or newer" in choice.why and "11.0.2" in choice.why


def test_auto_with_java_but_no_cached_jars_and_no_maven_falls_back_and_names_maven(
    bindir: Path,
) -> None:
    fake_tool(bindir, "java", JAVA_17)
    choice = choose_broker("auto")
    assert choice.kind == "tansu"
    assert "`mvn`" in choice.why and "maven" in choice.why


def test_auto_with_java_and_cached_jars_picks_apache_kafka_without_maven(bindir: Path) -> None:
    fake_tool(bindir, "java", JAVA_17)
    cache_jars()
    assert choose_broker("auto").kind == "kafka"


def test_auto_with_java_and_maven_picks_apache_kafka_to_fetch_it(bindir: Path) -> None:
    fake_tool(bindir, "java", JAVA_17)
    fake_tool(bindir, "mvn", "exit 1")
    assert choose_broker("auto").kind == "kafka"


def test_broker_kafka_without_java_fails_instead_of_falling_back(bindir: Path) -> None:
    with pytest.raises(ConfigError, match="--broker kafka: .*`java`"):
        choose_broker("kafka")


def test_broker_tansu_never_looks_for_java(bindir: Path) -> None:
    fake_tool(bindir, "java", JAVA_17)
    cache_jars()
    choice = choose_broker("tansu")
    assert choice.kind == "tansu" and "--broker tansu" in choice.why


def test_a_failed_fetch_in_auto_mode_falls_back_with_the_reason(bindir: Path) -> None:
    from ddb_bridge.demo.brokers import _fetch_jars

    fake_tool(bindir, "java", JAVA_17)
    fake_tool(bindir, "mvn", "echo 'Could not resolve dependencies (offline)'; exit 1")
    said: list[str] = []
    why = _fetch_jars("auto", said.append)
    assert why is not None and why.startswith("fetching Apache Kafka failed: ")
    assert "failed (exit 1)" in why and why.endswith("Could not resolve dependencies (offline)")
    assert said and "first run only" in said[0]
    with pytest.raises(ConfigError, match="(?s)--broker kafka: .*Could not resolve"):
        _fetch_jars("kafka", said.append)
