"""Reading a table's dead letters back: the DLQ topic, the re-drive ledger, the DLQ depth.

`bridge/dlq/writer.py` writes each dead letter as the original record (key, value, headers)
plus `ddb.dlq.*` headers saying why and where from. This module reads them without joining a
consumer group (nothing is committed, so reading never changes what anyone else sees).

What was re-driven is kept in a ledger topic of its own, `<prefix><table>.dlq.redriven`
(compacted, one partition): one record per re-driven dead letter, keyed `<partition>:<offset>`
of the dead letter. Why a ledger rather than a consumer group's committed offset: re-drives
are selective (`--offset`, `--reason`), so what was re-driven is a set of offsets, not a
prefix of each partition, and a committed offset can only say "everything below here". The
ledger is as small as the number of re-drives, so it is read whole every time.

`dlq_depth(kafka, table)`: the dead letters still waiting for someone, i.e. the records in
the DLQ topic (high minus low watermark, per partition) minus those the ledger marks
re-driven. `status` and the metrics read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from bridge.dlq.writer import (
    HEADER_ERROR,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
)
from bridge.kafka import reads as kafka_reads
from bridge.kafka.limits import librdkafka_fetch_config
from bridge.model.errors import ConfigError, TransientError
from bridge.runtime.settings import KafkaSettings

# Kafka header of a re-driven record in the changes topic: `<dlq topic>:<partition>:<offset>`.
HEADER_REDRIVE_FROM = "ddb.redrive.from"
DLQ_HEADER_PREFIX = "ddb.dlq."
# The back-fill dead-letters a bad line of an export file (`--skip-bad-lines`) with these:
# the value is the line itself, not a change record.
EXPORT_FILE = "ddb.file"
EXPORT_LINE = "ddb.line"
EXPORT_REASON = "ddb.reason"


def ledger_topic(kafka: KafkaSettings, table: str) -> str:
    return kafka.dlq_topic(table) + ".redriven"


@dataclass(frozen=True, slots=True)
class DlqRecord:
    """One dead letter as stored in `<prefix><table>.dlq`."""

    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return None

    @property
    def reason(self) -> str:
        return self.header(HEADER_REASON) or self.header(EXPORT_REASON) or "(no reason header)"

    @property
    def error(self) -> str:
        return self.header(HEADER_ERROR) or ("BadExportLine" if self.export_line else "?")

    @property
    def export_line(self) -> tuple[str, int | None] | None:
        """(file, line) of a bad export line the back-fill dead-lettered, else None."""
        name = self.header(EXPORT_FILE)
        return (name, _int_or_none(self.header(EXPORT_LINE))) if name is not None else None

    @property
    def origin(self) -> tuple[str | None, int | None, int | None]:
        """Topic, partition and offset the record had before it was dead-lettered."""
        return (
            self.header(HEADER_TOPIC),
            _int_or_none(self.header(HEADER_PARTITION)),
            _int_or_none(self.header(HEADER_OFFSET)),
        )

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the record had on the changes topic (the DLQ's own removed)."""
        return [(k, v) for k, v in self.headers if not k.startswith(DLQ_HEADER_PREFIX)]


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_position(text: str) -> tuple[int, int]:
    """`P:O` as (partition, offset); a ConfigError naming the text otherwise."""
    part, sep, off = text.strip().partition(":")
    try:
        if not sep:
            raise ValueError(text)
        partition, offset = int(part), int(off)
    except ValueError:
        raise ConfigError(f"not a PARTITION:OFFSET: {text!r}") from None
    if partition < 0 or offset < 0:
        raise ConfigError(f"negative partition or offset: {text!r}")
    return partition, offset


def _reader(kafka: KafkaSettings) -> AbstractContextManager[Consumer]:
    """A consumer that only assigns partitions: it never joins its group nor commits."""
    return kafka_reads.reader(
        kafka, "dlq-reader", {"enable.partition.eof": True, **librdkafka_fetch_config()}
    )


def _extents(consumer: Consumer, topic: str, timeout_s: float) -> dict[int, tuple[int, int]] | None:
    """(low, high) watermark of every partition of `topic`; None when the topic is missing."""
    partitions = kafka_reads.partitions_of(consumer, topic, timeout_s)
    if partitions is None:
        return None
    return {p: kafka_reads.watermarks(consumer, topic, p, timeout_s) for p in partitions}


