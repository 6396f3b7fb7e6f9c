"""The Faust boundary without a broker: how `FaustGroup` is wired into Faust, what a batch
holds, and the commit path after a write (`WrittenOffsets`) with a fake group."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bridge.apply.dlq import RawRecord
from bridge.apply.faust_group import FaustGroup, FeedConsumer, feed_size
from bridge.apply.offsets import Partition, WrittenOffsets
from bridge.settings import ApplySettings, KafkaSettings


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
    def message(offset: int, generation: int) -> SimpleNamespace:
        return SimpleNamespace(
            topic="p.a.changes",
            partition=1,
            offset=offset,
            key=b"k",
            value=b"v",
            headers=[("h", b"1")],
            generation_id=generation,
        )

    async def check() -> list[RawRecord]:
        group = new_group(tmp_path)
        app: Any = group._app
        app.consumer_generation_id = 7
        for offset, generation in [(10, 6), (11, 7), (12, 7)]:
            await group._feed.put(message(offset, generation))
        return await group.next_batch(10, 0.01)

    batch = asyncio.run(check())
    assert batch == [
        RawRecord("p.a.changes", 1, 11, b"k", b"v", (("h", b"1"),)),
        RawRecord("p.a.changes", 1, 12, b"k", b"v", (("h", b"1"),)),
    ]


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
        self.reads: list[list[Partition]] = []
        self.commits: list[dict[Partition, int]] = []
        self.rebalanced = False

    async def read(self, partitions: list[Partition]) -> Mapping[Partition, int]:
        self.reads.append(sorted(partitions))
        return {tp: self.committed.get(tp, 0) for tp in partitions}

    async def commit(self, offsets: Mapping[Partition, int]) -> bool:
        if self.rebalanced:
            return False
        self.commits.append(dict(offsets))
        self.committed.update(offsets)
        return True


def test_written_offsets_commit_the_run_after_the_committed_base_of_each_partition() -> None:
    group = FakeGroup({("t", 0): 5})
    offsets = WrittenOffsets(group.read, group.commit)

    async def check() -> None:
        await offsets.commit_written([record(0, 5), record(0, 6), record(1, 0), record(1, 2)])
        # Partition 1 has a hole at 1: only offset 0 is committed below it.
        assert group.commits == [{("t", 0): 7, ("t", 1): 1}]
        assert group.reads == [[("t", 0), ("t", 1)]]
        await offsets.commit_written([record(0, 7)])
        assert group.commits[-1] == {("t", 0): 8}
        # Partition 0's base is known; partition 1's is read again after the hole.
        await offsets.commit_written([record(0, 8), record(1, 1), record(1, 2)])
        assert group.reads[-1] == [("t", 1)]
        assert group.commits[-1] == {("t", 0): 9, ("t", 1): 3}

    asyncio.run(check())


def test_written_offsets_read_bases_again_after_a_rebalance() -> None:
    group = FakeGroup({})
    offsets = WrittenOffsets(group.read, group.commit)

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
