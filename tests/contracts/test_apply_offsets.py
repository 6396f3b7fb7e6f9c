"""The apply offsets contract, over the real broker, for every shape a change topic's log
can take when apply reads it.

Whatever the log holds — transaction markers, aborted transactional batches, gaps left by
compaction, a log start moved by delete_records or retention — the real apply worker must:
- commit the end of every partition (lag reaches 0, so `status` can say READY);
- never commit past an event that is not in the target;
- never write an aborted event;
- report every range it skipped because the broker deleted it before apply read it: a log
  line at ERROR, a metric, and `status` (its group status and the cut-over verdict).

The records are written with confluent-kafka's transactional producer where a shape needs
transactions, with the bridge's own encoding (the publisher's key, value and headers).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bridge.apply.app import group_id
from bridge.codec.avro import EventCodec
from bridge.kafka.lag import PartitionLag, group_lag
from bridge.kafka.publisher import Publisher, admin_config, ensure_topics, producer_config
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.partitioning import partition_for
from bridge.runtime.metrics import APPLY_SKIPPED, REGISTRY
from bridge.runtime.settings import NullTarget, Settings
from bridge.status.kafka import group_statuses
from tests.apply_harness import (
    MemorySink,
    apply_settings,
    assert_committed_offsets_are_written,
    run_in_process,
    start_in_process,
    table_spec,
)
from tests.kafka_helpers import drain_more

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_S = 45.0  # apply reaches the end of a few hundred records in seconds


def _events(table: str, prefix: str, n: int, first_version: int) -> list[ChangeEvent]:
    return [
        ChangeEvent(
            table=table,
            op=Op.INSERT,
            keys={"pk": {"S": f"{prefix}{i}"}, "sk": {"N": "0"}},
            # Stream versions of now (µs): the publisher stamps records with their time,
            # and the broker's time-based segment rolls read it.
            version=int(time.time() * 1_000_000) + first_version + i,
            origin=Origin.STREAM,
            new_image={"pk": {"S": f"{prefix}{i}"}, "sk": {"N": "0"}, "i": {"N": str(i)}},
        )
        for i in range(n)
    ]


def _publish(settings: Settings, events: Sequence[ChangeEvent]) -> None:
    publisher = Publisher(settings.kafka)
    for event in events:
        publisher.publish(event)
    publisher.flush()


def _transaction(settings: Settings, events: Sequence[ChangeEvent], *, commit: bool) -> None:
    """One transaction of `events`, as another transactional producer (MirrorMaker 2, a
    Connect source, a repair tool) writes it into the change topic: committed or aborted."""
    producer = Producer(
        producer_config(settings.kafka, **{"transactional.id": f"contract-{uuid.uuid4().hex}"})
    )
    codec = EventCodec()
    producer.init_transactions(30)
    producer.begin_transaction()
    for event in events:
        producer.produce(
            settings.kafka.changes_topic(event.table),
            key=event.key_bytes(),
            value=codec.encode(event),
            headers=Publisher.headers(event),
        )
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def _lags(settings: Settings, target: str, table: str) -> list[PartitionLag]:
    return group_lag(settings.kafka, group_id(target), [settings.kafka.changes_topic(table)])


def _at_end(settings: Settings, target: str, table: str) -> bool:
    """The group's committed offset is the end of every partition that holds anything."""
    return all(p.committed == p.end for p in _lags(settings, target, table) if p.end > 0)


def _run_to_end(settings: Settings, table: str, sink: MemorySink) -> None:
    target = settings.apply.target
    code, _ = run_in_process(
        settings,
        [table_spec(table)],
        sink,
        until=lambda _w: _at_end(settings, target, table),
        timeout_s=RUN_S,
    )
    assert code == 0


def _assert_in_target(sink: MemorySink, events: Sequence[ChangeEvent], present: bool) -> None:
    for event in events:
        held = sink.version_of(event.table, event.key_bytes())
        if present:
            assert held == event.version, f"{event.keys} missing from the target"
        else:
            assert held is None, f"{event.keys} reached the target"


