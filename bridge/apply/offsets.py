"""Which offsets may be committed after a batch was written, and committing them.

`OffsetLedger` is the decision, pure logic; `WrittenOffsets` applies it to a written batch
and hands the result to the group's commit (bridge/apply/faust_group.py); neither touches
Kafka or Faust itself.

The invariant: a committed offset C of a partition means every record below C that the
broker can deliver is in the target (written, superseded in its batch, or dead-lettered),
or was deleted before apply read it and has been reported (see "Deleted ranges" below).

What the ledger is told. A partition's log is not a run of consecutive records: a
transaction marker takes an offset of its own after every transaction; an aborted
transaction's records take offsets the consumer never delivers (apply reads
read_committed); compaction leaves holes. So offsets alone cannot tell "the broker had
nothing there" from "the bridge was handed a record there and has not written it". The
consumer can: it reads a partition in drains, each from its position p0 to its position p1
after the drain, and it knows which records of [p0, p1) it handed over. Every offset of
[p0, p1) that is not one of those records held nothing for us — the broker's gap. The feed
therefore carries, after the records of each drain, a `Passed(p0, p1)` span (only when every
record of the drain went into the feed: a drain with a dropped record carries none). Since
the feed is FIFO and batches are written in order, by the time a batch holding a `Passed` is
written, every record of that drain is written too. So the ledger treats each written
record as the span [offset, offset + 1) and each `Passed` as the span [p0, p1), all of them
done, and commits the end of the run of done spans that continues the committed base.
A gap the bridge made — a record handed out and not yet written — is never covered: its
drain's `Passed` comes after it in the feed, and nothing else claims its offset.

What stays a hole: offsets no span covers. Records beyond a gap wait for their drain's
span, which may still cover it (a drain's records can fall into two batches, its span in
the second). Once a drain's span lies beyond the gap, nothing still in the feed can fill it
(the feed is FIFO): the consumer's position jumped without a drain. That happens when
something seeks: a rebalance (the ledger then forgets every base and re-reads the group's
committed offsets), or the consumer resetting an offset the broker no longer has to the log
start — data deleted before apply read it.

Deleted ranges. Before crossing a hole the worker asks the broker for the partition's log
start: the part of the hole below it was deleted (retention, delete-records) and can never
be applied. That range is reported — an ERROR line naming the target, topic, partition and
offsets, the skipped-offsets metric, and a note kept in the metadata of every offset
committed on that partition (bridge/kafka/skipped_offsets.py), which `status` reads back — and
the ledger goes on from there. The same check runs when the group's committed offset is
read: one below the log start is such a range. A group that never committed starts where
its consumer's first drain did, not at the log start of the moment the base is read, which
retention may have moved past records not fetched yet. What remains of a hole above the log start
is the bridge's: nothing is committed past it, and the records after it are read again
after the next rebalance or restart.

Why not Faust's own acks: Faust commits "the first run of consecutive acked offsets" and
treats an acked offset one past the committed one as no gap (`min(acked) - committed > 1`),
and it acks records it skips during a rebalance. Seen here: a record held back while the
worker stopped was passed by a commit of later, never-written records. So the apply topics
are subscribed with `acks=False` and this ledger decides every commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from bridge.dlq.writer import RawRecord
from bridge.kafka import skipped_offsets
from bridge.kafka.lag import CommittedBase
from bridge.kafka.skipped_offsets import SkippedRange

log = logging.getLogger(__name__)
worker_log = logging.getLogger("ddb-bridge.apply")  # the worker's lines, one logger name

P = TypeVar("P")  # a partition identifier: (topic, partition) in the worker

Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Passed:
    """The consumer read `topic`/`partition` from `start` to `end` (its positions before and
    after one drain) and handed over every record it found there: the other offsets of
    [start, end) held nothing to apply (markers, aborted batches, compacted records)."""

    topic: str
    partition: int
    start: int
    end: int


class Hole(NamedTuple):
    """Offsets [start, end) of a partition that no written record or drain covers."""

    start: int
    end: int


@dataclass
class OffsetLedger(Generic[P]):
    """Per partition: the next offset below which everything is known to be done, and the
    done spans beyond a hole, kept until the hole is resolved."""

    _next: dict[P, int] = field(default_factory=dict)
    _ahead: dict[P, list[tuple[int, int, bool]]] = field(default_factory=dict)

    def known(self, tp: P) -> bool:
        return tp in self._next

    def next_offset(self, tp: P) -> int:
        return self._next[tp]

    def set_base(self, tp: P, committed: int) -> None:
        """The broker's committed offset (or the log start when the group has none)."""
        self._next[tp] = committed
        self._ahead.pop(tp, None)

    def forget(self, tps: Iterable[P] | None = None) -> None:
        """After a rebalance another worker may have committed further: re-read the base."""
        if tps is None:
            self._next.clear()
            self._ahead.clear()
        else:
            for tp in tps:
                self._next.pop(tp, None)
                self._ahead.pop(tp, None)

    def advance(
        self, tp: P, records: Iterable[int] = (), drains: Iterable[tuple[int, int]] = ()
    ) -> Hole | None:
        """Record written `records` (offsets) and `drains` (spans [start, end) the consumer
        went through, each after all its records) and move the next offset over every span
        that continues it. Returns the hole in front of what it could not reach — only once
        it is certain: a drain is among the spans beyond it. Records beyond a gap without a
        drain there yet wait for their drain's span, which may still cover the gap (a
        transaction marker between two records of one drain split across two batches)."""
        cur = self._next.get(tp)
        if cur is None:
            raise KeyError(f"no base offset known for {tp}")
        spans = [*self._ahead.pop(tp, ()), *((o, o + 1, False) for o in records)]
        spans += [(start, end, True) for start, end in drains]
        ahead: list[tuple[int, int, bool]] = []
        # Sorted by start, each span is met after every span that could lead up to it.
        for start, end, drain in sorted(spans):
            if end <= cur:
                continue  # re-read after a rebalance or a replay: already below the base
            if start <= cur:
                cur = end
            else:
                ahead.append((start, end, drain))
        self._next[tp] = cur
        if not ahead:
            return None
        # Once a span is out of reach, so is every later one (they start no earlier): the
        # next offset stopped at the first of them. The feed is FIFO: a drain's span comes
        # after the spans of every earlier drain, so with one beyond the gap, nothing that
        # is still to come can fill it.
        self._ahead[tp] = ahead
        if any(drain for _, _, drain in ahead):
            return Hole(cur, ahead[0][0])
        return None

    def skip_to(self, tp: P, offset: int) -> None:
        """Offsets below `offset` are gone from the broker (reported): go on from there."""
        self._next[tp] = max(self._next[tp], offset)


