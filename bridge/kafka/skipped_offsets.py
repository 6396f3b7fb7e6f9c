"""Offsets apply skipped because the broker deleted them before apply read them, and how the
record of them travels with the group's committed offsets.

When a change topic's retention (or `kafka-delete-records`) moves a partition's log start
past the apply group's committed offset, the events in between are gone: apply can only go
on from the log start, and its target misses them until that target is back-filled again.
apply reports each such range when it finds it (bridge/apply/offsets.py) and keeps the
record in the metadata of every offset it commits on that partition, so it survives restarts
and rebalances and `status` reads it back with the committed offsets (bridge/kafka/lag.py) — the
group's offsets are the one place every reader of apply's progress already looks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

# Commit metadata that does not start with this is someone else's (or empty): not ours.
PREFIX = "ddb-bridge:skipped="
# Kafka refuses commit metadata over offset.metadata.max.bytes (4096 by default).
MAX_NOTE = 3500
# Ends every note. confluent-kafka 2.16 reads committed metadata as a C string, up to a NUL
# byte that librdkafka does not add: without one it read past the note (seen: a
# UnicodeDecodeError on the bytes after it).
END = "\x00"


@dataclass(frozen=True, slots=True)
class SkippedRange:
    """Offsets first_offset..last_offset (inclusive) of one partition, deleted before the
    group read them. `detected_at_ms`: when apply found it; None when only `status` sees it
    (the group's committed offset is below the log start and apply has not run since)."""

    partition: int
    first_offset: int
    last_offset: int
    detected_at_ms: int | None

    @property
    def events(self) -> int:
        """At most this many events (a transaction marker inside counts too)."""
        return self.last_offset - self.first_offset + 1

    def words(self) -> str:
        return f"partition {self.partition} offsets {self.first_offset}..{self.last_offset}"


def encode(ranges: Sequence[SkippedRange]) -> str:
    """The commit metadata for one partition's skipped ranges ("" for none)."""
    if not ranges:
        return ""
    note = PREFIX + json.dumps(
        [[r.first_offset, r.last_offset, r.detected_at_ms] for r in ranges], separators=(",", ":")
    )
    if len(note) <= MAX_NOTE:
        return note + END
    # Too many to keep one by one: one range covering them all. It over-states the loss
    # (offsets between ranges were applied), which only asks for a back-fill it would ask
    # for anyway; it never hides a range.
    merged = SkippedRange(
        ranges[0].partition,
        min(r.first_offset for r in ranges),
        max(r.last_offset for r in ranges),
        max((r.detected_at_ms or 0) for r in ranges) or None,
    )
    return encode([merged])


def decode(metadata: str | None, partition: int, where: str) -> list[SkippedRange]:
    """The skipped ranges kept in one partition's commit metadata; [] when it holds none.
    `where` names the group and partition for the error of a note that cannot be read."""
    if not metadata or not metadata.startswith(PREFIX):
        return []
    try:
        rows = json.loads(metadata[len(PREFIX) :].split(END, 1)[0])
        return [
            SkippedRange(partition, int(a), int(b), None if t is None else int(t))
            for a, b, t in rows
        ]
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"unreadable skipped-offsets note in the commit metadata of {where}: {metadata!r}"
        ) from exc
