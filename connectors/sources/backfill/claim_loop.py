"""The claim loop every back-fill worker runs, and the job state it shares with its parts.

A `BackfillJob` is one worker process's share of a run: it claims PENDING parts from the
lease table (`RunStore`), hands each to the source's part reader, and keeps the leases of
the parts it holds alive. Parts held by other live workers are left alone; parts whose
owner died (lease expired) are taken over. The loop ends when every part is DONE or held
by this process, or when `stop` is set.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.acks import AckTracker
from bridge.errors import BridgeError, PermanentError
from bridge.publisher import Publisher
from connectors.sources.backfill.runs import LeaseKeeper, Part, RunInfo, RunStore
from connectors.sources.backfill.stats import Stats

log = logging.getLogger(__name__)


class StoppedError(BridgeError):
    """The worker was asked to stop (Ctrl-C) in the middle of a part; its cursor is saved."""


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

    def claim_loop(self, process: Callable[[Part], None]) -> None:
        """Claim and process parts until none is left for this process (or `stop`)."""
        while not self.stop.is_set():
            parts = self.store.parts(self.run)
            pending = [p for p in parts if not p.done]
            with self._lock:
                foreign = [p for p in pending if p.index not in self._active]
            if not foreign:
                return
            now_ms = int(time.time() * 1000)
            took = False
            for part in foreign:
                if self.stop.is_set():
                    return
                if part.owner not in (None, self.store.owner) and part.expires_ms >= now_ms:
                    continue  # a live worker holds it
                with self._lock:
                    if part.index in self._active:
                        continue
                    self._active.add(part.index)
                claimed = self.store.claim(self.run.run_id, part.index)
                if claimed is None:
                    with self._lock:
                        self._active.discard(part.index)
                    continue
                assert self.keeper is not None
                self.keeper.hold(part.index)
                self.stats.add(parts_claimed=1)
                took = True
                process(claimed)
            if not took:
                # Everything left is held by live workers: wait, and take over if one dies.
                self.stop.wait(max(0.2, self.store.lease_ms / 2000))
