"""Publishing known events for `ddb-bridge audit` and reading its archive back."""

from __future__ import annotations

import collections
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher, ensure_topics
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.config_file import write_config as write_settings_file
from bridge.runtime.settings import KafkaSettings
from tests.kafka_helpers import consume_all
from tests.support.config_sections import merged
from tests.support.daemon import BridgeDaemon

# 2025-06-15 10:00 UTC; events spread over four hours from here.
BASE_MS = 1_749_981_600_000
NAME = re.compile(r"part-(\d{5})-(\d{20})-(\d{20})\.(avro|jsonl)$")


def make_events(table: str, n: int) -> list[ChangeEvent]:
    """`n` events of `table`, each with a unique event_id, change times over four hours."""
    out = []
    for i in range(n):
        key = {"pk": {"S": f"k{i % 37}"}}
        created = BASE_MS + (i * 7919 % 4) * 3_600_000 + i
        snapshot = i % 5 == 0  # back-fill snapshots carry no creation time: filed by version
        out.append(
            ChangeEvent(
                table=table,
                op=Op.SNAPSHOT if snapshot else Op.MODIFY,
                keys=key,
                version=created * 1000,
                origin=Origin.SCAN if snapshot else Origin.STREAM,
                new_image={**key, "n": {"N": str(i)}, "s": {"S": "é" * (i % 3)}},
                old_image=None if snapshot else key,
                event_id=f"{table}#{i}",
                approximate_creation_time_ms=None if snapshot else created,
            )
        )
    return out


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int
    event_id: str
    change_time_ms: int


def publish(
    kafka: KafkaSettings,
    events: Sequence[ChangeEvent],
    codecs: Sequence[EventCodec] = (),
) -> list[Published]:
    """Publish the events (with `codecs` in turn, one event each), then read the topics back:
    where each event landed. The last codec decodes them."""
    tables = sorted({e.table for e in events})
    ensure_topics(kafka, tables)
    publishers = [Publisher(kafka, codec) for codec in codecs] or [Publisher(kafka)]
    for i, event in enumerate(events):
        publishers[i % len(publishers)].publish(event)
    for publisher in publishers:
        publisher.flush()
    by_id = {e.event_id: e for e in events}
    out: list[Published] = []
    codec = codecs[-1] if codecs else EventCodec()
    for table in tables:
        topic = kafka.changes_topic(table)
        expected = sum(1 for e in events if e.table == table)
        for msg in consume_all(kafka.bootstrap_servers, topic, expected):
            event_id = codec.decode(msg.value()).event_id
            assert event_id is not None
            source = by_id[event_id]
            created = source.approximate_creation_time_ms or source.version // 1000
            out.append(Published(topic, msg.partition(), msg.offset(), event_id, created))
    return out


@dataclass(frozen=True)
class ArchiveFile:
    key: str  # relative to the root
    records: list[dict[str, Any]]


def read_local(root: Path, fmt: str = "avro") -> list[ArchiveFile]:
    """Every published file under `root` (staging and control folders excluded)."""
    files = []
    for path in sorted(root.glob(f"table=*/date=*/hour=*/*.{fmt}")):
        files.append(ArchiveFile(str(path.relative_to(root)), parse(path.read_bytes(), fmt)))
    return files


def parse(data: bytes, fmt: str) -> list[dict[str, Any]]:
    if fmt == "avro":
        import io

        return list(fastavro.reader(io.BytesIO(data)))  # type: ignore[arg-type]
    return [json.loads(line) for line in data.decode().splitlines()]


def read_s3(s3: Any, bucket: str, prefix: str, fmt: str = "avro") -> list[ArchiveFile]:
    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"][len(prefix) :].lstrip("/")
            if key.startswith("table=") and key.endswith(f".{fmt}"):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                files.append(ArchiveFile(key, parse(body, fmt)))
    return files


def count_records(files: Iterable[ArchiveFile]) -> int:
    return sum(len(f.records) for f in files)


def assert_exactly_once(files: Sequence[ArchiveFile], truth: Sequence[Published]) -> None:
    """Every published event once, in its table/hour folder, files in partition order."""
    seen = collections.Counter(
        (r["kafka_topic"], r["kafka_partition"], r["kafka_offset"])
        for f in files
        for r in f.records
    )
    dupes = {k: n for k, n in seen.items() if n > 1}
    assert not dupes, f"{len(dupes)} events archived more than once, e.g. {list(dupes)[:5]}"
    expected = {(p.topic, p.partition, p.offset): p for p in truth}
    missing = set(expected) - set(seen)
    assert not missing, f"{len(missing)} events missing, e.g. {sorted(missing)[:5]}"
    extra = set(seen) - set(expected)
    assert not extra, f"{len(extra)} unexpected events, e.g. {sorted(extra)[:5]}"

    ranges: dict[tuple[str, int], set[tuple[int, int]]] = collections.defaultdict(set)
    for f in files:
        match = NAME.search(f.key)
        assert match, f"unexpected file name {f.key}"
        first, last = int(match.group(2)), int(match.group(3))
        offsets = [r["kafka_offset"] for r in f.records]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), (
            f"{f.key}: records out of offset order"
        )
        assert f.records, f"{f.key} is empty"
        for r in f.records:
            p = expected[(r["kafka_topic"], r["kafka_partition"], r["kafka_offset"])]
            assert r["event_id"] == p.event_id, f"{f.key}: offset {p.offset} holds another event"
            assert first <= r["kafka_offset"] <= last and int(match.group(1)) == p.partition
            when = datetime.fromtimestamp(p.change_time_ms / 1000, tz=UTC)
            folder = f"table={r['table']}/date={when:%Y-%m-%d}/hour={when:%H}/"
            assert f.key.startswith(folder), f"{f.key}: event of {when} filed elsewhere"
            assert r["change_time_ms"] == p.change_time_ms
        ranges[(f.records[0]["kafka_topic"], int(match.group(1)))].add((first, last))
    for (topic, partition), spans in ranges.items():
        ordered = sorted(spans)
        for (_, a_last), (b_first, _) in itertools.pairwise(ordered):
            assert a_last < b_first, f"{topic}/{partition}: overlapping files {ordered}"


class AuditProcess(BridgeDaemon):
    """`ddb-bridge audit` as a subprocess."""

    JOINED = "audit worker joined its group and is consuming"

    def __init__(self, config: Path, *args: str) -> None:
        super().__init__("audit", config, *args, ready=self.JOINED)


def write_config(path: Path, bootstrap: str, tables: Sequence[str], **sections: Any) -> Path:
    """A bridge.toml for `ddb-bridge audit`; `sections` add to (or replace) the base's keys."""
    base = {
        "kafka": {"bootstrap_servers": bootstrap, "partitions": 3, "replication_factor": 1},
        # a SIGKILLed worker's partitions move on within 6 s
        "apply": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
        "tables": [{"name": t, "hash_key": "pk"} for t in tables],
    }
    return write_settings_file(path, **merged(base, **sections))
