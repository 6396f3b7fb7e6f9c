"""The audit worker's crash window between publishing files and committing their offsets.

A kill -9 rarely lands exactly there, so these tests put the crash there on purpose: the
worker's commit fails right after a segment's files were renamed into place. A new worker,
with a different rotation size (so that, left to itself, it would cut the offsets
elsewhere), must rewrite that segment under the same names: every event once.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from bridge.audit.destination import LocalDestination
from bridge.audit.worker import AuditOptions, AuditWorker, Intent
from bridge.codec.avro import EventCodec
from bridge.runtime.settings import ApplySettings, KafkaSettings, Settings
from tests.audit_helpers import assert_exactly_once, count_records, make_events, publish, read_local

pytestmark = [pytest.mark.integration]


class Crash(Exception):
    """Stands for the process dying."""


class CommitCrashes:
    """The real consumer, except that commit number `on_call` dies instead of committing."""

    def __init__(self, consumer: Any, on_call: int) -> None:
        self._consumer = consumer
        self._on_call = on_call
        self.calls = 0

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self._on_call:
            raise Crash("killed between publishing files and committing their offsets")
        return self._consumer.commit(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def _settings(bootstrap: str, table: str) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, partitions=2, replication_factor=1),
        tables=[{"name": table}],  # type: ignore[list-item]
        apply=ApplySettings(session_timeout_ms=6000, heartbeat_interval_ms=1000),
    )


@pytest.mark.parametrize("fmt", ["avro", "jsonl"])
def test_crash_after_publish_before_commit_rewrites_the_same_files(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path, fmt: Any, caplog: Any
) -> None:
    table = unique_name("audrec")
    settings = _settings(kafka_bootstrap, table)
    truth = publish(settings.kafka, make_events(table, 400))
    root = tmp_path / "archive"
    group = unique_name("audit")

    first = AuditWorker(
        settings, [table], LocalDestination(root), EventCodec(),
        AuditOptions(group=group, fmt=fmt, max_events=30, max_seconds=60),
    )  # fmt: skip
    first.consumer = CommitCrashes(first.consumer, on_call=4)  # type: ignore[assignment]
    with pytest.raises(Crash):
        first.run()
    published = {f.key for f in read_local(root, fmt)}
    # The segment whose commit died: its files are in place, its offset is not committed.
    intents = [Intent.from_bytes(p.read_bytes(), str(p)) for p in (root / "_audit").rglob("*.json")]
    crashed = [i for i in intents if all(f in published for f in i.files)]
    assert crashed, "the crashed segment's files should be published"
    assert 0 < count_records(read_local(root, fmt)) < len(truth)

    second = AuditWorker(
        settings, [table], LocalDestination(root), EventCodec(),
        AuditOptions(group=group, fmt=fmt, max_events=7, max_seconds=1),
    )  # fmt: skip
    caplog.set_level(logging.INFO, logger="bridge.audit.worker")
    thread = threading.Thread(target=second.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 90
    while count_records(read_local(root, fmt)) < len(truth) and time.monotonic() < deadline:
        time.sleep(0.1)
    second.request_stop()
    thread.join(30)
    assert not thread.is_alive()
    files = read_local(root, fmt)
    assert_exactly_once(files, truth)
    assert published <= {f.key for f in files}, "published files were not rewritten in place"
    assert "re-archiving a segment published but not committed" in caplog.text


class CommitRefusedOnce(CommitCrashes):
    """Commit number `on_call` is refused as during a rebalance; later ones go through."""

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self._on_call:
            raise KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
        return self._consumer.commit(*args, **kwargs)


def test_a_refused_commit_holds_the_partition_until_it_goes_through(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path, caplog: Any
) -> None:
    table = unique_name("audhold")
    settings = _settings(kafka_bootstrap, table)
    truth = publish(settings.kafka, make_events(table, 300))
    root = tmp_path / "archive"
    worker = AuditWorker(
        settings, [table], LocalDestination(root), EventCodec(),
        AuditOptions(group=unique_name("audit"), max_events=20, max_seconds=1),
    )  # fmt: skip
    worker.consumer = CommitRefusedOnce(worker.consumer, on_call=3)  # type: ignore[assignment]
    caplog.set_level(logging.INFO, logger="bridge.audit.worker")
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(worker.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 90
    while count_records(read_local(root)) < len(truth) and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.request_stop()
    thread.join(30)
    assert result == [0], "the worker should keep running through a refused commit"
    assert_exactly_once(read_local(root), truth)
    assert "held commit went through; partition resumed" in caplog.text
