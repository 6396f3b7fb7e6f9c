"""Which offsets may be committed after a batch was written, and committing them.

`OffsetLedger` is the decision, pure logic; `WrittenOffsets` applies it to a written batch
and hands the result to the group's commit (bridge/apply/faust_group.py); neither touches
Kafka or Faust itself.

The invariant: a committed offset C of a partition means every record below C is in the
target (written, superseded in its batch, or dead-lettered). By induction, a worker that
knows the partition's committed offset `base` may commit the end of the run of written
records that continues `base` without a hole, and nothing further.

Why not Faust's own acks: Faust commits "the first run of consecutive acked offsets" and
treats an acked offset one past the committed one as no gap (`min(acked) - committed > 1`),
and it acks records it skips during a rebalance. Seen here: a record held back while the
worker stopped was passed by a commit of later, never-written records. So the apply topics
are subscribed with `acks=False` and this ledger decides every commit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bridge.apply.dlq import RawRecord

log = logging.getLogger(__name__)
worker_log = logging.getLogger("ddb-bridge.apply")  # the worker's lines, one logger name

P = TypeVar("P")  # a partition identifier: (topic, partition) in the worker

Partition = tuple[str, int]


@dataclass
class OffsetLedger(Generic[P]):
    """Per partition: the next offset below which everything is known to be written."""

    _next: dict[P, int] = field(default_factory=dict)

    def known(self, tp: P) -> bool:
        return tp in self._next

    def set_base(self, tp: P, committed: int) -> None:
        """The broker's committed offset (or the log start when the group has none)."""
        self._next[tp] = committed

    def forget(self, tps: Iterable[P] | None = None) -> None:
        """After a rebalance another worker may have committed further: re-read the base."""
        if tps is None:
            self._next.clear()
        else:
            for tp in tps:
                self._next.pop(tp, None)

    def advance(self, tp: P, written_offsets: Iterable[int]) -> int | None:
        """Record a written batch; the offset to commit now, or None (nothing new or a hole)."""
        base = self._next.get(tp)
        if base is None:
            raise KeyError(f"no base offset known for {tp}")
        cur = base
        for offset in sorted(set(written_offsets)):
            if offset < cur:
                continue  # re-read after a rebalance or a replay: already below the base
            if offset != cur:
                log.error(
                    "hole between committed and written offsets; not committing past it "
                    "(the records after it are read again after the next rebalance or restart)",
                    extra={"partition": str(tp), "expected": cur, "got": offset},
                )
                # Re-read the base before the next commit: the hole may have been filled by
                # another worker, or the offsets may simply not exist (compaction).
                self._next.pop(tp, None)
                return cur if cur > base else None
            cur = offset + 1
        self._next[tp] = cur
        return cur if cur > base else None


class WrittenOffsets:
    """The commit path after a batch is written (or dead-lettered): commit what the ledger
    allows, through `commit`, the group's.

    `read_committed` gives the group's committed offsets of partitions the ledger does not
    know yet (first batch, or after a rebalance or a hole); it retries transient errors
    itself. `commit` returns False when a rebalance took the partitions meanwhile.
    """

    def __init__(
        self,
        read_committed: Callable[[list[Partition]], Awaitable[Mapping[Partition, int]]],
        commit: Callable[[Mapping[Partition, int]], Awaitable[bool]],
    ) -> None:
        self._read_committed = read_committed
        self._commit = commit
        self.ledger: OffsetLedger[Partition] = OffsetLedger()

    def forget(self) -> None:
        """Partitions are being revoked: another worker may commit further before they come
        back, so every base is read again."""
        self.ledger.forget()

    async def commit_written(self, records: Sequence[RawRecord]) -> None:
        """Commit after `records` are all in the target (written, superseded or dead)."""
        by_partition: dict[Partition, list[int]] = {}
        for record in records:
            by_partition.setdefault((record.topic, record.partition), []).append(record.offset)
        ledger = self.ledger
        unknown = [tp for tp in by_partition if not ledger.known(tp)]
        if unknown:
            bases = await self._read_committed(unknown)
            for tp in unknown:
                ledger.set_base(tp, bases[tp])
        commits = {}
        for tp, offsets in by_partition.items():
            offset = ledger.advance(tp, offsets)
            if offset is not None:
                commits[tp] = offset
        if commits and not await self._commit(commits):
            # Rebalanced meanwhile: nothing committed; the new owner re-reads, harmlessly.
            ledger.forget(commits)
            worker_log.info(
                "commit skipped: partitions rebalanced", extra={"partitions": len(commits)}
            )
