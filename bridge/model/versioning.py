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

from bridge.model.item_memory import NO_EVENT, ItemMemory, digest

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


class KinesisVersioner:
    """Versions along one Kinesis shard of Kinesis Data Streams for DynamoDB records.

    Kinesis may deliver a change twice and the changes of one item out of change-time order,
    so `StreamVersioner`'s `max(base, previous + 1)` would let a late duplicate outrank the
    change after it. Here a record's version is its own change time, in µs, and the shard's
    order only ever breaks ties between changes *of one item* inside one tick of that time
    (a millisecond at MILLISECOND precision: `slots` = 1000; none at MICROSECOND):

    - `version = base` (ApproximateCreationDateTime in µs) when `base` is past the item's
      newest version;
    - a later change of the item in the same tick takes the µs after the item's newest
      (never reaching the next tick): the order DynamoDB put them on the shard, whatever
      records of other items, of later ticks, sit between them;
    - a change older than its item's newest tick (out of order), or past 1000 changes of one
      item in one millisecond, takes `base`, the lowest slot of its tick: it loses to
      anything newer of its item;
    - an `event_id` seen among the shard's last `remember` records gets the version it got
      then, and so does a copy of an item's newest change after a restart (its eventID is
      remembered with it), so a duplicate is a true duplicate.

    The per-item memory is bounded (`bridge.model.item_memory`: entries updated within a second of
    change time, at most 512) and is stored with every checkpoint (`memory_state`), so a
    restart versions the records after its checkpoint exactly as before. What it cannot order
    is in docs/design.md, section 5.
    """

    __slots__ = ("_seen", "last", "memory", "remember")

    def __init__(
        self, last: int = 0, remember: int = 10_000, memory: ItemMemory | None = None
    ) -> None:
        self.last = last
        self.remember = remember
        # Without a stored memory (a checkpoint written before per-item memories existed),
        # any item may hold a version up to `last`: bumping from there is never too low.
        self.memory = memory if memory is not None else ItemMemory(floor=last)
        self._seen: dict[str, int] = {}

    def memory_state(self) -> bytes:
        """The per-item memory as a checkpoint stores it (`ItemMemory.unpack` reads it)."""
        return self.memory.pack()

    def next(
        self, created_us: int, slots: int, event_id: str | None = None, item: bytes = b""
    ) -> int:
        """The version of the next record of the shard, a change of `item` (its key as
        canonical bytes) made at `created_us` at a precision of `slots` µs (1000 for
        MILLISECOND, 1 for MICROSECOND)."""
        if event_id is not None:
            seen = self._seen.get(event_id)
            if seen is not None:
                return seen
        memory = self.memory
        key = digest(item)
        event = digest(event_id.encode()) if event_id is not None else NO_EVENT
        newest, newest_event = memory.newest(key)
        if slots <= 1:
            # Exact change times: nothing to break ties with. Still remembered: a stream
            # whose precision was switched to MILLISECOND must bump its item's next change
            # above this one (seen in tests/e2e/test_kcl_e2e.py, which mixes precisions).
            version = created_us
        elif event_id is not None and newest_event == event:
            version = newest  # the item's newest change again (read before a restart)
        elif newest < created_us:
            version = created_us
        elif newest < created_us + slots - 1:
            version = newest + 1
        else:
            version = created_us
        memory.note(key, version, event, max(self.last, version))
        if version > self.last:
            self.last = version
        if event_id is not None:
            seen_ids = self._seen
            seen_ids[event_id] = version
            if len(seen_ids) > self.remember:
                # dicts keep insertion order: the oldest id goes first.
                del seen_ids[next(iter(seen_ids))]
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
    """What the rule reads of an event (`bridge.model.event.ChangeEvent` has both)."""

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
