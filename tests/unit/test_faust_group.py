"""The Faust boundary without a broker: how `FaustGroup` is wired into Faust, what a batch
holds, and the commit path after a write (`WrittenOffsets`) with a fake group."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from bridge.apply.faust_group import (
    Batch,
    FaustGroup,
    FeedConsumer,
    _FeedRecord,
    _passed,
    feed_size,
)
from bridge.apply.offsets import Partition, Passed, WrittenOffsets
from bridge.dlq.writer import RawRecord
from bridge.kafka.lag import CommittedBase
from bridge.kafka.skipped_offsets import SkippedRange
from bridge.runtime.settings import ApplySettings, KafkaSettings


def new_group(tmp_path: Path) -> FaustGroup:
    return FaustGroup(
        KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        ApplySettings(batch_size=10),
        "ddb-bridge.apply.test",
        ["p.a.changes", "p.b.changes"],
        data_dir=str(tmp_path),
    )


def test_the_group_subscribes_its_topics_without_faust_acks_and_feeds_its_consumer(
    tmp_path: Path,
) -> None:
    async def check() -> None:
        group = new_group(tmp_path)
        app: Any = group._app
        [topic] = list(app.topics)  # registered through the conductor's public `add`
        assert set(topic.topics) == {"p.a.changes", "p.b.changes"}
        assert topic.acks is False  # Faust never commits these topics itself
        consumer = app.consumer
        assert isinstance(consumer, FeedConsumer)
        assert consumer.feed is group._feed
        # The thread `commit` goes through is the one the consumer runs.
        assert consumer.commit_thread is consumer._thread

    asyncio.run(check())


def test_a_batch_holds_only_records_of_the_current_generation(tmp_path: Path) -> None:
    def message(offset: int, generation: int) -> _FeedRecord:
        record = RawRecord("p.a.changes", 1, offset, b"k", b"v", (("h", b"1"),))
        return _FeedRecord(record, generation)

    async def check() -> Batch:
        group = new_group(tmp_path)
        app: Any = group._app
        app.consumer_generation_id = 7
        for offset, generation in [(10, 6), (11, 7), (12, 7)]:
            await group._feed.put(message(offset, generation))
        # Drain spans are generation-stamped like records: an older one is dropped too.
        await group._feed.put(_passed(TP("p.a.changes", 1), (9, 11), 6))
        await group._feed.put(_passed(TP("p.a.changes", 1), (11, 14), 7))
        return await group.next_batch(10, 0.01)

    batch = asyncio.run(check())
    assert batch.records == [
        RawRecord("p.a.changes", 1, 11, b"k", b"v", (("h", b"1"),)),
        RawRecord("p.a.changes", 1, 12, b"k", b"v", (("h", b"1"),)),
    ]
    assert batch.passed == [Passed("p.a.changes", 1, 11, 14)]


def test_a_revocation_empties_the_feed_and_tells_the_commit_path(tmp_path: Path) -> None:
    told: list[str] = []

    async def check() -> int:
        group = new_group(tmp_path)
        group.on_revoke(lambda: told.append("revoked"))
        await group._feed.put(object())
        await group._app.on_partitions_revoked.send(set())
        return len(group._feed)

    assert asyncio.run(check()) == 0
    assert told == ["revoked"]


def record(partition: int, offset: int) -> RawRecord:
    return RawRecord("t", partition, offset, b"k", b"v")


class FakeGroup:
    def __init__(self, committed: dict[Partition, int]) -> None:
        self.committed = committed  # the broker's view
        self.notes: dict[Partition, str] = {}
        self.log_start: dict[Partition, int] = {}
        self.reads: list[list[Partition]] = []
        self.commits: list[dict[Partition, int]] = []
        self.reported: list[tuple[str, SkippedRange]] = []
        self.rebalanced = False

    async def read(self, partitions: list[Partition]) -> Mapping[Partition, CommittedBase]:
        from bridge.kafka import skipped_offsets

        self.reads.append(sorted(partitions))
        return {
            tp: CommittedBase(
                self.committed.get(tp),
                self.log_start.get(tp, 0),
                tuple(skipped_offsets.decode(self.notes.get(tp), tp[1], "test")),
            )
            for tp in partitions
        }

    async def start(self, tp: Partition) -> int:
        return self.log_start.get(tp, 0)

    async def commit(
        self, offsets: Mapping[Partition, int], notes: Mapping[Partition, str]
    ) -> bool:
        if self.rebalanced:
            return False
        self.commits.append(dict(offsets))
        self.committed.update(offsets)
        self.notes.update(notes)
        return True

    def report(self, topic: str, skipped: SkippedRange) -> None:
        self.reported.append((topic, skipped))

    def offsets(self) -> WrittenOffsets:
        return WrittenOffsets(self.read, self.commit, self.start, self.report)


def test_written_offsets_commit_the_run_after_the_committed_base_of_each_partition() -> None:
    group = FakeGroup({("t", 0): 5})
    offsets = group.offsets()

    async def check() -> None:
        await offsets.commit_written([record(0, 5), record(0, 6), record(1, 0), record(1, 2)])
        # Partition 1 has a hole at 1: only offset 0 is committed below it.
        assert group.commits == [{("t", 0): 7, ("t", 1): 1}]
        assert group.reads == [[("t", 0), ("t", 1)]]
        await offsets.commit_written([record(0, 7)])
        assert group.commits[-1] == {("t", 0): 8}
        # The gap at 1 is no hole yet (no drain span beyond it): 1 arrives, and with 2 kept
        # from before, the commit moves to 3; no base is read again.
        await offsets.commit_written([record(0, 8), record(1, 1)])
        assert group.reads == [[("t", 0), ("t", 1)]]
        assert group.commits[-1] == {("t", 0): 9, ("t", 1): 3}

    asyncio.run(check())


def test_drain_spans_carry_the_commit_over_markers_aborted_batches_and_compaction() -> None:
    group = FakeGroup({("t", 0): 0})
    offsets = group.offsets()

    async def check() -> None:
        # A drain of [0, 9): records 0-3, a marker at 4, an aborted batch 5-7, a marker at 8.
        await offsets.commit_written([record(0, o) for o in range(4)], [Passed("t", 0, 0, 9)])
        assert group.commits[-1] == {("t", 0): 9}
        # A drain with nothing to deliver (only an abort marker) moves the commit alone.
        await offsets.commit_written([], [Passed("t", 0, 9, 11)])
        assert group.commits[-1] == {("t", 0): 11}
        # Records past a compacted gap, their drain span in the next batch.
        await offsets.commit_written([record(0, 14), record(0, 20)])
        assert group.commits[-1] == {("t", 0): 11}  # 11-13 and 15-19 are not known empty yet
        await offsets.commit_written([record(0, 21)], [Passed("t", 0, 11, 22)])
        assert group.commits[-1] == {("t", 0): 22}
        assert group.reported == []

    asyncio.run(check())


def test_a_drain_span_never_covers_a_record_not_yet_written() -> None:
    """The bridge's own gap: record 3 handed out in an earlier batch and not written (it is
    not in any batch given as written): a span starting after it does not cover it."""
    group = FakeGroup({("t", 0): 3})
    offsets = group.offsets()

    async def check() -> None:
        await offsets.commit_written([record(0, 4), record(0, 5)], [Passed("t", 0, 4, 7)])
        assert group.commits == []
        assert group.reported == []  # nothing below the log start (0): a hole, not a loss

    asyncio.run(check())


def test_a_committed_offset_below_the_log_start_is_reported_and_passed() -> None:
    group = FakeGroup({("t", 0): 5, ("t", 1): 2})
    group.log_start = {("t", 0): 12, ("t", 1): 0}
    offsets = group.offsets()

    async def check() -> None:
        await offsets.commit_written([record(0, 12), record(1, 2)])
        assert group.commits[-1] == {("t", 0): 13, ("t", 1): 3}
        [(topic, skipped)] = group.reported
        assert (topic, skipped.partition, skipped.first_offset, skipped.last_offset) == (
            "t",
            0,
            5,
            11,
        )
        # The note travels with every later commit of that partition, and survives a restart.
        later = group.offsets()
        await later.commit_written([record(0, 13)])
        assert "[[5,11," in group.notes[("t", 0)]
        assert group.notes[("t", 1)] == ""
        assert len(group.reported) == 1  # reported once, when found

    asyncio.run(check())


def test_a_log_start_moved_past_the_position_while_running_is_reported() -> None:
    """The consumer reset to the log start after retention deleted what it had not read:
    the hole below the log start is reported and passed; what is above stays a hole."""
    group = FakeGroup({("t", 0): 0})
    offsets = group.offsets()

    async def check() -> None:
        await offsets.commit_written([record(0, 0)], [Passed("t", 0, 0, 1)])
        group.log_start[("t", 0)] = 30
        await offsets.commit_written([record(0, 30)], [Passed("t", 0, 30, 31)])
        assert group.commits[-1] == {("t", 0): 31}
        [(_, skipped)] = group.reported
        assert (skipped.first_offset, skipped.last_offset) == (1, 29)
        # A hole above the log start is the bridge's: not reported, not passed.
        await offsets.commit_written([record(0, 40)], [Passed("t", 0, 40, 41)])
        assert group.commits[-1] == {("t", 0): 31}
        assert len(group.reported) == 1

    asyncio.run(check())


def test_written_offsets_read_bases_again_after_a_rebalance() -> None:
    group = FakeGroup({})
    offsets = group.offsets()

    async def check() -> None:
        await offsets.commit_written([record(0, 0)])
        group.rebalanced = True  # the partition moved during the write: nothing committed
        await offsets.commit_written([record(0, 1)])
        assert group.commits == [{("t", 0): 1}]
        assert not offsets.ledger.known(("t", 0))
        # Meanwhile the new owner committed further; the next commit starts from there.
        group.rebalanced = False
        group.committed[("t", 0)] = 10
        await offsets.commit_written([record(0, 1), record(0, 10)])
        assert group.commits[-1] == {("t", 0): 11}
        offsets.forget()  # a revocation
        assert not offsets.ledger.known(("t", 0))

    asyncio.run(check())


def test_a_poll_hands_over_at_most_a_feed_of_records(tmp_path: Path) -> None:
    # Unbounded (Faust's default), aiokafka turned a whole backlog fetch (up to 48 MiB per
    # partition) into record objects at once: ~1 GB behind a million-event backlog, and a
    # consumer thread too busy to heartbeat (benchmarks/bench_memory.py).
    async def check() -> None:
        group = new_group(tmp_path)
        app: Any = group._app
        assert app.conf.broker_max_poll_records == feed_size(ApplySettings(batch_size=10))
        assert app.conf.broker_max_poll_records == group._feed.maxsize
        assert feed_size(ApplySettings(batch_size=5000)) == 20_000
        # And it reaches the aiokafka consumer Faust builds (built here, never started).
        thread: Any = app.consumer._new_consumer_thread()
        aiokafka_consumer = thread._create_consumer(loop=asyncio.get_running_loop())
        try:
            assert aiokafka_consumer._max_poll_records == group._feed.maxsize
        finally:
            await aiokafka_consumer.stop()

    asyncio.run(check())


def test_the_apply_consumer_reads_read_committed(tmp_path: Path) -> None:
    """Faust builds its aiokafka consumer read_uncommitted unless processing is exactly-once;
    apply's must read committed transactions only (aborted ones never reach a target)."""

    async def check() -> str:
        group = new_group(tmp_path)
        consumer: Any = group._app.consumer
        built = consumer._thread._create_worker_consumer(group._app.transport)
        return str(built._isolation_level)

    assert asyncio.run(check()) == "read_committed"


