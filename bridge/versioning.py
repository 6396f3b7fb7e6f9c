"""Versions that make last-write-wins correct, and the one rule for which event wins.

Every event carries an int64 version in microseconds since the epoch. Versions are
deterministic functions of what the source returns, so a re-read after a crash reproduces
them exactly and a re-published record is a true duplicate (docs/design.md, section 5).

`rank` / `wins` are the rule every consumer of events applies: apply's batching, each
sink's coalescing of a batch, and — written in the target's own language — each sink's
conditional write (SQL `WHERE`, CQL `USING TIMESTAMP`, DynamoDB `ConditionExpression`).
`tests/integration/test_sink_contract.py` holds every sink to this rule.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Protocol

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


class Ranked(Protocol):
    """What the rule reads of an event (`bridge.event.ChangeEvent` has both)."""

    @property
    def version(self) -> int: ...

    @property
    def is_delete(self) -> bool: ...


def rank(event: Ranked) -> tuple[int, bool]:
    """The last-write-wins order of events of one item: `(version, is_delete)`, highest wins.

    The higher version wins. At an equal version a delete wins over a write, because:
    - the order must not depend on arrival order, or a replay, another interleaving of
      partitions or another cut of the batches could leave a row in another state;
    - CQL decides this tie itself (a tombstone shadows a cell of the same write timestamp)
      and cannot be told otherwise, so every other sink follows CQL;
    - a delete carries no image, so the rule never has to compare images.
    Such ties should not happen: stream versions strictly increase per item, and a back-fill
    version lies below every stream version captured since its start. The rule is here so
    that "order-independent" holds without that argument.

    Two writes at an equal version are not ordered by the rule (`wins` keeps the one held,
    CQL keeps the greater value per cell): under the versioning's precondition they share a
    version only when they carry the same state (a record read twice), or when a newer
    stream event outranks both.
    """
    return event.version, event.is_delete


def wins(challenger: Ranked, held: Ranked) -> bool:
    """Whether `challenger` replaces `held`, an event of the same item: strictly higher `rank`.

    Of two events of equal rank (a duplicate), the one held stays.
    """
    return rank(challenger) > rank(held)
