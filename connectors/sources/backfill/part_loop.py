"""The loop every back-fill worker thread runs: claim parts, read them, publish, save positions.

A `BackfillJob` is one worker process's share of a run. Its threads claim PENDING parts from
the lease table, read each through the source protocol (`bridge.ports.source`): the source lists
and claims the run's parts (`RunParts`) and opens a claimed part as a reader (a scan
segment, an export file); this loop publishes every batch the reader returns, saves the
reader's position once Kafka acknowledged every record before it, and records the part DONE
at its end. Parts held by other live workers are left alone; parts whose owner died (lease
expired) are taken over. The loop ends when every part is DONE or held by this process, or
when `stop` is set; a stopped part keeps its last acknowledged position and is handed back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.kafka.publisher import Publisher
from bridge.model.acks import AckTracker
from bridge.model.errors import AttributeTypeError, PermanentError, TransientError
from bridge.model.event import ChangeEvent
from bridge.ports.source import Batch, PartReader, PartSource
from connectors.dynamodb.leases import LeaseLost
from connectors.sources.backfill.runs import (
    DONE,
    LeaseKeeper,
    Part,
    RunInfo,
    RunStore,
)
from connectors.sources.backfill.stats import Stats

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 1.0


def in_part(exc: PermanentError | TransientError, where: str) -> Exception:
    """The publisher's error (it knows the topic and key) with the part it stopped."""
    return type(exc)(f"{where}: {exc}")


class EventReader(PartReader[Batch[ChangeEvent]], Protocol):
    """A back-fill part's reader: the protocol's reader, plus what publishing its records needs."""

    @property
    def checkpoints(self) -> bool:
        """True: positions inside the part are saved (scan pages), so every record's
        acknowledgement is tracked. False: a stopped part is read again from its start
        (export files), so records are not tracked one by one (that costs more than the
        record on the export's hot path); the producer is flushed at the part's end instead."""
        ...

    @property
    def where(self) -> str:
        """The part, for messages: table and segment, or the file."""
        ...

    def refuse(self, index: int, exc: Exception) -> None:
        """Record `index` of the current batch, the last one handed out, could not be
        published (its key cannot be encoded): raise, or set it aside (the DLQ) when bad
        records are skipped."""
        ...

    def close(self) -> None: ...


BackfillParts = PartSource[Part, EventReader]


class RunParts:
    """A run's parts as the lease table holds them: the listing and claiming half of a
    back-fill `PartSource`, the same for every kind of part."""

    def __init__(self, job: BackfillJob) -> None:
        self.job = job

    def list_parts(self) -> list[Part]:
        return self.job.store.parts(self.job.run)

    def claim(self, part: Part) -> Part | None:
        return self.job.store.claim(self.job.run.run_id, part.index)


