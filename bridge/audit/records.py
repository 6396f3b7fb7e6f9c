"""What one archived event looks like (Avro record, JSON line) and where it is filed.

An archived event is the change event flattened (`schemas/audit_record.avsc`) plus where it
sat in Kafka (topic, partition, offset, timestamp), so a reader can restore each partition's
order from the files alone. It is filed under the table and the UTC hour of its change time:
`table=<t>/date=YYYY-MM-DD/hour=HH/` (Hive-style, so Spark and DuckDB see `table`, `date` and
`hour` as columns).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import fastavro

from bridge.codec.avro import event_to_record, load_schema_text
from bridge.model.event import ChangeEvent

ArchiveFormat = Literal["avro", "jsonl"]
EXTENSIONS: dict[str, str] = {"avro": "avro", "jsonl": "jsonl"}


def archive_schema() -> Any:
    """The parsed Avro schema of the archive files."""
    return fastavro.parse_schema(json.loads(load_schema_text("audit_record.avsc")))


def change_time_ms(event: ChangeEvent) -> int:
    """When the change happened: the stream's creation time, else the version (µs) in ms.

    Taken from the event, not from the consumer's clock, so that re-reading the same offsets
    after a crash files every event in the same hour again.
    """
    return event.change_time_ms  # the one rule, also the record's Kafka timestamp


@dataclass(frozen=True, slots=True)
class Bucket:
    """The folder of one table and hour: `table=<t>/date=YYYY-MM-DD/hour=HH`."""

    table: str
    date: str
    hour: str

    @classmethod
    def of(cls, table: str, time_ms: int) -> Bucket:
        when = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
        return cls(table, when.strftime("%Y-%m-%d"), when.strftime("%H"))

    @property
    def folder(self) -> str:
        return f"table={self.table}/date={self.date}/hour={self.hour}"


def archive_record(
    event: ChangeEvent, topic: str, partition: int, offset: int, timestamp_ms: int | None
) -> dict[str, Any]:
    """The Avro record of one event (`schemas/audit_record.avsc`)."""
    record = event_to_record(event)
    record.update(
        change_time_ms=change_time_ms(event),
        kafka_topic=topic,
        kafka_partition=partition,
        kafka_offset=offset,
        kafka_timestamp_ms=timestamp_ms,
    )
    return record


def json_line(record: dict[str, Any]) -> bytes:
    """One JSON Lines row: the Avro record, with the DynamoDB JSON images as nested objects
    rather than text, so `jq '.new_image.price.N'` works."""
    row = dict(record)
    for name in ("keys", "new_image", "old_image"):
        if row[name] is not None:
            row[name] = json.loads(row[name])
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
