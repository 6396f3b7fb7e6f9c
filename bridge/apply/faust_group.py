"""Everything apply asks of Faust, behind one small interface: `FaustGroup`.

What Faust does here. An apply worker is one member of the Kafka consumer group
`ddb-bridge.apply.<target>`; faust-streaming (0.15.x, over aiokafka) is that membership:
joining the group, heartbeats in its own consumer thread (so a slow write does not cost the
partitions), rebalancing, seeking each assigned partition to the group's committed offset,
fetching, stamping every record with the group generation it was fetched in, and sending the
offset commit as a member of the current generation. `FaustGroup` offers exactly that:

    group = FaustGroup(kafka, apply, group_id, topics, data_dir)
    group.on_revoke(callback)          # partitions are being taken away: forget offsets
    group.on_joined(callback)          # a rebalance completed; `group.assigned()` is current
    await group.start()
    records = await group.next_batch(size, window_s)   # RawRecords of the current generation
    done = await group.commit({(topic, partition): next_offset})  # False: rebalanced away
    group.failure()                    # why Faust crashed, or None
    await group.stop()

Nothing else in apply touches a Faust or aiokafka object. Which offsets may be committed is
decided outside Faust (bridge/apply/offsets.py), after the write (bridge/apply/app.py).

What Faust does not do here, and why. The project's stack is Faust, but not Faust's
per-event path (agents, `Stream`, the conductor's callback per record) and not its acks:
- Speed. Profiled (cProfile, null sink, 2 cores): per record, `Consumer._drain_messages`
  awaits `wait_first(callback(message), suspend_flow.wait())` — two tasks and an
  `asyncio.wait`, about three event-loop iterations — then the conductor takes a lock, runs
  both serializers, builds an `Event` and queues it for a `Stream`, whose iterator adds
  processors, sensors and more loop hops. That capped apply near 10,000 records/s whatever
  the batch size, while a plain consumer that also Avro-decodes reads ~100,000/s
  (benchmarks/bench_apply.py; README "Benchmarks" and "Design notes"). So `FeedConsumer`
  keeps Faust's fetch loop and drops each record straight into a bounded `Feed`, which the
  worker drains a batch at a time.
- Commit-after-write. `Stream.take()` acks its batch in a `finally` around its `yield` (a
  crash or SIGTERM mid-write acks the unwritten batch, and `Consumer.on_stop` commits it);
  `noack_take` re-enables auto-acks after it returns; Faust acks records it skips during a
  rebalance; and its commit takes the first run of acked offsets with an off-by-one gap
  check (faust-streaming#312, #315, #606; robinhood/faust#604, #682). So the topics are subscribed
  with `acks=False` (Faust's periodic commit then never commits them) and `commit()` sends
  exactly the offsets it is given.

Faust's public API, checked against faust-streaming 0.15.3 (installed) and its master branch
(commit 181b1840, December 2026), and what is still private:
- The consumer class: the app's transport is replaced through the public `App.transport`
  setter by a subclass of the aiokafka `Transport` whose `Consumer` class attribute (the
  documented driver extension point) is `FeedConsumer`. (Before: an instance attribute
  shadowing the transport's class attribute.)
- The subscription: the topic is registered with the public `app.topics.add()` (the
  conductor's "register topic to be subscribed"). (Before: calling `Topic.__aiter__()`.)
- The commit: `ConsumerThread.commit(offsets)` is public and takes explicit offsets; it is
  called on the thread `FeedConsumer` created, so `Consumer._commit` is no longer called.
  The public `Consumer.commit()` / `force_commit()` commit from the ack bookkeeping only,
  which is what apply must not use; no public call commits given offsets.
- The stop checks in the fetch loop use the public `should_stop` (before: `_stopped.is_set`;
  it also holds once the consumer crashed, which ends the loop instead of spinning on).
- Still private, none with a public equivalent:
  - `Consumer._drain_messages` (overridden): the fetch loop that hands each record to the
    per-record callback; there is no public batch-delivery hook, and the callback path is
    the slow part above.
  - `Consumer._read_offset` (read and written in that loop): Faust's per-partition read
    position, also kept by its `seek`, `perform_seek` and revocation; the loop keeps
    Faust's rule of dropping records behind it.
  - `Consumer._wait_next_records`, `Consumer._buffered_partitions` (in
    `FeedConsumer.getmany`, a public method overridden to skip a high-watermark lookup
    and a monitor call per record and the round-robin across topics, and to hand over
    aiokafka's records as the worker's own instead of Faust messages): flow control and
    the active-partition fetch; not exposed otherwise.
  - the aiokafka driver's `Consumer._new_consumer_thread` (overridden): it builds its
    consumer thread class directly, with no setting or class attribute to choose another.
  - `AIOKafkaConsumerThread._commit` (replaced; it calls aiokafka's public `commit`): Faust's
    commits every offset with empty metadata, and apply's carry a note of skipped ranges
    (bridge/kafka/skipped_offsets.py). It also keeps the fix for a rebalance during the write that
    took every partition of a commit: Faust filtered the offsets to the still-assigned
    partitions and handed aiokafka an empty commit, which aiokafka refuses with
    `ValueError({})`, and Faust crashed the consumer (`apply` exited 1 when a second worker
    joined, on Apache Kafka; unchanged on master). The thread's public `commit()` runs
    `_commit` in the consumer thread, the one place where the assignment can be checked
    with no await before the commit.
  - `AIOKafkaConsumerThread._create_worker_consumer` (extended): Faust builds the aiokafka
    consumer `read_uncommitted` unless processing is exactly-once, with no setting for it;
    apply sets aiokafka's `_isolation_level` to `read_committed` before the consumer starts
    (it fails loudly if aiokafka stops keeping it there).
  - `AIOKafkaConsumerThread._fetch_records` (extended), aiokafka's `Fetcher._subscriptions`
    (the partitions' positions) and `Fetcher._create_fetch_waiter`: to tell the commit path
    which offsets each drain went through (bridge/apply/offsets.py), the drain runs with
    `timeout=0` — no await inside it — between two readings of the positions, and the wait
    for data happens outside it. aiokafka hands out a partition's records only from its
    current position, so the positions before and after are exactly the drain's bounds.
  - `AIOKafkaConsumerThread.verify_event_path` (overridden to call only its first part,
    `_verify_aiokafka_event_path`): Faust's periodic liveness check read a partition's
    position, which aiokafka asserts is set, and crashed apply while retention's reset of
    that position was under way; the part kept is the one that applies without acks.
  These are why pyproject.toml pins faust-streaming to 0.15.x; tests/unit/
  test_commit_after_rebalance.py and the apply integration tests exercise each of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport
from faust.types import TP

from bridge.apply.offsets import Passed
from bridge.dlq.writer import RawRecord
from bridge.kafka.client_config import faust_settings
from bridge.kafka.limits import consumer_fetch_bytes
from bridge.model.errors import Unavailable
from bridge.runtime.settings import ApplySettings, KafkaSettings

Partition = tuple[str, int]  # (topic, partition)


class Drain(dict[Any, list[Any]]):
    """The records of one fetch, per partition (aiokafka's `RecordMap`), and `moved`: each
    partition's consumer positions (before, after) around the drain, where it moved."""

    moved: dict[Any, tuple[int, int]]


class Batch(NamedTuple):
    """What `FaustGroup.next_batch` hands over: records, and the drains that ended with them
    (bridge/apply/offsets.py says why the commit path needs those)."""

    records: list[RawRecord]
    passed: list[Passed]
    generation: int = -1  # the group generation they were taken in


class Feed:
    """A bounded buffer of records (and drain spans): the fetch loop puts, the apply loop
    takes batches.

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
        self.clears = 0  # how many times `clear` dropped what was buffered

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, message: Any) -> None:
        if not self.put_nowait(message):
            await self.room()

    def put_nowait(self, message: Any) -> bool:
        """Buffer `message`; False when the buffer is now full (then await `room()` before
        the next). Not a coroutine: the fetch loop calls it once per record."""
        items = self._items
        items.append(message)
        if len(items) >= self._want:
            self._ready.set()
        if len(items) >= self.maxsize:
            self._room.clear()
            return False
        return True

    async def room(self) -> None:
        """Wait until the buffer has room again."""
        await self._room.wait()

    def clear(self) -> None:
        """Drop everything buffered (records of a generation that just ended)."""
        self._items.clear()
        self.clears += 1
        self._room.set()

    async def take(self, size: int, window_s: float, idle_s: float = 1.0) -> list[Any]:
        """Up to `size` records: waits at most `idle_s` for the first (none: empty, so the
        caller's loop turns and shows it is alive while idle or during a broker outage),
        then at most `window_s` for the rest."""
        items = self._items
        loop = asyncio.get_running_loop()
        if not items:
            self._want = 1
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), idle_s)
            except TimeoutError:
                return []
            if not items:
                return []
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
    """Faust's consumer thread, reading read_committed, reporting the positions each drain
    went through, and with a commit that carries metadata and survives losing all its
    partitions."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust reads read_uncommitted unless processing is exactly-once, and has no setting
        # for it: aborted transactions of other producers (MirrorMaker 2, Connect, a repair
        # tool) would be applied. aiokafka reads this attribute when the consumer starts
        # (its Fetcher); tests/unit/test_faust_group.py checks the fetcher it builds.
        if getattr(consumer, "_isolation_level", None) != "read_uncommitted":
            raise RuntimeError(
                "aiokafka's consumer no longer keeps its isolation level where apply sets "
                "it; apply cannot guarantee read_committed"
            )
        consumer._isolation_level = "read_committed"
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Drain:
        """Faust's fetch, as a `Drain`: its records and the positions each partition's drain
        started and ended at. The drain itself (`timeout=0`) runs without an await in
        between, so the positions read just before and after it are exactly its bounds;
        waiting for data happens outside it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or 0)
        fetcher = consumer._fetcher
        while True:
            settled = not fetcher._subscriptions.reassignment_in_progress
            before = _positions(consumer)
            records = await super()._fetch_records(
                consumer, active_partitions, timeout=0, max_records=max_records
            )
            drain = Drain(records)
            after = _positions(consumer) if settled else {}
            drain.moved = {
                tp: (before[tp], end)
                for tp, end in after.items()
                if tp in before and end > before[tp]
            }
            remaining = deadline - loop.time()
            if drain or drain.moved or remaining <= 0 or not self.consumer.flow_active:
                return drain
            waiter = fetcher._create_fetch_waiter()
            done, _pending = await asyncio.wait([waiter], timeout=remaining)
            if not done:
                waiter.cancel()
                return Drain()
            waiter.result()  # an authorization error, as aiokafka's own wait raises it

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's periodic check that each partition keeps being fetched, without the checks
        of its streams and acks that follow it. apply subscribes with `acks=False`, so those
        never apply here; but on the way to them Faust reads aiokafka's `position`, which
        asserts the partition has one, and it has none while the partition's offset is being
        reset (retention deleted the records at its position). The check crashed the consumer
        there and stopped apply (seen in CI: a lagging worker whose log start moved)."""
        self._verify_aiokafka_event_path(now, tp)

    async def _commit(self, offsets: Any) -> bool:
        """Commit `offsets` ({TP: OffsetAndMetadata}, from `FaustGroup.commit`) with their
        metadata. Faust's own commit sends empty metadata, and apply's carries the note of
        ranges skipped on the partition (bridge/kafka/skipped_offsets.py).

        When a rebalance during the write took every partition of a commit, Faust's commit
        hands aiokafka an empty commit, which aiokafka refuses with ValueError({}), and Faust
        crashes the consumer. Here nothing left to commit is the "rebalanced" case: the new
        owner reads those records again. Checked in the consumer thread, with no await
        before the commit, so the assignment cannot change in between."""
        from aiokafka.errors import CommitFailedError
        from aiokafka.structs import TopicPartition

        assigned = self.assignment()
        kept = {tp: meta for tp, meta in offsets.items() if tp in assigned}
        if not kept:
            return False
        try:
            # aiokafka wants its own TopicPartition type as keys, not Faust's TP.
            await self._ensure_consumer().commit(
                {TopicPartition(tp.topic, tp.partition): meta for tp, meta in kept.items()}
            )
        except CommitFailedError as exc:
            if "already rebalanced" in str(exc):
                return False
            self.log.exception("commit failed: %r", exc)
            await self.crash(exc)
            return False
        except Exception as exc:
            self.log.exception("commit failed: %r (assignment %r)", exc, assigned)
            await self.crash(exc)
            return False
        # Faust's check that partitions keep committing reads this (monotonic time).
        self.tp_last_committed_at.update(dict.fromkeys(kept, time.monotonic()))
        return True


def _positions(consumer: Any) -> dict[Any, int]:
    """The consumer's position in each assigned partition that has one (aiokafka's own)."""
    assignment = consumer._fetcher._subscriptions.subscription
    assignment = assignment.assignment if assignment is not None else None
    if assignment is None:
        return {}
    out = {}
    for tp in assignment.tps:
        state = assignment.state_value(tp)
        if state is not None and state.has_valid_position:
            out[tp] = state.position
    return out


class FeedConsumer(Consumer):
    """Faust's aiokafka consumer, delivering into its transport's `Feed` (see the module
    docstring for what it keeps of Faust's and what it replaces)."""

    # Mode's lifecycle lines go under Faust's logger, which bridge/runtime/logs.py quiets.
    logger = logging.getLogger("faust.apply")
    thread_class: type[AIOKafkaConsumerThread] = CommitThread
    commit_thread: AIOKafkaConsumerThread

    @property
    def feed(self) -> Feed:
        return cast(FeedTransport, self.transport).feed

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        # Kept to commit through the thread's public `commit()` (see `FaustGroup.commit`).
        self.commit_thread = self.thread_class(self, loop=self.loop, beacon=self.beacon)
        return self.commit_thread

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        """Faust's `getmany`, minus a high-watermark lookup and a monitor call per record
        and its round-robin across topics (the feed takes everything anyway). Same checks:
        stop at a flow suspension or a generation change, skip partitions that are not
        active, seek back when inactive.

        Not even once per partition: Faust's monitor (its web views, which apply does not
        serve) was the only reader of that high watermark, and aiokafka's `highwater()`
        asserts the partition is still assigned; a revocation while this generator waited
        for room in the feed would have crashed the consumer at the next partition."""
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
        app = self.app
        moved: dict[Any, tuple[int, int]] = getattr(records, "moved", {})
        for tp, tp_records in records.items():
            if active_partitions is not None and not (
                tp in active_partitions or tp in self._buffered_partitions
            ):
                continue
            for record in tp_records:
                if not self.flow_active or app.consumer_generation_id != generation_id:
                    return
                # The worker's record straight from aiokafka's, stamped with its generation
                # (Faust's `_to_message` made a Message of 13 fields per record, which was
                # then copied into a RawRecord: ~2.4 µs a record, for nothing kept).
                headers = record.headers
                yield (
                    tp,
                    _FeedRecord(
                        RawRecord(
                            record.topic,
                            record.partition,
                            record.offset,
                            record.key,
                            record.value,
                            tuple(headers) if headers else (),
                        ),
                        generation_id,
                    ),
                )
            if tp in moved:
                yield tp, _passed(tp, moved[tp], generation_id)
        # Partitions whose drain held nothing to deliver (only markers or aborted batches).
        for tp, span in moved.items():
            if tp in records or (active_partitions is not None and tp not in active_partitions):
                continue
            if not self.flow_active or app.consumer_generation_id != generation_id:
                return
            yield tp, _passed(tp, span, generation_id)

    async def _drain_messages(self, fetcher: Any) -> None:
        feed = self.feed
        put_nowait, room = feed.put_nowait, feed.room
        getmany = self.getmany
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        suspended = self.suspend_flow.is_set
        sleep = asyncio.sleep
        since_yield = 0
        try:
            while not (self.should_stop or fetcher.should_stop):
                ait = cast(Any, getmany(timeout=1.0))
                await self.sleep(0)
                if self.should_stop:
                    continue
                # Partitions of this drain with a record not put into the feed: their drain
                # span must not reach the commit path (it would cover that record). So must
                # no span of a drain whose records a revocation cleared from the feed while
                # this loop waited for room (seen: the span then covered 192 records that
                # were never written).
                dropped: set[Any] = set()
                clears = feed.clears
                async for tp, message in ait:
                    if type(message) is _FeedPassed:
                        if feed.clears != clears or tp in dropped or suspended():
                            continue
                        if not put_nowait(message):
                            await room()
                        continue
                    since_yield += 1
                    if since_yield > 1000:
                        await sleep(0)  # let the apply loop and callbacks run
                        since_yield = 0
                    offset = message.record.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        # Records arriving while the flow is suspended (a rebalance) are
                        # dropped, as Faust's streams drop them: they are read again from
                        # the committed offset afterwards.
                        if suspended():
                            dropped.add(tp)
                        elif not put_nowait(message):
                            await room()  # full: backpressure
                        set_read_offset(tp, offset)
                    else:
                        dropped.add(tp)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise


class FeedTransport(Transport):
    """Faust's aiokafka transport, building a `FeedConsumer` that delivers into `feed`."""

    Consumer = FeedConsumer

    def __init__(self, url: Any, app: Any, feed: Feed) -> None:
        super().__init__(url, app)
        self.feed = feed


class FaustGroup:
    """This worker's membership of the apply group: records in, offsets out."""

    def __init__(
        self,
        kafka: KafkaSettings,
        apply: ApplySettings,
        group: str,
        topics: Sequence[str],
        data_dir: str,
    ) -> None:
        self._topics = list(topics)
        self._bootstrap = kafka.bootstrap_servers
        self._feed = Feed(maxsize=feed_size(apply))
        self._app = _new_app(kafka, apply, group, data_dir)
        # Before anything creates the consumer (at start).
        self._app.transport = FeedTransport(self._app.conf.broker_consumer, self._app, self._feed)
        # acks=False: Faust never commits these topics by itself; `commit` does.
        self._app.topics.add(
            self._app.topic(*self._topics, key_serializer="raw", value_serializer="raw", acks=False)
        )
        self._revoke_callbacks: list[Callable[[], None]] = []
        self._app.on_partitions_revoked.connect(self._revoked)

    # -- events ---------------------------------------------------------------------------

    def on_revoke(self, callback: Callable[[], None]) -> None:
        """Call `callback` when partitions are being revoked (before others may own them)."""
        self._revoke_callbacks.append(callback)

    def on_joined(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every completed rebalance."""

        async def joined(*_args: Any, **_kwargs: Any) -> None:
            callback()

        self._app.on_rebalance_complete.connect(joined)

    async def _revoked(self, *_args: Any, **_kwargs: Any) -> None:
        # Partitions may move and come back with offsets committed by others; what is
        # buffered belongs to the generation that just ended.
        self._feed.clear()
        for callback in self._revoke_callbacks:
            callback()

    # -- records and offsets --------------------------------------------------------------

    async def start(self) -> None:
        from aiokafka.errors import KafkaConnectionError

        try:
            await self._app.start()
        except KafkaConnectionError as exc:
            # The broker is down or unreachable at start-up: nothing was consumed yet, so a
            # restart loses nothing (Unavailable: exit 75, not a traceback).
            raise Unavailable(
                f"Kafka at {self._bootstrap} did not answer while apply joined "
                f"its group ({exc}); run it again once the broker is reachable"
            ) from exc

    async def stop(self) -> None:
        await self._app.stop()

    async def next_batch(self, size: int, window_s: float) -> Batch:
        """Up to `size` records and drain spans (waits for the first, then at most
        `window_s`), without those of an older group generation: whoever owns their
        partition now reads them again from the committed offset (Faust's streams drop them
        the same way). May be empty."""
        messages = await self._feed.take(size, window_s)
        generation = self._app.consumer_generation_id
        records: list[RawRecord] = []
        passed: list[Passed] = []
        for m in messages:
            if m.generation_id != generation:
                continue
            if type(m) is _FeedPassed:
                passed.append(m.passed)
            else:
                records.append(m.record)
        return Batch(records, passed, generation)

    def generation(self) -> int:
        """The group generation records are taken in now (a rebalance starts a new one)."""
        return int(self._app.consumer_generation_id)

    async def commit(
        self, offsets: Mapping[Partition, int], notes: Mapping[Partition, str] | None = None
    ) -> bool:
        """Commit exactly `offsets` (next offset to read, per partition), each with its note
        from `notes` as metadata, as a member of the current generation. False, with nothing
        committed, when a rebalance took those partitions: their new owner reads the records
        again."""
        from aiokafka.structs import OffsetAndMetadata

        if not offsets:
            return True
        notes = notes or {}
        consumer = cast(FeedConsumer, self._app.consumer)
        return bool(
            await consumer.commit_thread.commit(
                {
                    TP(t, p): OffsetAndMetadata(o, notes.get((t, p), ""))
                    for (t, p), o in offsets.items()
                }
            )
        )

    def assigned(self) -> set[Partition]:
        return {(tp.topic, tp.partition) for tp in self._app.consumer.assignment()}

    def failure(self) -> str | None:
        """Why Faust's app or consumer crashed, or None while both run."""
        app, consumer = self._app, self._app.consumer
        if app.crashed or consumer.crashed:
            return repr(app.crash_reason or consumer.crash_reason)
        return None


class _FeedRecord(NamedTuple):
    """A record in the feed, stamped with the group generation it was fetched in."""

    record: RawRecord
    generation_id: int


class _FeedPassed(NamedTuple):
    """A drain span in the feed, stamped with its generation like the records around it."""

    passed: Passed
    generation_id: int


def _passed(tp: Any, span: tuple[int, int], generation_id: int) -> _FeedPassed:
    return _FeedPassed(Passed(tp.topic, tp.partition, span[0], span[1]), generation_id)


def feed_size(apply: ApplySettings) -> int:
    """Records buffered between the fetch and the apply loop: room for a few batches (a
    buffer of barely one batch made every batch wait for a fetch)."""
    return max(4096, apply.batch_size * 4)


def _new_app(kafka: KafkaSettings, apply: ApplySettings, group: str, data_dir: str) -> faust.App:
    return faust.App(
        group,
        broker=[f"kafka://{h.strip()}" for h in kafka.bootstrap_servers.split(",")],
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        datadir=data_dir,
        autodiscover=False,
        # The leader-election topic is for Faust tables; apply has none.
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        # Per-partition fetch size (aiokafka's max_partition_fetch_bytes): the largest
        # change event must fit whole (bridge/kafka/limits.py).
        consumer_max_fetch_size=consumer_fetch_bytes(kafka),
        broker_session_timeout=apply.session_timeout_ms / 1000,
        broker_heartbeat_interval=apply.heartbeat_interval_ms / 1000,
        broker_commit_interval=apply.commit_interval_ms / 1000,
        # Nothing is acked (acks=False); waiting for "all acked" on stop would hang.
        stream_wait_empty=False,
        # Faust pauses a partition's fetching when its buffer is 80% full; as roomy as the
        # feed.
        stream_buffer_maxsize=feed_size(apply),
        # Records handed over per poll: at most a feed's worth. Unset (Faust's default),
        # aiokafka's getmany turned everything fetched into record objects at once — a
        # backlog's fetch is up to 48 MiB per partition, ~100,000 records each — so apply
        # held ~1 GB behind a million-event backlog, and building them kept the consumer
        # thread from heartbeating until the group expired the session and rebalanced,
        # over and over (benchmarks/bench_memory.py). Fetched bytes beyond this stay in
        # aiokafka's buffer, decoded only when polled.
        broker_max_poll_records=feed_size(apply),
        # Credentials and what else of [kafka.extra] aiokafka can take; the rest is refused
        # here, at start-up, by name (bridge/kafka/client_config.py).
        **faust_settings(kafka),
    )
