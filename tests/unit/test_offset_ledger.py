"""The commit path's model check: whatever a partition's log holds and however the consumer
drains it and the feed cuts it into batches, the committed offset never passes a record that
is not written, and reaches the end of the log once everything is written.

The model: a log of slots (a record, a transaction marker, an aborted record, a compacted-away
record); a consumer that reads it in drains of random sizes, handing over the records of each
drain and then the drain's span (`Passed`), except for a drain in which it dropped a record
(as the feed drops records of a rebalance); batches cut anywhere in that feed, written in
order until a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.apply.offsets import Partition, Passed, WrittenOffsets
from bridge.dlq.writer import RawRecord
from bridge.kafka.lag import CommittedBase
from bridge.kafka.skipped_offsets import SkippedRange

RECORD, MARKER, ABORTED, COMPACTED = "record", "marker", "aborted", "compacted"
TP = ("t", 0)

logs = st.lists(
    st.sampled_from([RECORD, RECORD, RECORD, MARKER, ABORTED, COMPACTED]), min_size=1, max_size=60
)


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[str], list[Any], int]:
    """A log, the feed a consumer makes of it (records and spans), and how many feed items
    are written before a crash."""
    log = draw(logs)
    feed: list[Any] = []
    position = 0
    while position < len(log):
        end = min(len(log), position + draw(st.integers(1, 8)))
        records = [o for o in range(position, end) if log[o] == RECORD]
        dropped: set[int] = set()
        if records and draw(st.booleans()):
            dropped = draw(st.sets(st.sampled_from(records), min_size=1))
        feed += [RawRecord("t", 0, o, b"k", b"v") for o in records if o not in dropped]
        if not dropped:
            feed.append(Passed("t", 0, position, end))
        position = end
    written = draw(st.integers(0, len(feed)))
    return log, feed, written


class Broker:
    def __init__(self) -> None:
        self.committed: int | None = None

    async def read(self, partitions: list[Partition]) -> Mapping[Partition, CommittedBase]:
        return {tp: CommittedBase(self.committed, 0) for tp in partitions}

    async def start(self, _tp: Partition) -> int:
        return 0

    async def commit(
        self, offsets: Mapping[Partition, int], _notes: Mapping[Partition, str]
    ) -> bool:
        assert self.committed is None or offsets[TP] >= self.committed, "commit went back"
        self.committed = offsets[TP]
        return True


@settings(max_examples=400, deadline=None)
@given(runs(), st.lists(st.integers(1, 10), min_size=1, max_size=30))
def test_the_commit_never_passes_an_unwritten_record_and_reaches_the_end(
    run: tuple[list[str], list[Any], int], cuts: list[int]
) -> None:
    log, feed, written = run
    broker = Broker()
    reported: list[SkippedRange] = []
    offsets = WrittenOffsets(
        broker.read, broker.commit, broker.start, lambda _t, s: reported.append(s)
    )

    async def play() -> None:
        i, k = 0, 0
        while i < written:
            batch = feed[i : min(written, i + cuts[k % len(cuts)])]
            i += len(batch)
            k += 1
            records = [r for r in batch if isinstance(r, RawRecord)]
            passed = [p for p in batch if isinstance(p, Passed)]
            await offsets.commit_written(records, passed)

    asyncio.run(play())
    done = {r.offset for r in feed[:written] if isinstance(r, RawRecord)}
    committed = broker.committed or 0
    unwritten = [o for o in range(committed) if log[o] == RECORD and o not in done]
    assert not unwritten, f"committed {committed} past unwritten records {unwritten}"
    assert reported == []  # nothing was deleted: nothing may be reported as skipped
    everything = written == len(feed) and all(
        log[o] != RECORD or o in done for o in range(len(log))
    )
    if everything:
        assert committed == len(log), f"stuck at {committed} of {len(log)}: {log}"
