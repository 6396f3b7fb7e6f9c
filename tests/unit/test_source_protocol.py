"""The source protocol (`bridge.ports.source`): every part reader and part source implements it, and
the back-fill claim loop reads any `PartSource` through it, saving only acknowledged positions."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError

from bridge.kafka.publisher import Publisher
from bridge.model.acks import AckTracker
from bridge.model.errors import PermanentError
from bridge.model.event import ChangeEvent, Origin
from bridge.ports.source import PartReader, PartSource
from bridge.runtime.settings import KafkaSettings
from connectors.sources.backfill import part_loop
from connectors.sources.backfill.budget import Budget
from connectors.sources.backfill.export_files import ExportFileReader, ExportFiles
from connectors.sources.backfill.export_manifest import LocalExport, read_manifest
from connectors.sources.backfill.part_loop import BackfillJob
from connectors.sources.backfill.runs import DONE, PENDING, Part, RunInfo
from connectors.sources.backfill.scan import ScanSegments, SegmentReader
from connectors.sources.stream.shards import ShardReader
from tests.export_layout import build_export
from tests.producer_fakes import HoldingProducer, key_contains
from tests.samples import sample_item

RUN = RunInfo("t", "run-1", "scan", 1, 7, 2, "test")


def part(index: int, cursor: str | None = None) -> Part:
    return Part(index, f"lease#{index}", f"part {index}", PENDING, cursor, 0, 0, None, 0, {})


def event(n: int) -> ChangeEvent:
    item = {"pk": {"S": f"k{n}"}, "sk": {"N": str(n)}}
    return ChangeEvent.snapshot("t", item, ("pk", "sk"), 7, Origin.SCAN)


def job_for(store: Any = None, publisher: Any = None) -> BackfillJob:
    return BackfillJob(
        table="t",
        key_names=("pk", "sk"),
        ttl_attribute=None,
        publisher=publisher,
        store=store,
        run=RUN,
        key_types=("S", "N"),
    )


# ---------------------------------------------------------------------------------------------
# Every implementation satisfies the protocol


def test_stream_shard_reader_is_a_part_reader() -> None:
    reader = ShardReader(object(), "arn", "shardId-1", "TRIM_HORIZON", threading.Event())
    assert isinstance(reader, PartReader)
    assert reader.position == "TRIM_HORIZON"


def test_scan_segments_are_a_part_source_of_part_readers() -> None:
    segments = ScanSegments(job_for(), object(), Budget())
    assert isinstance(segments, PartSource)
    reader = segments.open(part(1, cursor='{"pk":{"S":"k"}}'))
    assert isinstance(reader, SegmentReader)
    assert isinstance(reader, PartReader)
    assert reader.position == '{"pk":{"S":"k"}}'  # opened at the saved cursor


def test_export_files_are_a_part_source_of_part_readers(tmp_path: Path) -> None:
    build_export(tmp_path, [[{"Item": sample_item(0)}]])
    location = LocalExport(tmp_path)
    files = ExportFiles(job_for(), location, read_manifest(location))
    assert isinstance(files, PartSource)
    reader = files.open(part(0))
    try:
        assert isinstance(reader, ExportFileReader)
        assert isinstance(reader, PartReader)
        batch = reader.read()
        records = list(batch.records)  # parsed as they are consumed; `end` is known after
        assert batch.end and len(records) == 1
        assert reader.position is None  # a file is never resumed inside
    finally:
        reader.close()


# ---------------------------------------------------------------------------------------------
# The claim loop reads any PartSource


@dataclass
class Step:
    records: Sequence[ChangeEvent]
    end: bool


@dataclass
class ScriptedReader:
    """Returns scripted batches; `position` is the name of the last batch read."""

    steps: list[tuple[str, Step]]
    on_read: Any = None
    position: str | None = None
    checkpoints: bool = True
    where: str = "scripted part"
    closed: bool = False

    def read(self) -> Step:
        if self.on_read is not None:
            self.on_read()
        name, step = self.steps.pop(0)
        self.position = name
        return step

    def refuse(self, index: int, exc: Exception) -> None:
        raise exc

    def close(self) -> None:
        self.closed = True


@dataclass
class ScriptedSource:
    readers: dict[int, ScriptedReader]
    store: FakeStore

    def list_parts(self) -> list[Part]:
        return self.store.parts(RUN)

    def claim(self, p: Part) -> Part | None:
        return self.store.claim(RUN.run_id, p.index)

    def open(self, p: Part) -> ScriptedReader:
        return self.readers[p.index]


@dataclass
class FakeStore:
    """The lease table's part records, in memory; records every write, and checks at each
    one that Kafka acknowledged what it covers (`producer`: the job's HoldingProducer)."""

    owner: str = "me"
    lease_ms: int = 60_000
    states: dict[int, Part] = field(default_factory=lambda: {0: part(0), 1: part(1)})
    writes: list[tuple[Any, ...]] = field(default_factory=list)
    producer: HoldingProducer | None = None
    # Writes made while a record they cover was not acknowledged.
    unacked_writes: list[tuple[Any, ...]] = field(default_factory=list)

    def parts(self, run: RunInfo) -> list[Part]:
        return [self.states[i] for i in sorted(self.states)]

    def claimable(self, part: Part) -> bool:
        # Every part here is free or ours: expiry is the lease tests' concern.
        return not part.done and part.owner in (None, self.owner)

    def claim(self, run_id: str, index: int) -> Part | None:
        claimed = replace(self.states[index], owner=self.owner, claims=1)
        self.states[index] = claimed
        return claimed

    def renew(self, run_id: str, index: int) -> None:
        pass

    def checkpoint(self, run_id: str, index: int, cursor: str, items: int) -> None:
        # `items` counts the part's records up to the cursor: all of them must be acked.
        self._check(("checkpoint", index, cursor, items), items)
        self.writes.append(("checkpoint", index, cursor, items))

    def finish(self, run_id: str, index: int, items: int) -> None:
        self._check(("finish", index, items), None)
        self.writes.append(("finish", index, items))
        self.states[index] = replace(self.states[index], state=DONE, items=items)

    def release(self, run_id: str, index: int) -> None:
        self.writes.append(("release", index))

    def _check(self, write: tuple[Any, ...], first: int | None) -> None:
        if self.producer is None:
            return
        with self.producer.lock:
            covered = self.producer.records if first is None else self.producer.records[:first]
            if any(not r.answered or r.error is not None for r in covered):
                self.unacked_writes.append(write)


def held(
    store: FakeStore, untracked: bool = False, **kwargs: Any
) -> tuple[HoldingProducer, Publisher]:
    """The real Publisher over a producer that holds acknowledgements; `store` checks them.
    `untracked`: an export's publisher, whose producer reports failed deliveries only."""
    producer = HoldingProducer(errors_only=untracked, **kwargs)
    store.producer = producer
    publisher = Publisher(
        KafkaSettings(bootstrap_servers="unused:9092"),
        producer=producer,  # type: ignore[arg-type]
        untracked=untracked,
    )
    return producer, publisher


def run_job(store: FakeStore, publisher: Publisher, readers: dict[int, ScriptedReader]) -> None:
    job = job_for(store, publisher)
    job.start()
    try:
        job.claim_loop(ScriptedSource(readers, store))
    finally:
        job.close()


def test_claim_loop_reads_every_part_through_the_protocol_and_records_done() -> None:
    store = FakeStore()
    # Answers come only on a poll after the one that follows them: late, as a broker's can.
    producer, publisher = held(store, arrive_after_polls=2)
    job = job_for(store, publisher)
    readers = {
        i: ScriptedReader(
            [("a", Step([event(10 * i), event(10 * i + 1)], False)), ("b", Step([event(9)], True))]
        )
        for i in (0, 1)
    }
    job.start()
    try:
        job.claim_loop(ScriptedSource(readers, store))
    finally:
        job.close()
    assert [w for w in store.writes if w[0] == "finish"] == [("finish", 0, 3), ("finish", 1, 3)]
    assert len(producer.sent) == 6
    assert all(r.closed for r in readers.values())
    assert (job.stats.published, job.stats.parts_done) == (6, 2)
    assert store.unacked_writes == []


def test_a_position_is_saved_only_once_the_records_before_it_are_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(part_loop, "CHECKPOINT_EVERY_S", 0.0)  # save at every chance
    store = FakeStore(states={0: part(0)})
    _producer, publisher = held(store, arrive_after_polls=1)
    job = job_for(store, publisher)
    reads = 0

    def stop_after_two() -> None:
        nonlocal reads
        reads += 1
        if reads == 2:
            job.stop.set()  # Ctrl-C while the second batch is read

    reader = ScriptedReader(
        [("a", Step([event(1), event(2)], False)), ("b", Step([event(3)], False))],
        on_read=stop_after_two,
    )
    job.start()
    try:
        job.claim_loop(ScriptedSource({0: reader}, store))
    finally:
        job.close()
    # Nothing was acknowledged while reading, so no position was saved then; stopping waits
    # for the acknowledgements, saves the furthest position, and hands the part back.
    assert store.writes == [("checkpoint", 0, "b", 3), ("release", 0)]
    assert store.unacked_writes == []


def test_an_unacknowledged_position_is_never_saved_when_reading_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(part_loop, "CHECKPOINT_EVERY_S", 0.0)
    store = FakeStore(states={0: part(0)})
    producer, publisher = held(store, arrive_after_polls=1)
    reads = 0

    def ack_after_first() -> None:
        nonlocal reads
        reads += 1
        if reads == 3:
            producer.poll()  # the first two batches' records are acknowledged now

    reader = ScriptedReader(
        [
            ("a", Step([event(1)], False)),
            ("b", Step([event(2)], False)),
            ("c", Step([event(3)], False)),
            ("d", Step([], True)),
        ],
        on_read=ack_after_first,
    )
    run_job(store, publisher, {0: reader})
    # After the third batch, "b" is the furthest acknowledged position: "c" is not saved
    # while its record is in flight; the part ends DONE once everything is acknowledged.
    assert store.writes == [("checkpoint", 0, "b", 2), ("finish", 0, 3)]
    assert store.unacked_writes == []


def test_untracked_parts_are_done_only_once_kafka_acknowledged_every_record() -> None:
    # Held until flush: an export part's records are not tracked one by one, so only the
    # flush before DONE can wait for them.
    store = FakeStore(states={0: part(0)})
    producer, publisher = held(store, untracked=True)
    reader = ScriptedReader([("x", Step([event(1), event(2)], True))], checkpoints=False)
    run_job(store, publisher, {0: reader})
    assert store.writes == [("finish", 0, 2)]
    assert store.unacked_writes == [], "DONE written before Kafka acknowledged the part"
    assert producer.unacked == 0


@pytest.mark.parametrize("checkpoints", [False, True], ids=["export file", "scan segment"])
@pytest.mark.parametrize("code", [KafkaError.MSG_SIZE_TOO_LARGE, KafkaError._MSG_TIMED_OUT])
def test_a_refused_record_stops_the_part_and_names_it_and_the_key(
    monkeypatch: pytest.MonkeyPatch, checkpoints: bool, code: int
) -> None:
    monkeypatch.setattr(part_loop, "CHECKPOINT_EVERY_S", 0.0)
    store = FakeStore(states={0: part(0)})
    producer, publisher = held(store, untracked=not checkpoints)
    producer.refuse(key_contains('"k2"'), code)

    def answer_so_far() -> None:
        producer.arrive()
        producer.poll()

    reader = ScriptedReader(
        [
            ("a", Step([event(1)], False)),
            ("b", Step([event(2)], False)),
            ("c", Step([event(3)], False)),
            ("d", Step([event(4)], True)),
        ],
        on_read=answer_so_far,
        checkpoints=checkpoints,
        where="table t segment 0 of 1",
    )
    with pytest.raises(PermanentError) as caught:
        run_job(store, publisher, {0: reader})
    text = str(caught.value)
    assert "table t segment 0 of 1" in text and '"k2"' in text, text
    # Nothing at or past the refused record is ever saved, and the part is not DONE.
    assert [w for w in store.writes if w[0] == "finish"] == []
    assert all(w[2] == "a" for w in store.writes if w[0] == "checkpoint"), store.writes
    assert store.unacked_writes == []


def test_scripted_fakes_match_the_protocol() -> None:
    # The fakes above stand for real readers only while they keep the protocol's shape.
    store = FakeStore()
    source = ScriptedSource({}, store)
    assert isinstance(source, PartSource)
    assert isinstance(ScriptedReader([]), PartReader)
    assert not isinstance(SimpleNamespace(read=lambda: None), PartReader)


def test_an_untracked_publisher_refuses_a_tracker() -> None:
    """Its producer never reports a delivered record: a tracked record would wait for ever."""
    producer, publisher = held(FakeStore(), untracked=True)
    with pytest.raises(RuntimeError, match="untracked"):
        publisher.publish(event(1), AckTracker(), "a")
    assert producer.sent == []


def test_an_export_s_publisher_asks_librdkafka_for_failed_deliveries_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bridge.kafka import publisher as publisher_module

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(publisher_module, "Producer", seen.append)
    Publisher(KafkaSettings(bootstrap_servers="unused:9092"), untracked=True)
    Publisher(KafkaSettings(bootstrap_servers="unused:9092"))
    assert seen[0]["delivery.report.only.error"] is True
    assert "delivery.report.only.error" not in seen[1]


def bad_key_event(n: int) -> ChangeEvent:
    """An event whose key cannot be encoded (a number past DynamoDB's range): it fails when
    published, as a key that only the encoder checks would."""
    made = event(n)
    return replace(made, keys={"pk": {"S": f"k{n}"}, "sk": {"N": "1e200"}})


def test_a_scan_page_with_a_key_it_cannot_encode_queues_nothing_of_the_page() -> None:
    """A checkpointing part publishes a page as one tracked group, encoding every record
    first: a record the reader refuses by raising stops the part with nothing of its page
    queued and nothing past the previous page saved."""
    store = FakeStore(states={0: part(0)})
    producer, publisher = held(store, arrive_after_polls=1)
    reader = ScriptedReader(
        [
            ("a", Step([event(1), event(2)], False)),
            ("b", Step([event(3), bad_key_event(4), event(5)], False)),
        ],
        where="table t segment 0/1",
    )
    with pytest.raises(PermanentError, match=r"table t segment 0/1: .*1e200"):
        run_job(store, publisher, {0: reader})
    assert [key for _, key, _ in producer.sent] == [event(1).key_bytes(), event(2).key_bytes()]
    assert all(w[2] == "a" for w in store.writes if w[0] == "checkpoint"), store.writes
    assert store.unacked_writes == []


def test_a_record_set_aside_leaves_the_page_group_and_the_count() -> None:
    """A reader that sets a bad record aside (the DLQ) instead of raising: the rest of the
    page is published and acknowledged as one group, and the checkpoint counts only what
    was sent."""
    refused: list[tuple[int, str]] = []

    @dataclass
    class SettingAside(ScriptedReader):
        def refuse(self, index: int, exc: Exception) -> None:
            refused.append((index, type(exc).__name__))

    store = FakeStore(states={0: part(0)})
    producer, publisher = held(store, arrive_after_polls=1)
    reader = SettingAside(
        [
            ("a", Step([event(1), bad_key_event(2), event(3)], False)),
            ("b", Step([event(4)], True)),
        ]
    )
    run_job(store, publisher, {0: reader})
    assert refused == [(1, "AttributeTypeError")]
    assert len(producer.sent) == 3 and producer.unacked == 0
    assert store.writes[-1] == ("finish", 0, 3), store.writes
    assert store.unacked_writes == []