def _delete_records(settings: Settings, topic: str, before: dict[int, int]) -> None:
    admin = AdminClient(admin_config(settings.kafka))
    futures = admin.delete_records([TopicPartition(topic, p, o) for p, o in before.items()])
    for future in futures.values():
        future.result(30)


def _shape_markers(settings: Settings, table: str) -> tuple[list[ChangeEvent], list[ChangeEvent]]:
    """Committed transactions between and after plain records: a marker after each."""
    plain, txn = _events(table, "plain", 40, 1000), _events(table, "txn", 30, 2000)
    _publish(settings, plain[:20])
    for i in range(0, 20, 5):
        _transaction(settings, txn[i : i + 5], commit=True)
    _publish(settings, plain[20:])
    _transaction(settings, txn[20:], commit=True)  # the log ends in markers
    return plain + txn, []


def _shape_aborted(settings: Settings, table: str) -> tuple[list[ChangeEvent], list[ChangeEvent]]:
    """Aborted transactional batches between committed ones, and one at the very end."""
    plain, kept = _events(table, "plain", 20, 1000), _events(table, "kept", 10, 2000)
    aborted = _events(table, "aborted", 24, 3000)
    _publish(settings, plain[:10])
    _transaction(settings, aborted[:12], commit=False)
    _transaction(settings, kept, commit=True)
    _publish(settings, plain[10:])
    _transaction(settings, aborted[12:], commit=False)  # the log ends in an abort
    return plain + kept, aborted


def _shape_compacted(settings: Settings, table: str) -> tuple[list[ChangeEvent], list[ChangeEvent]]:
    """A compacted change topic whose cleaner removed superseded records: offset gaps."""
    topic = settings.kafka.changes_topic(table)
    admin = AdminClient(admin_config(settings.kafka))
    configs = {
        "cleanup.policy": "compact",
        "segment.ms": "100",  # every write after 100 ms starts a segment: the rest is cleanable
        "min.cleanable.dirty.ratio": "0.001",
        "min.compaction.lag.ms": "0",
    }
    new = NewTopic(topic, num_partitions=settings.kafka.partitions, config=configs)
    for future in admin.create_topics([new]).values():
        future.result(30)
    old = _events(table, "key", 30, 1000)
    newer = _events(table, "key", 30, 5000)
    # One more event in every partition, later: it rolls the segment holding `newer`.
    roll: dict[int, ChangeEvent] = {}
    for event in _events(table, "roll", 200, 9000):
        roll.setdefault(partition_for(event.key_bytes(), settings.kafka.partitions), event)
    # A producer without idempotence (as many other tools write): the cleaner keeps the last
    # batch of every idempotent producer whole, which left nothing to remove in 90 s here.
    producer = Producer(
        producer_config(settings.kafka, **{"enable.idempotence": False, "acks": "all"})
    )
    codec = EventCodec()
    for events in (old, newer, list(roll.values())):
        for event in events:
            producer.produce(
                topic,
                key=event.key_bytes(),
                value=codec.encode(event),
                headers=Publisher.headers(event),
            )
        producer.flush(30)
        time.sleep(0.5)
    deadline = time.monotonic() + 90  # the broker's cleaner looks every 15 s
    while time.monotonic() < deadline:
        time.sleep(3)
        if len(_read_all(settings, topic)) < len(old) + len(newer) + len(roll):
            break
    else:
        raise AssertionError(f"the broker's log cleaner never compacted {topic} in 90 s")
    return newer + list(roll.values()), []


def _read_all(settings: Settings, topic: str) -> list[Any]:
    """Every record of `topic` now (read_committed: no aborted ones)."""
    return drain_more(settings.kafka.bootstrap_servers, topic, timeout_s=2.0)