def test_the_bridge_s_own_consumers_read_committed(monkeypatch: Any) -> None:
    """librdkafka's default is read_committed; every config the bridge builds says so."""
    from bridge.consumer import consumer_config
    from bridge.kafka import reads as kafka_reads
    from ddb_bridge.demo.topic_tail import TopicTail

    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9")
    assert consumer_config(kafka, None, from_beginning=True, commit=False)["isolation.level"] == (
        "read_committed"
    )
    assert TopicTail(kafka, "t", 1)._config["isolation.level"] == "read_committed"
    built: list[dict[str, Any]] = []
    monkeypatch.setattr(kafka_reads, "Consumer", lambda config: built.append(config))
    kafka_reads.reader_consumer(kafka, "test")
    assert built[0]["isolation.level"] == "read_committed"


def test_a_drain_span_is_dropped_when_its_records_were_cleared_from_the_feed(
    tmp_path: Path,
) -> None:
    """A revocation clears the feed while the fetch loop waits for room in the middle of a
    drain: the drain's span must not follow its remaining records, or it would cover the
    cleared ones (seen on Apache Kafka: 192 unwritten records committed past)."""
    tp = TP("p.a.changes", 0)

    def message(offset: int) -> _FeedRecord:
        return _FeedRecord(RawRecord(tp.topic, 0, offset, b"k", b"v"), 1)

    async def check() -> list[Any]:
        group = new_group(tmp_path)
        consumer: Any = group._app.consumer
        feed = group._feed
        fetcher = SimpleNamespace(should_stop=False)

        async def getmany(timeout: float) -> Any:
            yield tp, message(0)
            feed.clear()  # what a revocation does while the loop waits for room
            yield tp, message(1)
            yield tp, _passed(tp, (0, 3), 1)
            fetcher.should_stop = True

        consumer.getmany = getmany
        await consumer._drain_messages(fetcher)
        return list(feed._items)

    items = asyncio.run(check())
    assert [m.record.offset for m in items if type(m) is _FeedRecord] == [1]
    assert len(items) == 1  # no span after a clear


