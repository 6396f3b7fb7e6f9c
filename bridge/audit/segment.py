"""One partition's run of consecutive offsets being archived: its open files, one per hour.

A segment covers offsets `first..last` of one topic partition. Its events are written as they
arrive to staging files, one per table-hour bucket they fall in; `finish` closes and fsyncs
them and names each one after the segment (`part-<partition>-<first>-<last>`), the same name
in every hour folder. The name depends only on the offsets, so writing the same offsets again
yields the same names: that is what makes a re-run after a crash overwrite rather than
duplicate (`bridge/audit/__init__.py`).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastavro.write import Writer

from bridge.audit.records import EXTENSIONS, ArchiveFormat, Bucket, json_line


def staging_prefix(topic: str, partition: int) -> str:
    """Every staging file of a partition starts with this (to clear them after a crash)."""
    return f"{topic}+{partition}+"


def file_name(partition: int, first: int, last: int, fmt: ArchiveFormat) -> str:
    # Zero-padded so that names sort in offset order.
    return f"part-{partition:05d}-{first:020d}-{last:020d}.{EXTENSIONS[fmt]}"


@dataclass
class OpenFile:
    path: Path
    handle: IO[bytes]
    writer: Writer | None  # None for JSON Lines
    count: int = 0


@dataclass
class Segment:
    topic: str
    partition: int
    first: int
    fmt: ArchiveFormat
    staging: Path
    schema: Any
    codec: str = "deflate"
    last: int = -1
    events: int = 0
    bytes: int = 0
    opened_at: float = field(default_factory=time.monotonic)
    files: dict[Bucket, OpenFile] = field(default_factory=dict)

    def add(self, bucket: Bucket, record: dict[str, Any], size: int) -> None:
        if record["kafka_offset"] <= self.last:
            raise ValueError(
                f"{self.topic}/{self.partition}: offset {record['kafka_offset']} after "
                f"{self.last} (offsets must increase within a segment)"
            )
        opened = self.files.get(bucket)
        if opened is None:
            opened = self.files[bucket] = self._open(bucket)
        if opened.writer is not None:
            opened.writer.write(record)
        else:
            opened.handle.write(json_line(record))
        opened.count += 1
        self.last = record["kafka_offset"]
        self.events += 1
        self.bytes += size

    def _open(self, bucket: Bucket) -> OpenFile:
        name = (
            f"{staging_prefix(self.topic, self.partition)}{self.first}+"
            f"{bucket.table}+{bucket.date}T{bucket.hour}+{uuid.uuid4().hex[:8]}.tmp"
        )
        path = self.staging / name
        handle = open(path, "wb")  # noqa: SIM115 - closed by finish() or discard()
        writer = None
        if self.fmt == "avro":
            writer = Writer(
                handle,
                self.schema,
                codec=self.codec,
                metadata={
                    "ddb_bridge.topic": self.topic,
                    "ddb_bridge.partition": str(self.partition),
                    "ddb_bridge.first_offset": str(self.first),
                },
            )
        return OpenFile(path, handle, writer)

    def finish(self) -> dict[str, Path]:
        """Close and fsync every file; their final keys (relative to the root) -> staging path."""
        out: dict[str, Path] = {}
        for bucket, opened in self.files.items():
            if opened.writer is not None:
                opened.writer.flush()
            opened.handle.flush()
            os.fsync(opened.handle.fileno())
            opened.handle.close()
            key = f"{bucket.folder}/{file_name(self.partition, self.first, self.last, self.fmt)}"
            out[key] = opened.path
        return out

    def discard(self) -> None:
        """Drop the files (partition revoked): the next owner reads these offsets again."""
        for opened in self.files.values():
            with contextlib.suppress(OSError):
                opened.handle.close()
            with contextlib.suppress(FileNotFoundError):
                opened.path.unlink()
        self.files.clear()
