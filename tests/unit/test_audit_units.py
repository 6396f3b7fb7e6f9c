"""The audit archive's naming, filing and control records, without Kafka."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest

from bridge.audit.destination import LocalDestination
from bridge.audit.records import Bucket, archive_record, archive_schema, change_time_ms, json_line
from bridge.audit.segment import Segment, file_name
from bridge.audit.worker import Intent, subscription
from bridge.model.errors import ConfigError, PermanentError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import KafkaSettings, Settings
from connectors.s3_archive import parse_s3_url


def _event(created: int | None, version: int = 1_750_000_000_000_000) -> ChangeEvent:
    return ChangeEvent(
        table="orders",
        op=Op.INSERT,
        keys={"id": {"S": "a"}},
        version=version,
        origin=Origin.STREAM,
        new_image={"id": {"S": "a"}, "n": {"N": "1"}},
        approximate_creation_time_ms=created,
    )


def test_change_time_is_the_stream_time_else_the_version() -> None:
    assert change_time_ms(_event(1_700_000_000_123)) == 1_700_000_000_123
    assert change_time_ms(_event(None, version=1_700_000_000_123_456)) == 1_700_000_000_123


def test_bucket_is_the_utc_hour_in_hive_style() -> None:
    # 2023-11-14T22:13:20.123Z
    assert Bucket.of("orders", 1_700_000_000_123).folder == ("table=orders/date=2023-11-14/hour=22")


def test_file_names_sort_in_offset_order() -> None:
    names = [file_name(3, first, first + 9, "avro") for first in (0, 10, 100, 1000)]
    assert names == sorted(names)
    assert file_name(3, 10, 19, "jsonl") == (
        "part-00003-00000000000000000010-00000000000000000019.jsonl"
    )


def test_json_line_nests_the_images() -> None:
    row = json.loads(json_line(archive_record(_event(5), "t", 0, 7, None)))
    assert row["new_image"]["n"] == {"N": "1"} and row["old_image"] is None
    assert (row["kafka_offset"], row["change_time_ms"]) == (7, 5)


def test_segment_writes_one_avro_file_per_hour_in_offset_order(tmp_path: Path) -> None:
    seg = Segment("ddb.orders.changes", 2, 40, "avro", tmp_path, archive_schema())
    hour = 3_600_000
    for offset, created in [(40, 0), (41, hour), (42, 5), (43, hour + 1)]:
        record = archive_record(_event(created), "ddb.orders.changes", 2, offset, None)
        seg.add(Bucket.of("orders", created), record, 10)
    with pytest.raises(ValueError, match="offsets must increase"):
        seg.add(Bucket.of("orders", 0), archive_record(_event(0), "x", 2, 43, None), 1)
    files = seg.finish()
    assert sorted(files) == [
        "table=orders/date=1970-01-01/hour=00/part-00002-00000000000000000040-00000000000000000043.avro",
        "table=orders/date=1970-01-01/hour=01/part-00002-00000000000000000040-00000000000000000043.avro",
    ]
    offsets = {
        key: [r["kafka_offset"] for r in fastavro.reader(io.BytesIO(p.read_bytes()))]  # type: ignore[union-attr]
        for key, p in files.items()
    }
    assert sorted(offsets.values()) == [[40, 42], [41, 43]]


def test_local_destination_publishes_by_rename_and_stores_intents(tmp_path: Path) -> None:
    dest = LocalDestination(tmp_path / "root")
    staged = dest.staging_dir / "x.tmp"
    staged.write_bytes(b"data")
    dest.publish(staged, "table=t/date=2025-01-01/hour=00/part.avro")
    assert not staged.exists()
    assert (tmp_path / "root/table=t/date=2025-01-01/hour=00/part.avro").read_bytes() == b"data"
    intent = Intent("topic", 1, 5, 9, ("a", "b"))
    assert dest.get_bytes(Intent.key("topic", 1)) is None
    dest.put_bytes(Intent.key("topic", 1), intent.to_bytes())
    assert Intent.from_bytes(dest.get_bytes(Intent.key("topic", 1)) or b"", "k") == intent


def test_a_damaged_intent_is_an_error_naming_it() -> None:
    with pytest.raises(PermanentError, match="root/_audit/t/0.json"):
        Intent.from_bytes(b'{"topic": "t"}', "root/_audit/t/0.json")


def test_subscription_is_the_tables_topics_or_a_pattern_for_all() -> None:
    settings = Settings(kafka=KafkaSettings(topic_prefix="ddb."))
    assert subscription(settings, ["a"]) == ["ddb.a.changes"]
    assert subscription(settings, []) == [r"^ddb\..+\.changes$"]


def test_s3_urls() -> None:
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    with pytest.raises(ConfigError, match="s3://BUCKET"):
        parse_s3_url("s3:///nobucket")