def test_the_liveness_check_survives_a_partition_whose_offset_is_being_reset(
    tmp_path: Path,
) -> None:
    """Retention deleted the records at a lagging worker's position: aiokafka resets the
    partition's offset, and until then the partition has no position. Faust's periodic
    liveness check (every 2.5 commit intervals) read it anyway, aiokafka's assertion crashed
    the consumer, and apply stopped (CI, test_apply_offsets.py). It must only check that
    the partition is being fetched."""
    from aiokafka.consumer.subscription_state import SubscriptionState
    from aiokafka.structs import TopicPartition

    async def check() -> list[str]:
        group = new_group(tmp_path)
        thread: Any = group._app.consumer._thread
        subscriptions = SubscriptionState()
        aiotp = TopicPartition("p.a.changes", 0)
        subscriptions.assign_from_user({aiotp})
        state = subscriptions.subscription.assignment.state_value(aiotp)
        state.highwater = 20_000  # fetched before, far ahead of the position
        state.timestamp = time.time() * 1000  # fetched just now (aiokafka's wall-clock ms)
        state.await_reset(1)  # the offset-out-of-range reset: no position until it ends
        fake = SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subscriptions))
        thread._ensure_consumer = lambda: fake
        thread.time_started = time.monotonic() - 600  # started ten minutes ago
        errors: list[str] = []
        thread.log = SimpleNamespace(error=lambda msg, *args: errors.append(msg % args))
        thread.verify_event_path(time.monotonic(), TP("p.a.changes", 0))
        state.timestamp = None  # never fetched since the worker started: still reported
        thread.verify_event_path(time.monotonic(), TP("p.a.changes", 0))
        return errors

    errors = asyncio.run(check())
    assert len(errors) == 1 and "fetch" in errors[0].lower(), errors