def _read(
    consumer: Consumer, topic: str, ranges: dict[int, tuple[int, int]], timeout_s: float
) -> Iterator[DlqRecord]:
    """Every record of `topic` in [start, end) per partition."""
    todo = {p: r for p, r in ranges.items() if r[1] > r[0]}
    if not todo:
        return
    consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in todo.items()])
    idle = 0.0
    while todo:
        msg = consumer.poll(0.5)
        if msg is None:
            idle += 0.5
            if idle > timeout_s:
                waiting = ", ".join(f"{p}:{todo[p][0]}..{todo[p][1]}" for p in sorted(todo))
                raise TransientError(f"reading {topic}: no record for {timeout_s}s ({waiting})")
            continue
        idle = 0.0
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                todo.pop(msg.partition() or 0, None)
                continue
            raise TransientError(f"reading {topic}: {err}")
        partition, offset = msg.partition(), msg.offset()
        if partition is None or offset is None or partition not in todo:
            continue
        if offset + 1 >= todo[partition][1]:
            todo.pop(partition)
        if offset >= ranges[partition][1]:
            continue
        ts_type, ts = msg.timestamp()
        yield DlqRecord(
            partition=partition,
            offset=offset,
            timestamp_ms=ts if ts_type != 0 else None,
            key=_bytes(msg.key()),
            value=_bytes(msg.value()),
            headers=_headers(msg.headers()),
        )


def _bytes(value: str | bytes | None) -> bytes | None:
    # Without a deserializer the client hands out bytes; the stubs also allow str.
    return value.encode() if isinstance(value, str) else value


def _headers(
    headers: dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]] | None,
) -> tuple[tuple[str, bytes], ...]:
    pairs = headers.items() if isinstance(headers, dict) else (headers or [])
    return tuple((k, _bytes(v) or b"") for k, v in pairs)


def read_dead_letters(kafka: KafkaSettings, table: str, timeout_s: float = 30.0) -> list[DlqRecord]:
    """Every dead letter of `table` now in its DLQ topic, by partition then offset."""
    topic = kafka.dlq_topic(table)
    with _reader(kafka) as consumer:
        extents = _extents(consumer, topic, timeout_s)
        if extents is None:
            raise ConfigError(f"no DLQ topic {topic} on {kafka.bootstrap_servers}")
        records = list(_read(consumer, topic, extents, timeout_s))
    return sorted(records, key=lambda r: (r.partition, r.offset))


def read_dead_letter(
    kafka: KafkaSettings, table: str, partition: int, offset: int, timeout_s: float = 30.0
) -> DlqRecord:
    topic = kafka.dlq_topic(table)
    with _reader(kafka) as consumer:
        extents = _extents(consumer, topic, timeout_s)
        if extents is None:
            raise ConfigError(f"no DLQ topic {topic} on {kafka.bootstrap_servers}")
        if partition not in extents:
            raise ConfigError(f"{topic} has no partition {partition} (it has {len(extents)})")
        low, high = extents[partition]
        if not low <= offset < high:
            raise ConfigError(
                f"{topic} partition {partition} holds offsets {low}..{high - 1}, not {offset}"
                if high > low
                else f"{topic} partition {partition} is empty"
            )
        found = list(_read(consumer, topic, {partition: (offset, offset + 1)}, timeout_s))
    if not found or found[0].offset != offset:
        raise ConfigError(f"{topic} has no record at {partition}:{offset}")
    return found[0]


def read_ledger(kafka: KafkaSettings, table: str, timeout_s: float = 30.0) -> dict[str, str]:
    """Dead letters already re-driven: `P:O` of the dead letter → what the ledger says of it."""
    topic = ledger_topic(kafka, table)
    out: dict[str, str] = {}
    with _reader(kafka) as consumer:
        extents = _extents(consumer, topic, timeout_s)
        if extents is None:
            return out  # nothing was ever re-driven
        for record in _read(consumer, topic, extents, timeout_s):
            if record.key:
                out[record.key.decode("utf-8", "replace")] = (record.value or b"").decode(
                    "utf-8", "replace"
                )
    return out


def dlq_depth(kafka: KafkaSettings, table: str, timeout_s: float = 10.0) -> int:
    """Dead letters of `table` waiting for someone: in the DLQ topic and not re-driven.

    0 when the table has no DLQ topic yet. Cheap: watermarks plus the (small) ledger.
    """
    with _reader(kafka) as consumer:
        extents = _extents(consumer, kafka.dlq_topic(table), timeout_s)
    if extents is None:
        return 0
    held = sum(high - low for low, high in extents.values())
    redriven = 0
    for position in read_ledger(kafka, table, timeout_s):
        partition, _, offset = position.partition(":")
        low, high = extents.get(int(partition), (0, 0))
        redriven += low <= int(offset) < high
    return max(0, held - redriven)
