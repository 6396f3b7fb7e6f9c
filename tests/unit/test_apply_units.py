"""apply without Kafka: coalescing, backoff, and one batch through BatchProcessor with fakes."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from bridge.apply.app import table_resolver
from bridge.apply.batching import coalesce
from bridge.apply.processor import Abandoned, BatchProcessor
from bridge.apply.retry import Backoff, Stopper
from bridge.codec.avro import EventCodec
from bridge.dlq.writer import HEADER_OFFSET, HEADER_REASON, HEADER_TABLE, DeadLetter, RawRecord
from bridge.model.errors import TransientError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.metrics import Metrics
from bridge.runtime.settings import KafkaSettings, Settings
from tests.apply_harness import MemorySink, delivery_plan, random_history, table_spec

CODEC = EventCodec()


def ev(key: str, version: int, op: Op = Op.MODIFY, table: str = "t") -> ChangeEvent:
    keys = {"pk": {"S": key}, "sk": {"N": "1"}}
    return ChangeEvent(
        table=table,
        op=op,
        keys=keys,
        version=version,
        origin=Origin.STREAM,
        new_image=None if op is Op.REMOVE else {**keys, "v": {"N": str(version)}},
    )


def test_coalesce_keeps_the_newest_version_per_key_whatever_the_order() -> None:
    events = [ev("a", 1), ev("a", 3), ev("b", 2), ev("a", 2), ev("b", 5, Op.REMOVE), ev("b", 4)]
    for seed in range(20):
        shuffled = list(events)
        random.Random(seed).shuffle(shuffled)
        out = {e.keys["pk"]["S"]: e for e in coalesce(shuffled)}
        assert set(out) == {"a", "b"}
        assert out["a"].version == 3
        assert out["b"].version == 5 and out["b"].op is Op.REMOVE


def test_coalesce_separates_tables_and_prefers_a_delete_on_a_version_tie() -> None:
    out = coalesce([ev("a", 7), ev("a", 7, Op.REMOVE), ev("a", 1, table="u")])
    by_table = {e.table: e for e in out}
    assert by_table["t"].op is Op.REMOVE
    assert by_table["u"].version == 1
    assert coalesce([ev("a", 7, Op.REMOVE), ev("a", 7)])[0].op is Op.REMOVE


def test_coalesce_matches_the_final_state_of_a_random_history() -> None:
    history = random_history("t", seed=11, n_keys=50, n_ops=600)
    winners = coalesce(delivery_plan(history.events, seed=3))
    assert len(winners) == len({e.key_bytes() for e in history.events})
    for e in winners:
        assert (None if e.is_delete else e.new_image) == history.final[e.key_bytes()]


def test_backoff_grows_with_jitter_and_stays_capped() -> None:
    b = Backoff(base_ms=100, max_ms=1000, rng=random.Random(1))
    delays = [b.delay_s(n) for n in range(1, 12)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(0.5 <= d <= 1.0 for d in delays[5:])
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jittered, not lockstep
    assert not Backoff(max_retries=0).exhausted(10**6)
    assert Backoff(max_retries=3).exhausted(4) and not Backoff(max_retries=3).exhausted(3)


class FakeDlq:
    def __init__(self) -> None:
        self.sent: list[DeadLetter] = []
        self.flushed = 0

    def send(self, letter: DeadLetter) -> None:
        self.sent.append(letter)

    def flush(self) -> None:
        self.flushed = len(self.sent)


def records(events: list[ChangeEvent], start: int = 0) -> list[RawRecord]:
    return [
        RawRecord("ddb.t.changes", 0, start + i, e.key_bytes(), CODEC.encode(e))
        for i, e in enumerate(events)
    ]


def processor(sink: Any, dlq: FakeDlq, **kw: Any) -> BatchProcessor:
    settings = Settings(kafka=KafkaSettings())
    return BatchProcessor(
        sink,
        "mem",
        dlq,
        table_resolver(settings, [table_spec("t")]),
        backoff=Backoff(1, 2, **kw),
        metrics=Metrics(),
    )


def test_a_poison_event_is_isolated_and_dead_lettered_and_the_rest_written() -> None:
    sink = MemorySink(poison=lambda e: e.keys["pk"]["S"] == "bad")
    sink.open([table_spec("t")])
    dlq = FakeDlq()
    batch = [
        *records([ev("a", 1), ev("bad", 2), ev("c", 3)]),
        RawRecord("ddb.t.changes", 0, 3, b"k", b"\x00garbage"),
        RawRecord("ddb.t.changes", 0, 4, b"k", None),
    ]
    result = processor(sink, dlq).process(batch)
    assert result.dead == 3 and result.written == 2
    assert dlq.flushed == 3
    reasons = {dict(x.headers("mem"))[HEADER_OFFSET]: x for x in dlq.sent}
    assert set(reasons) == {b"1", b"3", b"4"}
    assert b"injected: target refuses" in dict(reasons[b"1"].headers("mem"))[HEADER_REASON]
    assert b"undecodable" in dict(reasons[b"3"].headers("mem"))[HEADER_REASON]
    assert dict(reasons[b"3"].headers("mem"))[HEADER_TABLE] == b"t"
    assert sink.version_of("t", ev("a", 1).key_bytes()) == 1
    assert sink.version_of("t", ev("c", 1).key_bytes()) == 3
    assert sink.version_of("t", ev("bad", 1).key_bytes()) is None


def test_transient_errors_are_retried_until_the_write_succeeds() -> None:
    sink = MemorySink(transient_failures=4)
    sink.open([table_spec("t")])
    result = processor(sink, FakeDlq()).process(records([ev("a", 1), ev("a", 2)]))
    assert result.written == 1 and sink.calls == 5
    assert sink.version_of("t", ev("a", 1).key_bytes()) == 2


def test_retries_exhausted_raise_and_nothing_is_dead_lettered() -> None:
    sink = MemorySink(transient_failures=10)
    sink.open([table_spec("t")])
    dlq = FakeDlq()
    with pytest.raises(TransientError):
        processor(sink, dlq, max_retries=2).process(records([ev("a", 1)]))
    assert dlq.sent == []


def test_a_stop_during_an_outage_abandons_the_batch() -> None:
    sink = MemorySink(transient_failures=10**6)
    sink.open([table_spec("t")])
    proc = processor(sink, FakeDlq())
    proc.backoff = Backoff(base_ms=5_000, max_ms=5_000)
    proc.stopper = Stopper()
    threading.Timer(0.2, proc.stopper.set).start()
    started = time.monotonic()
    with pytest.raises(Abandoned):
        proc.process(records([ev("a", 1)]))
    assert time.monotonic() - started < 3  # woke from the backoff sleep at once


def test_topic_to_table_for_undecodable_records() -> None:
    resolve = table_resolver(Settings(kafka=KafkaSettings(topic_prefix="x.")), [table_spec("t")])
    assert resolve("x.t.changes") == "t"
    assert resolve("x.other.changes") == "other"
    assert resolve("weird") == "weird"


def test_offset_ledger_commits_only_the_run_that_continues_the_base() -> None:
    from bridge.apply.offsets import Hole, OffsetLedger

    ledger: OffsetLedger[str] = OffsetLedger()
    ledger.set_base("p0", 10)
    assert ledger.advance("p0", [12, 10, 11]) is None
    assert ledger.next_offset("p0") == 13
    assert ledger.advance("p0", [5, 6, 13]) is None  # re-read records below the base
    assert ledger.next_offset("p0") == 14
    # A gap (15 not written) before records only: their drain's span may still cover it
    # (a marker at 15), so it is no hole yet; the next offset stops there meanwhile.
    assert ledger.advance("p0", [14, 16, 17]) is None
    assert ledger.next_offset("p0") == 15
    assert ledger.advance("p0", drains=[(12, 18)]) is None  # it did: on to the kept spans
    assert ledger.next_offset("p0") == 18
    # A drain beyond a gap: nothing still to come can fill it, a hole.
    assert ledger.advance("p0", [19], drains=[(19, 25)]) == Hole(18, 19)
    assert ledger.next_offset("p0") == 18
    ledger.skip_to("p0", 19)  # deleted before read, reported by the caller
    assert ledger.advance("p0") is None
    assert ledger.next_offset("p0") == 25
    ledger.forget()
    assert not ledger.known("p0")
    with pytest.raises(KeyError):
        ledger.advance("p0", [18])