@dataclass
class BackfillJob:
    table: str
    key_names: tuple[str, ...]
    ttl_attribute: str | None  # None: do not skip expired items
    publisher: Publisher
    store: RunStore
    run: RunInfo
    stats: Stats = field(default_factory=Stats)
    stop: threading.Event = field(default_factory=threading.Event)
    skip_bad_lines: bool = False
    key_types: tuple[str, ...] = ()  # S, N or B per key attribute (empty: not checked)
    now_s: float = field(default_factory=time.time)  # TTL reference, fixed for the run
    _active: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    keeper: LeaseKeeper | None = None
    # Set when another process of the command finished a part: threads waiting for parts
    # held by others look again at once instead of after half a lease.
    _wake: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.keeper = LeaseKeeper(self.store, self.run.run_id).start()
        parts = self.store.parts(self.run)
        done = sum(1 for p in parts if p.done)
        self.stats.add(parts_total=len(parts), parts_skipped=done, parts_done=done)
        already = sum(p.items for p in parts if p.done)
        if self.stats.total_items is not None:
            # Items of parts finished by earlier processes are not read again: leave them
            # out of this process's progress total.
            self.stats.total_items = max(0, self.stats.total_items - already)

    def close(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()

    def release(self, part: Part) -> None:
        with self._lock:
            self._active.discard(part.index)
        if self.keeper is not None:
            self.keeper.drop(part.index)

    def nudge(self) -> None:
        """The run's parts changed elsewhere (another process finished one): look again."""
        self._wake.set()

    def _idle(self, seconds: float) -> None:
        """Wait for parts held by live workers: up to `seconds`, less if stopped or nudged."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._wake.wait(min(left, 0.1)):
                break
        self._wake.clear()

    def lost(self, index: int) -> bool:
        return self.keeper is not None and self.keeper.lost(index)

    def wait_acked(self, tracker: AckTracker[Any], what: str) -> None:
        """Serve delivery callbacks until every record of `tracker` is acknowledged."""
        while not tracker.all_acked():
            if tracker.failure is not None:
                raise PermanentError(
                    f"{what}: Kafka delivery failed ({tracker.failure}); its cursor stays "
                    f"where it was, so a re-run publishes it again"
                )
            self.publisher.poll(0.05)

    def claim_loop(self, source: BackfillParts) -> None:
        """Claim and read parts until none is left for this process (or `stop`)."""
        while not self.stop.is_set():
            parts = source.list_parts()
            pending = [p for p in parts if not p.done]
            with self._lock:
                foreign = [p for p in pending if p.index not in self._active]
            if not foreign:
                return
            took = False
            for part in foreign:
                if self.stop.is_set():
                    return
                if not self.store.claimable(part):
                    continue  # a live worker holds it
                with self._lock:
                    if part.index in self._active:
                        continue
                    self._active.add(part.index)
                claimed = source.claim(part)
                if claimed is None:
                    with self._lock:
                        self._active.discard(part.index)
                    continue
                assert self.keeper is not None
                self.keeper.hold(part.index)
                self.stats.add(parts_claimed=1)
                took = True
                self.read_part(source, claimed)
            if not took:
                # Everything left is held by live workers: wait, and take over if one dies.
                self._idle(max(0.2, self.store.lease_ms / 2000))

    def read_part(self, source: BackfillParts, part: Part) -> None:
        """Read one claimed part to its end (DONE) or until `stop` (handed back)."""
        try:
            reader = source.open(part)
            try:
                self._publish_part(reader, part)
            finally:
                reader.close()
        finally:
            self.release(part)

    def _publish_part(self, reader: EventReader, part: Part) -> None:
        run = self.run
        # Positions paired with the part's item count, so a resumed part counts on.
        tracker: AckTracker[tuple[str, int]] = AckTracker()
        track = tracker if reader.checkpoints else None
        publish, publish_page = self.publisher.publish, self.publisher.publish_batch
        published = part.items
        last_saved: tuple[str, int] | None = None
        saved_at = time.monotonic()
        finished = False
        while not self.stop.is_set():
            if self.lost(part.index):
                raise LeaseLost(f"{reader.where}: claim taken over by another worker")
            batch = reader.read()
            if track is not None:
                # A page is one tracked group (its position is marked after it, below); a
                # record whose key cannot be encoded is the reader's to refuse, as below.
                try:
                    sent = publish_page(list(batch.records), tracker, None, reader.refuse)
                except (PermanentError, TransientError) as exc:
                    raise in_part(exc, reader.where) from exc
            else:
                sent = 0
                for n, event in enumerate(batch.records):
                    try:
                        publish(event)
                    except (AttributeTypeError, ArithmeticError) as exc:
                        # The key is normalized while publishing: one that cannot be is a
                        # bad record like any other, for the reader to refuse.
                        reader.refuse(n, exc)
                        continue
                    except (PermanentError, TransientError) as exc:
                        # Kafka refused an earlier record: the part stops here, named.
                        raise in_part(exc, reader.where) from exc
                    sent += 1
            published += sent
            self.stats.add(published=sent)
            if batch.end:
                tracker.mark((DONE, published))
                finished = True
                break
            position = reader.position
            if track is None or position is None:
                continue
            tracker.mark((position, published))
            safe = tracker.safe_position()
            if (
                safe is not None
                and safe != last_saved
                and time.monotonic() - saved_at >= CHECKPOINT_EVERY_S
            ):
                self.store.checkpoint(run.run_id, part.index, safe[0], safe[1])
                last_saved, saved_at = safe, time.monotonic()
        if finished:
            if track is None:
                # A part is DONE only once Kafka acknowledged every record of it.
                try:
                    self.publisher.flush()
                except (PermanentError, TransientError) as exc:
                    raise in_part(exc, reader.where) from exc
            self.wait_acked(tracker, reader.where)
            self.store.finish(run.run_id, part.index, published)
            self.stats.add(parts_done=1)
            log.info(
                "back-fill part finished",
                extra={
                    "table": self.table,
                    "part": part.index,
                    "label": part.label,
                    "items": published,
                },
            )
            return
        # Stopped: save what is acknowledged and hand the part back now rather than at
        # lease expiry.
        self.wait_acked(tracker, reader.where)
        safe = tracker.safe_position()
        if safe is not None and safe != last_saved:
            self.store.checkpoint(run.run_id, part.index, safe[0], safe[1])
        self.store.release(run.run_id, part.index)
