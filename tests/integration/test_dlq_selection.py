"""`dlq redrive` choosing by offset, forcing an undecodable record, and bad choices refused,
on dead letters written by apply's own writer (`KafkaDeadLetters`) to a real broker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bridge.codec.avro import EventCodec
from bridge.dlq.topic import HEADER_REDRIVE_FROM, dlq_depth, read_ledger
from bridge.dlq.writer import DeadLetter, KafkaDeadLetters, RawRecord
from bridge.kafka.publisher import ensure_topics
from bridge.kafka.schema_registry import make_codec
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import NullTarget
from tests.apply_harness import apply_settings, write_config
from tests.kafka_helpers import drain_more
from tests.registry_double import registry_double
from tests.support.daemon import run_bridge

pytestmark = [pytest.mark.integration]


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_bridge(("dlq", *args), config, timeout_s=120, cwd=config.parent)


def test_redrive_by_offset_and_force(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table = unique_name("dlqsel").replace("-", "_")
    settings = apply_settings(kafka_bootstrap, "n", NullTarget(type="null"), [table])
    kafka = settings.kafka
    kafka = kafka.model_copy(update={"partitions": 1})
    config = write_config(tmp_path / "bridge.toml", kafka_bootstrap, "n", {"type": "null"}, [table])
    assert dlq_depth(kafka, table) == 0  # no DLQ topic yet: nothing waits
    missing = _cli(config, "list", "--table", table)
    assert missing.returncode == 2 and kafka.dlq_topic(table) in missing.stderr, missing
    ensure_topics(kafka, [table])

    codec = EventCodec()
    writer = KafkaDeadLetters(kafka, "n")
    values = []
    for i in range(3):
        keys = {"pk": {"S": f"k{i}"}, "sk": {"N": "1"}}
        event = ChangeEvent(
            table=table,
            op=Op.REMOVE,
            keys=keys,
            version=1_760_000_000_000_000 + i,
            origin=Origin.STREAM,
        )
        values.append((attrs.canonical_key(keys), codec.encode(event)))
    values.append((b'{"pk":{"S":"x"},"sk":{"N":"1"}}', b"\x00garbage"))
    for i, (key, value) in enumerate(values):
        raw = RawRecord(
            kafka.changes_topic(table), 0, 100 + i, key, value, (("ddb.op", b"REMOVE"),)
        )
        writer.send(DeadLetter(raw, table, f"reason number {i}", "PermanentError"))
    writer.flush()
    writer.close()
    assert dlq_depth(kafka, table) == 4

    # Bad choices: named, exit 2, nothing published.
    assert _cli(config, "redrive", "--table", table, "--execute").returncode == 2
    nowhere = _cli(config, "redrive", "--table", table, "--offset", "0:99", "--execute")
    assert nowhere.returncode == 2 and "0:99" in nowhere.stderr, nowhere
    assert _cli(config, "show", "--table", table, "--offset", "0:x").returncode == 2

    # One chosen by offset: only it.
    one = _cli(config, "redrive", "--table", table, "--offset", "0:1", "--execute")
    assert one.returncode == 0 and one.stdout.count("re-drove") == 1, one
    assert set(read_ledger(kafka, table)) == {"0:1"}
    assert dlq_depth(kafka, table) == 3
    # The undecodable one: refused, then forced (as it is, byte for byte).
    assert _cli(config, "redrive", "--table", table, "--offset", "0:3", "--execute").returncode == 1
    forced = _cli(config, "redrive", "--table", table, "--offset", "0:3", "--execute", "--force")
    assert forced.returncode == 0, forced
    # --reason alone: of all, the already re-driven ones skipped.
    rest = _cli(config, "redrive", "--table", table, "--reason", "REASON NUMBER", "--execute")
    assert rest.returncode == 0 and rest.stdout.count("re-drove") == 2, rest
    assert "already re-driven: 0:1" in rest.stdout and "already re-driven: 0:3" in rest.stdout
    assert dlq_depth(kafka, table) == 0

    changes = drain_more(kafka_bootstrap, kafka.changes_topic(table))
    got = {dict(m.headers())[HEADER_REDRIVE_FROM].decode(): m for m in changes}
    dlq = kafka.dlq_topic(table)
    assert sorted(got) == [f"{dlq}:0:{i}" for i in range(4)]
    for i, (key, value) in enumerate(values):
        m = got[f"{dlq}:0:{i}"]
        assert (m.key(), m.value()) == (key, value)
        assert ("ddb.op", b"REMOVE") in m.headers()
        if i < 3:  # the Kafka timestamp is the change time (version µs → ms)
            assert m.timestamp()[1] == (1_760_000_000_000_000 + i) // 1000


def test_show_decodes_both_framings(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a Schema Registry configured (the in-test double of its REST API), dead letters
    in Confluent framing and in single-object framing both decode."""
    table = unique_name("dlqfr").replace("-", "_")
    settings = apply_settings(kafka_bootstrap, "n", NullTarget(type="null"), [table])
    kafka = settings.kafka.model_copy(update={"partitions": 1})
    config = write_config(tmp_path / "bridge.toml", kafka_bootstrap, "n", {"type": "null"}, [table])
    ensure_topics(kafka, [table])
    with registry_double() as (url, _state):
        monkeypatch.setenv("DDB_BRIDGE__KAFKA__SCHEMA_REGISTRY_URL", url)
        registry = make_codec(kafka.model_copy(update={"schema_registry_url": url}), [table])
        writer = KafkaDeadLetters(kafka, "n")
        for i, codec in enumerate([registry, EventCodec()]):
            keys = {"pk": {"S": f"k{i}"}, "sk": {"N": "1"}}
            event = ChangeEvent(
                table=table,
                op=Op.REMOVE,
                keys=keys,
                version=1_760_000_000_000_000 + i,
                origin=Origin.STREAM,
            )
            value = codec.encode(event)
            assert value[:1] == (b"\x00" if i == 0 else b"\xc3")  # Confluent, single-object
            raw = RawRecord(kafka.changes_topic(table), 0, i, attrs.canonical_key(keys), value)
            writer.send(DeadLetter(raw, table, "refused", "PermanentError"))
        writer.flush()
        writer.close()
        for i in range(2):
            shown = _cli(config, "show", "--table", table, "--offset", f"0:{i}", "--json")
            assert shown.returncode == 0, shown
            out = json.loads(shown.stdout)
            assert out["event"]["keys"]["pk"] == {"S": f"k{i}"}, out
            assert out["event"]["version"] == 1_760_000_000_000_000 + i
        dry = _cli(config, "redrive", "--table", table, "--all")
        assert dry.returncode == 0 and dry.stdout.count("would re-drive") == 2, dry