class WrittenOffsets:
    """The commit path after a batch is written (or dead-lettered): commit what the ledger
    allows, through `commit`, the group's, with each partition's skipped-ranges note.

    `read_committed` gives the group's committed offsets (and log starts and notes) of
    partitions the ledger does not know yet (first batch, or after a rebalance or a hole);
    `log_start` gives one partition's log start now; both retry transient errors
    themselves. `commit` returns False when a rebalance took the partitions meanwhile.
    `report` is told of every range deleted before apply read it (the worker's ERROR line
    and metric).
    """

    def __init__(
        self,
        read_committed: Callable[[list[Partition]], Awaitable[Mapping[Partition, CommittedBase]]],
        commit: Callable[[Mapping[Partition, int], Mapping[Partition, str]], Awaitable[bool]],
        log_start: Callable[[Partition], Awaitable[int]],
        report: Callable[[str, SkippedRange], None],
    ) -> None:
        self._read_committed = read_committed
        self._commit = commit
        self._log_start = log_start
        self._report = report
        self.ledger: OffsetLedger[Partition] = OffsetLedger()
        self._skipped: dict[Partition, list[SkippedRange]] = {}
        self._sent: dict[Partition, int] = {}  # the offset the group holds, per partition

    def forget(self) -> None:
        """Partitions are being revoked: another worker may commit further before they come
        back, so every base is read again."""
        self.ledger.forget()

    async def commit_written(
        self, records: Sequence[RawRecord], passed: Sequence[Passed] = ()
    ) -> None:
        """Commit after `records` are all in the target (written, superseded or dead), with
        the drains `passed` that ended with them."""
        offsets_of: dict[Partition, list[int]] = {}
        for record in records:
            offsets_of.setdefault((record.topic, record.partition), []).append(record.offset)
        drains_of: dict[Partition, list[tuple[int, int]]] = {}
        for span in passed:
            if span.end > span.start:
                drains_of.setdefault((span.topic, span.partition), []).append(
                    (span.start, span.end)
                )
        by_partition = {
            tp: (offsets_of.get(tp, []), drains_of.get(tp, []))
            for tp in offsets_of.keys() | drains_of.keys()
        }
        ledger = self.ledger
        unknown = [tp for tp in by_partition if not ledger.known(tp)]
        if unknown:
            bases = await self._read_committed(unknown)
            for tp in unknown:
                found, drains = by_partition[tp]
                self._set_base(tp, bases[tp], min([*found, *(start for start, _ in drains)]))
        commits: dict[Partition, int] = {}
        for tp, (found, drains) in by_partition.items():
            hole = ledger.advance(tp, found, drains)
            if hole is not None:
                start = await self._log_start(tp)
                if start > hole.start:
                    # Deleted before apply read it: reported, then gone past.
                    self._skip(tp, hole.start, min(start, hole.end))
                    ledger.skip_to(tp, min(start, hole.end))
                    hole = ledger.advance(tp)
            offset = ledger.next_offset(tp)
            if offset > self._sent.get(tp, offset):
                commits[tp] = offset
            if hole is not None:
                log.error(
                    "hole between committed and written offsets; not committing past it "
                    "(the records after it are read again after the next rebalance or restart)",
                    extra={"partition": str(tp), "expected": hole.start, "got": hole.end},
                )
                # Re-read the base before the next commit: another worker may have filled it.
                ledger.forget([tp])
        notes = {tp: skipped_offsets.encode(self._skipped.get(tp, ())) for tp in commits}
        if not commits:
            return
        if await self._commit(commits, notes):
            self._sent.update(commits)
        else:
            # Rebalanced meanwhile: nothing committed; the new owner re-reads, harmlessly.
            ledger.forget(commits)
            worker_log.info(
                "commit skipped: partitions rebalanced", extra={"partitions": len(commits)}
            )

    def _set_base(self, tp: Partition, base: CommittedBase, first: int) -> None:
        """`first`: where the first span of this partition in the batch begins."""
        self._skipped[tp] = list(base.skipped)
        if base.committed is None:
            # Never committed (or the group's offsets expired): the consumer began at the log
            # start of the moment it reset, which is where its first drain, and so this
            # batch's first span, begins. Not the log start now: retention may have moved
            # it past records the consumer has not fetched yet, a range to report (seen: it
            # was skipped silently), not to start after.
            start = min(first, base.log_start)
            self.ledger.set_base(tp, start)
            self._sent[tp] = start
            return
        self.ledger.set_base(tp, base.committed)
        self._sent[tp] = base.committed
        if base.committed < base.log_start:
            self._skip(tp, base.committed, base.log_start)
            self.ledger.skip_to(tp, base.log_start)

    def _skip(self, tp: Partition, start: int, end: int) -> None:
        skipped = SkippedRange(tp[1], start, end - 1, int(time.time() * 1000))
        self._skipped.setdefault(tp, []).append(skipped)
        self._report(tp[0], skipped)
