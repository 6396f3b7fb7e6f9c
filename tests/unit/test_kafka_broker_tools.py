"""The test broker's prerequisites: a missing Java or Maven is named, not worked around."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ddb_bridge.services import kafka_jars


def fake_tool(bindir: Path, name: str, script: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_without_java_the_message_names_java_and_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DDB_BRIDGE_KAFKA_JARS", str(tmp_path / "jars"))
    with pytest.raises(kafka_jars.MissingTool, match="`java`.*default-jre-headless"):
        kafka_jars.ensure_jars()


def test_an_old_java_is_refused_with_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tool(tmp_path, "java", "echo 'openjdk version \"11.0.2\" 2019-01-15' >&2")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DDB_BRIDGE_KAFKA_JARS", str(tmp_path / "jars"))
    with pytest.raises(kafka_jars.MissingTool, match="Java 17 or newer.*11.0.2"):
        kafka_jars.ensure_jars()


def test_without_maven_a_first_fetch_names_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tool(tmp_path, "java", "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DDB_BRIDGE_KAFKA_JARS", str(tmp_path / "jars"))
    with pytest.raises(kafka_jars.MissingTool, match="`mvn`.*apt-get install maven"):
        kafka_jars.ensure_jars()
    assert not os.path.exists(tmp_path / "jars")


def test_cached_jars_need_no_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tool(tmp_path, "java", "echo 'openjdk version \"21\" 2023-09-19' >&2")
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / ".complete").write_text(kafka_jars.jars_stamp())
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DDB_BRIDGE_KAFKA_JARS", str(jars))
    assert kafka_jars.ensure_jars() == jars


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """StorageTool reads `-t -abc…` as an option; Kafka draws such a Uuid again, and so do we."""
    import uuid

    from ddb_bridge.services import kafka_broker as broker

    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=bytes(range(16)))])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(drawn))
    assert broker._cluster_id() == "AAECAwQFBgcICQoLDA0ODw"
