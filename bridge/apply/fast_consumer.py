"""Faust's aiokafka consumer, feeding `apply` directly from its fetch loop.

Profiled here (cProfile, null sink, 2 cores): per record, Faust's `Consumer._drain_messages`
awaits `wait_first(callback(message), suspend_flow.wait())` — two tasks and an
`asyncio.wait`, about three event-loop iterations — and then the conductor takes a lock,
runs both serializers, builds an `Event` and queues it for a `Stream`, whose iterator adds
processors, sensors and more loop hops. Together they capped apply near 10,000 records/s
whatever the batch size, while a plain consumer that also Avro-decodes reads ~100,000/s.

`FeedConsumer` keeps everything of Faust's consumer that matters here — the group
membership, heartbeats and rebalancing in its own thread, the seek to committed offsets on
assignment, the generation stamp on every record — and replaces only the delivery: records
go straight into a bounded `Feed` that the apply loop drains in batches. Records that arrive
while the flow is suspended (a rebalance) are dropped, as Faust's streams drop them; they
are read again from the committed offset after the rebalance. Offsets are unaffected: apply
commits through its own ledger.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, cast

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer


class Feed:
    """A bounded buffer of Faust `Message`s: the fetch loop puts, the apply loop takes batches.

    `put` blocks the fetch loop while the buffer is full (backpressure: the consumer stops
    polling; group membership and heartbeats live in the consumer thread and go on).
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        self._ready = asyncio.Event()  # set when at least `_want` records are buffered
        self._room = asyncio.Event()
        self._room.set()
        self._want = 1

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, message: Any) -> None:
        items = self._items
        items.append(message)
        if len(items) >= self._want:
            self._ready.set()
        if len(items) >= self.maxsize:
            self._room.clear()
            await self._room.wait()

    def clear(self) -> None:
        """Drop everything buffered (records of a generation that just ended)."""
        self._items.clear()
        self._room.set()

    async def take(self, size: int, window_s: float) -> list[Any]:
        """Up to `size` records: waits for the first, then at most `window_s` for the rest."""
        items = self._items
        loop = asyncio.get_running_loop()
        while not items:
            self._want = 1
            self._ready.clear()
            await self._ready.wait()
        deadline = loop.time() + window_s
        while len(items) < size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # Woken once when the batch is full, not once per record.
            self._want = size
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), remaining)
            except TimeoutError:
                break
        batch = [items.popleft() for _ in range(min(size, len(items)))]
        if len(items) < self.maxsize:
            self._room.set()
        return batch


class CommitThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with a commit that survives losing all its partitions."""

    async def _commit(self, offsets: Any) -> bool:
        # Faust commits only the partitions still assigned; when a rebalance during the write
        # took them all, it hands aiokafka an empty commit, which aiokafka refuses with
        # ValueError({}), and Faust crashes the consumer (`apply` exited 1 when a second worker
        # joined, on Apache Kafka). Nothing left to commit is the "rebalanced" case: the new
        # owner reads those records again. Checked here, in the consumer thread, with no await
        # before Faust's own filter, so the assignment cannot change in between.
        assigned = self.assignment()
        if not any(tp in assigned for tp in offsets):
            return False
        return bool(await super()._commit(offsets))


class FeedConsumer(Consumer):
    """Set `feed` on a subclass (one per app): the consumer then delivers into it."""

    feed: Feed
    thread_class: type[AIOKafkaConsumerThread] = CommitThread

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return self.thread_class(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        """Faust's `getmany`, minus a high-watermark lookup and a monitor call per record
        (~10 µs each, once per partition per fetch here) and its round-robin across topics
        (the feed takes everything anyway). Same checks: stop at a flow suspension or a
        generation change, skip partitions that are not active, seek back when inactive."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            try:
                await self.perform_seek()
            except Exception as exc:
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return
        to_message = self._to_message
        app = self.app
        track_end_offset = app.monitor.track_tp_end_offset
        for tp, tp_records in records.items():
            if active_partitions is not None and not (
                tp in active_partitions or tp in self._buffered_partitions
            ):
                continue
            track_end_offset(tp, self.highwater(tp))
            for record in tp_records:
                if not self.flow_active or app.consumer_generation_id != generation_id:
                    return
                yield tp, to_message(tp, record)

    async def _drain_messages(self, fetcher: Any) -> None:
        put = self.feed.put
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        suspended = self.suspend_flow.is_set
        sleep = asyncio.sleep
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                ait = cast(Any, getmany(timeout=1.0))
                await self.sleep(0)
                if self.should_stop:
                    continue
                async for tp, message in ait:
                    since_yield += 1
                    if since_yield > 1000:
                        await sleep(0)  # let the apply loop and callbacks run
                        since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        if not suspended():
                            await put(message)
                        set_read_offset(tp, offset)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