def _shape_log_start_moved(
    settings: Settings, table: str
) -> tuple[list[ChangeEvent], list[ChangeEvent]]:
    """Records deleted with delete_records before the group ever read the topic: the log
    starts past offset 0, and apply, which never committed, begins there."""
    topic = settings.kafka.changes_topic(table)
    events = _events(table, "early", 40, 1000)
    _publish(settings, events)
    ends = {m.partition(): m.offset() + 1 for m in _read_all(settings, topic)}
    _delete_records(settings, topic, {p: end // 2 for p, end in ends.items()})
    later = _events(table, "later", 10, 2000)
    _publish(settings, later)
    codec = EventCodec()
    kept = {codec.decode(m.value()).key_bytes() for m in _read_all(settings, topic)}
    return [e for e in events + later if e.key_bytes() in kept], []


SHAPES = {
    "transaction-markers": _shape_markers,
    "aborted-batches": _shape_aborted,
    "compacted-gaps": _shape_compacted,
    "log-start-moved": _shape_log_start_moved,
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_apply_commits_the_end_of_every_partition_whatever_the_log_holds(
    kafka_bootstrap: str, unique_name: Any, shape: str
) -> None:
    table, target = unique_name("offs"), unique_name("mem")
    settings = apply_settings(kafka_bootstrap, target, NullTarget(type="null"), [table])
    if shape != "compacted-gaps":
        ensure_topics(settings.kafka, [table])
    expected, aborted = SHAPES[shape](settings, table)
    topic = settings.kafka.changes_topic(table)
    sink = MemorySink()

    _run_to_end(settings, table, sink)

    _assert_in_target(sink, expected, present=True)
    _assert_in_target(sink, aborted, present=False)
    messages = _read_all(settings, topic)
    assert assert_committed_offsets_are_written(
        settings.kafka, group_id(target), messages, sink
    ) == len(messages)
    # Nothing was deleted before apply read it: nothing is reported skipped.
    status = group_statuses(settings.kafka, [(group_id(target), topic)])[(group_id(target), topic)]
    assert status.skipped == []
    assert status.lag == 0


def test_apply_reports_every_range_deleted_before_it_read_it_and_goes_on_to_the_end(
    kafka_bootstrap: str, unique_name: Any, caplog: Any
) -> None:
    """A log start moved past the group's committed offset (retention during a long stop):
    the deleted range is reported (log, metric, status, verdict) and apply reaches the end."""
    table, target = unique_name("gone"), unique_name("mem")
    settings = apply_settings(kafka_bootstrap, target, NullTarget(type="null"), [table])
    ensure_topics(settings.kafka, [table])
    topic = settings.kafka.changes_topic(table)
    first = _events(table, "first", 40, 1000)
    _publish(settings, first)
    sink = MemorySink()
    _run_to_end(settings, table, sink)  # committed at the end of `first`
    committed = {p.partition: p.end for p in _lags(settings, target, table)}

    # apply stopped; more events arrive; retention deletes them before apply comes back.
    lost = _events(table, "lost", 40, 2000)
    _publish(settings, lost)
    ends = {p.partition: p.end for p in _lags(settings, target, table)}
    cut = {p: committed[p] + (ends[p] - committed[p]) // 2 for p in ends}
    _delete_records(settings, topic, cut)
    after = _events(table, "after", 20, 3000)
    _publish(settings, after)

    # Before apply runs again, `status` alone sees it: committed below the log start.
    pair = (group_id(target), topic)
    pending = group_statuses(settings.kafka, [pair])[pair].skipped
    assert {(s.partition, s.first_offset, s.last_offset, s.detected_at_ms) for s in pending} == {
        (p, committed[p], cut[p] - 1, None) for p in cut if cut[p] > committed[p]
    }

    caplog.set_level(logging.INFO, logger="ddb-bridge.apply")
    _run_to_end(settings, table, sink)

    _assert_in_target(sink, after, present=True)
    messages = _read_all(settings, topic)
    assert_committed_offsets_are_written(settings.kafka, group_id(target), messages, sink)
    skipped = {p: (committed[p], cut[p]) for p in cut if cut[p] > committed[p]}
    assert skipped, "the test deleted nothing"
    lines = [r for r in caplog.records if r.levelno == logging.ERROR and "deleted" in r.message]
    for partition, (start, end) in skipped.items():
        assert any(
            getattr(r, "partition", None) == partition
            and getattr(r, "first_offset", None) == start
            and getattr(r, "last_offset", None) == end - 1
            and getattr(r, "target", None) == target
            for r in lines
        ), f"no ERROR line for {topic}/{partition} offsets {start}..{end - 1}: {lines}"
    total = sum(end - start for start, end in skipped.values())
    assert REGISTRY.get(APPLY_SKIPPED, table=table, target=target) == total
    status = group_statuses(settings.kafka, [(group_id(target), topic)])[(group_id(target), topic)]
    assert status.lag == 0
    assert {(s.partition, s.first_offset, s.last_offset) for s in status.skipped} == {
        (p, start, end - 1) for p, (start, end) in skipped.items()
    }


class GatedSink(MemorySink):
    """A target that holds every write until `gate` is set: apply stalls with its feed full,
    and its consumer stops fetching."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = threading.Event()  # a write is held at the gate

    def write_batch(self, events: Sequence[ChangeEvent]) -> None:
        self.waiting.set()
        self.gate.wait(120)
        super().write_batch(events)


def test_a_log_start_moved_past_a_running_worker_s_position_is_reported(
    kafka_bootstrap: str, unique_name: Any, caplog: Any
) -> None:
    """Retention deletes what a running, lagging worker has not fetched yet: its consumer
    resets to the log start, and the commit path reports the deleted range on its way to
    the end. Every event missing from the target lies in a reported range."""
    table, target = unique_name("reset"), unique_name("mem")
    settings = apply_settings(kafka_bootstrap, target, NullTarget(type="null"), [table])
    topic = settings.kafka.changes_topic(table)
    admin = AdminClient(admin_config(settings.kafka))
    # One partition, and a backlog the consumer fetches at once but hands over 4096 records
    # per poll: with the feed full (writes held), it holds the rest of the backlog undrained
    # and fetches nothing more.
    for future in admin.create_topics([NewTopic(topic, num_partitions=1)]).values():
        future.result(30)
    backlog = _events(table, "backlog", 15000, 0)
    _publish(settings, backlog)
    sink = GatedSink()
    caplog.set_level(logging.INFO, logger="ddb-bridge.apply")
    run = start_in_process(settings, [table_spec(table)], sink)
    try:
        assert sink.waiting.wait(60), "apply never started writing"
        time.sleep(2)  # the feed fills
        later = _events(table, "later", 1000, 100_000)
        _publish(settings, later)
        codec = EventCodec()
        offset_of = {
            codec.decode(m.value()).key_bytes(): m.offset() for m in _read_all(settings, topic)
        }
        cut = len(backlog) + 200  # into `later`: not fetched while the feed is full
        _delete_records(settings, topic, {0: cut})
        sink.gate.set()
        deadline = time.monotonic() + RUN_S
        while not _at_end(settings, target, table) and time.monotonic() < deadline:
            assert run.thread.is_alive(), "apply stopped"
            time.sleep(0.2)
        assert _at_end(settings, target, table), "apply did not reach the end"
    finally:
        sink.gate.set()
        run.worker.request_stop()
    assert run.wait() == 0

    reported = [
        (r.partition, r.first_offset, r.last_offset)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.levelno == logging.ERROR and hasattr(r, "first_offset")
    ]
    missing = sorted(
        offset_of[e.key_bytes()]
        for e in backlog + later
        if sink.version_of(table, e.key_bytes()) is None
    )
    assert missing, "the consumer had fetched everything before the deletion: nothing to test"
    assert reported, f"offsets {missing[0]}..{missing[-1]} were skipped without a report"
    assert all(last == cut - 1 for _, _, last in reported)
    assert all(any(a <= o <= b for _, a, b in reported) for o in missing)
    assert all(o < cut for o in missing)  # nothing the broker still holds is missing
    pair = (group_id(target), topic)
    status = group_statuses(settings.kafka, [pair])[pair]
    assert sorted((s.partition, s.first_offset, s.last_offset) for s in status.skipped) == sorted(
        reported
    )
