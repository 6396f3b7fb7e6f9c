"""Versions that make last-write-wins correct (README "Guarantees, and what they rest on").

Every event carries an int64 version in microseconds since the epoch. Versions are
deterministic functions of what the source returns, so a re-read after a crash reproduces
them exactly and a re-published record is a true duplicate.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_micros(moment: datetime | float | int) -> int:
    """Microseconds since the epoch, exactly (no float rounding for datetimes)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - EPOCH) // _MICRO
    return round(moment * 1_000_000)


class StreamVersioner:
    """Versions along one shard, in sequence order: `max(base, previous + 1)`.

    Strictly increasing per shard, hence per item (an item lives in one shard at a time, and a
    child shard starts from its parent's last version).
    """

    __slots__ = ("last",)

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def next(self, approximate_creation: datetime | float | int) -> int:
        version = max(to_micros(approximate_creation), self.last + 1)
        self.last = version
        return version


def backfill_version(start: datetime | float | int, margin_s: int) -> int:
    """The one version of every item of a back-fill run: `(floor_s(T) - margin) * 10^6 - 1`.

    `start` is the scan's start time, the export's ExportTime, or an incremental export's
    ExportToTime. Lower than any stream version from `T - margin` on, so a stream event
    captured after the snapshot always wins over it.
    """
    seconds = math.floor(to_micros(start) / 1_000_000)
    return (seconds - margin_s) * 1_000_000 - 1