def test_a_partition_revoked_during_a_drain_does_not_crash_the_fetch(tmp_path: Path) -> None:
    """A fetch returned records of two partitions; while the drain waited for room in the
    feed, a rebalance took the second away without changing the flow or generation yet (the
    consumer thread runs apart). aiokafka's `highwater()` then asserts "Partition is not
    assigned": the drain must not ask it (Faust's getmany did, once per partition)."""
    kept, revoked = TP("p.a.changes", 0), TP("p.a.changes", 1)

    def record(tp: TP, offset: int) -> Any:
        return SimpleNamespace(
            topic=tp.topic, partition=tp.partition, offset=offset, key=b"k", value=b"v", headers=()
        )

    async def check() -> list[tuple[Any, int]]:
        group = new_group(tmp_path)
        consumer: Any = group._app.consumer
        assigned = {kept, revoked}

        async def fetched(timeout: float) -> Any:
            return {kept: [record(kept, 0)], revoked: [record(revoked, 5)]}, {kept, revoked}

        def highwater(tp: TP) -> int:
            assert tp in assigned, "Partition is not assigned"  # as aiokafka's consumer
            return 10

        consumer._wait_next_records = fetched
        consumer.highwater = highwater
        out = []
        async for tp, message in consumer.getmany(timeout=0):
            out.append((tp, message.record.offset))
            assigned.discard(revoked)  # the rebalance, while the consumer awaited the feed
        return out

    assert asyncio.run(check()) == [(kept, 0), (revoked, 5)]
