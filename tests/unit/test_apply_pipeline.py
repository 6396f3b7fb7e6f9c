"""apply's pump: while one batch is written, the next is taken and screened; writes and
commits still go one batch at a time, in order; a batch taken ahead of a rebalance is
dropped uncommitted (its partitions' owner reads it again)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

from bridge.apply.app import ApplyWorker, _Run
from bridge.apply.faust_group import Batch
from bridge.apply.processor import BatchProcessor, Screened
from bridge.codec.avro import EventCodec
from bridge.dlq.writer import RawRecord
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import ApplySettings, KafkaSettings, NullTarget, Settings
from connectors.sinks.null import NullSink


class SlowSink(NullSink):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def write_batch(self, events: Any) -> None:
        self.log.append(f"write {events[0].version} starts")
        time.sleep(0.3)
        self.log.append(f"write {events[0].version} ends")


class FakeGroup:
    """Three batches of one record each; the third taken in a generation a rebalance ends."""

    def __init__(self, values: list[bytes], log: list[str]) -> None:
        self.batches = [
            Batch([RawRecord("t", 0, i, b'{"k":{"S":"a"}}', v)], [], 1 if i < 2 else 2)
            for i, v in enumerate(values)
        ]
        self.current = 1
        self.log = log

    async def next_batch(self, size: int, window_s: float) -> Batch:
        if not self.batches:
            await asyncio.sleep(0.05)
            return Batch([], [])
        batch = self.batches.pop(0)
        self.log.append(f"take {batch.records[0].offset}")
        return batch

    def generation(self) -> int:
        return self.current


def test_the_next_batch_is_screened_while_one_is_written_and_commits_stay_in_order() -> None:
    log: list[str] = []
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        apply=ApplySettings(target="null"),
        targets={"null": NullTarget(type="null")},
    )
    sink = SlowSink(log)
    worker = ApplyWorker(settings, "null", [], sink)
    processor = BatchProcessor(sink, "null", SimpleNamespace(), lambda topic: "t")
    screened = processor.screened

    def screening(records: Sequence[RawRecord]) -> Screened:
        log.append(f"screen {records[0].offset} in {threading.current_thread().name}")
        return screened(records)

    processor.screened = screening  # type: ignore[method-assign]
    codec = EventCodec()
    values = [
        codec.encode(ChangeEvent("t", Op.MODIFY, {"k": {"S": "a"}}, v, Origin.STREAM, {}))
        for v in (10, 11, 12)
    ]
    group = FakeGroup(values, log)
    committed: list[int] = []

    async def commit_written(records: list[RawRecord], passed: list[Any]) -> None:
        committed.extend(r.offset for r in records)
        log.append(f"commit {records[0].offset}")
        if records[0].offset == 1:
            group.current = 2  # a rebalance: the batch taken ahead is of an old generation
            worker.request_stop()

    run: Any = _Run(
        topics=["t"],
        data_dir="",
        remove_data_dir=False,
        executor=ThreadPoolExecutor(1, thread_name_prefix="apply-sink"),
        screener=ThreadPoolExecutor(1, thread_name_prefix="apply-screen"),
        dead_letters=SimpleNamespace(),
        close_dead_letters=False,
        processor=processor,
        group=group,  # type: ignore[arg-type]
        committed_reader=SimpleNamespace(),  # type: ignore[arg-type]
        offsets=SimpleNamespace(commit_written=commit_written),  # type: ignore[arg-type]
    )

    async def pump() -> None:
        worker._loop = asyncio.get_running_loop()
        worker._done = asyncio.Event()
        await asyncio.wait_for(worker._pump(run), 10)

    asyncio.run(pump())
    # Batch 1 was screened, in the screening thread, before batch 0's write ended.
    assert log.index("screen 1 in apply-screen_0") < log.index("write 10 ends")
    # One write at a time, each committed before the next starts.
    assert log.index("write 10 ends") < log.index("commit 0") < log.index("write 11 starts")
    assert committed == [0, 1]  # in order; batch 2 (taken before the rebalance) dropped
    assert "write 12 starts" not in log


def test_the_worker_hands_the_gil_over_often_while_it_runs() -> None:
    """The sink thread waits on its target and must get the GIL back at once when the
    answer comes, while the fetch and screening threads run Python; the interval is the
    interpreter's again once the worker ends."""
    import sys

    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        apply=ApplySettings(target="null"),
        targets={"null": NullTarget(type="null")},
    )
    worker = ApplyWorker(settings, "null", [], NullSink())
    seen: list[float] = []

    async def main() -> int:
        seen.append(sys.getswitchinterval())
        return 0

    worker._main = main  # type: ignore[method-assign]
    before = sys.getswitchinterval()
    assert worker.run() == 0
    assert seen == [0.0005]
    assert sys.getswitchinterval() == before
