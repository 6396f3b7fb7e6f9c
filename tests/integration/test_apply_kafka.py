"""apply through Apache Kafka, in-process, with an in-memory target.

The randomized history, poison records, a target failing transiently and a worker dying in
the middle of a write. The SQLite target and the command line are in tests/e2e.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bridge.apply.app import group_id
from bridge.apply.processor import DLQ, EVENTS
from bridge.dlq.writer import (
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TABLE,
    HEADER_TOPIC,
)
from bridge.kafka.publisher import Publisher
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.metrics import REGISTRY
from bridge.runtime.settings import NullTarget
from tests.apply_harness import (
    MemorySink,
    apply_settings,
    assert_committed_offsets_are_written,
    assert_target_matches,
    delivery_plan,
    produce,
    random_history,
    run_in_process,
    start_in_process,
    table_spec,
)
from tests.kafka_helpers import consume_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_random_history_shuffled_duplicated_and_replayed_ends_equal(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table, target = unique_name("hist"), unique_name("mem")
    history = random_history(table, seed=5)
    plan = delivery_plan(history.events, seed=6)
    settings = apply_settings(kafka_bootstrap, target, NullTarget(type="null"), [table])
    produce(settings.kafka, plan)
    sink = MemorySink()
    code, worker = run_in_process(
        settings, [table_spec(table)], sink, until=lambda w: w.records_applied >= len(plan)
    )
    assert code == 0
    assert worker.records_applied == len(plan)
    assert worker.joined.is_set()
    assert sink.closed
    assert_target_matches(sink, history)
    assert REGISTRY.get(EVENTS, table=table, target=target) == len(plan)


def test_poison_and_undecodable_records_go_to_the_dlq_and_the_worker_keeps_going(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table, target = unique_name("poison"), unique_name("mem")
    settings = apply_settings(kafka_bootstrap, target, NullTarget(type="null"), [table])
    events = [
        ChangeEvent(
            table=table,
            op=Op.INSERT,
            keys={"pk": {"S": f"k{i}"}, "sk": {"N": "0"}},
            version=1000 + i,
            origin=Origin.STREAM,
            new_image={"pk": {"S": f"k{i}"}, "sk": {"N": "0"}, "i": {"N": str(i)}},
        )
        for i in range(300)
    ]
    produce(settings.kafka, events)
    publisher = Publisher(settings.kafka)
    changes = settings.kafka.changes_topic(table)
    publisher.produce_raw(changes, b'{"pk":{"S":"junk"}}', b"\xc3\x01not avro at all")
    publisher.produce_raw(changes, b'{"pk":{"S":"junk2"}}', b"")
    publisher.flush()
    poison = {"k7", "k150", "k299"}
    sink = MemorySink(poison=lambda e: e.keys["pk"]["S"] in poison)
    code, worker = run_in_process(
        settings, [table_spec(table)], sink, until=lambda w: w.records_applied >= 302
    )
    assert code == 0 and worker.records_applied == 302
    for e in events:
        held = sink.version_of(table, e.key_bytes())
        assert held == (None if e.keys["pk"]["S"] in poison else e.version)

    letters = consume_all(kafka_bootstrap, settings.kafka.dlq_topic(table), 5, timeout_s=30)
    headers = [dict(m.headers()) for m in letters]
    assert all(h[HEADER_TOPIC] == changes.encode() for h in headers)
    assert all(h[HEADER_TABLE] == table.encode() for h in headers)
    assert all(HEADER_PARTITION in h and HEADER_OFFSET in h for h in headers)
    refused = [h for h in headers if b"target refuses" in h[HEADER_REASON]]
    undecodable = [h for h in headers if b"undecodable" in h[HEADER_REASON]]
    assert len(refused) == 3 and len(undecodable) == 2
    assert {m.key() for m in letters} >= {b'{"pk":{"S":"junk"}}', b'{"pk":{"S":"junk2"}}'}
    assert REGISTRY.get(DLQ, table=table, target=target) == 5


def test_a_failing_target_never_lets_an_offset_pass_an_unwritten_event(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table, target = unique_name("flaky"), unique_name("mem")
    history = random_history(table, seed=8, n_ops=1000)
    plan = delivery_plan(history.events, seed=9)
    settings = apply_settings(
        kafka_bootstrap, target, NullTarget(type="null"), [table], retry_backoff_ms=100
    )
    produce(settings.kafka, plan)
    messages = consume_all(kafka_bootstrap, settings.kafka.changes_topic(table), len(plan))
    # Fails 12 times in a row (~2-3 s of outage with backoff), then on and off.
    sink = MemorySink(transient_failures=12, write_delay_s=0.02)
    checks: list[int] = []
    # The watcher's own failure (a committed offset past an unwritten event): re-raised
    # below, so it fails the test instead of becoming a warning about a thread.
    failures: list[BaseException] = []
    stop = threading.Event()

    def watch() -> None:
        try:
            while not stop.is_set():
                checks.append(
                    assert_committed_offsets_are_written(
                        settings.kafka, group_id(target), messages, sink
                    )
                )
                time.sleep(0.1)
        except BaseException as exc:
            failures.append(exc)

    run = start_in_process(settings, [table_spec(table)], sink)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        deadline = time.monotonic() + 90
        while run.worker.records_applied < len(plan) and time.monotonic() < deadline:
            assert run.thread.is_alive()
            if failures:
                break
            if sink.calls in (40, 41):
                sink.transient_failures = 3  # a second, shorter outage mid-stream
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(10)
        run.worker.request_stop()
    assert not watcher.is_alive(), "the offset watcher did not stop"
    if failures:
        raise failures[0]
    assert run.wait() == 0
    assert run.worker.records_applied == len(plan)
    assert len(checks) > 5
    covered = assert_committed_offsets_are_written(settings.kafka, group_id(target), messages, sink)
    assert covered == len(plan)  # the final commit covers everything
    assert_target_matches(sink, history)


def test_a_worker_dying_mid_write_commits_nothing_unwritten_and_a_restart_completes(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table, target = unique_name("crash"), unique_name("mem")
    history = random_history(table, seed=12, n_ops=1200)
    plan = delivery_plan(history.events, seed=13)
    settings = apply_settings(kafka_bootstrap, target, NullTarget(type="null"), [table])
    produce(settings.kafka, plan)
    messages = consume_all(kafka_bootstrap, settings.kafka.changes_topic(table), len(plan))
    sink = MemorySink(crash_on_batch=4)
    run = start_in_process(settings, [table_spec(table)], sink)
    assert run.wait(90) == 1  # the unexpected error stops the worker with a failure
    before = assert_committed_offsets_are_written(settings.kafka, group_id(target), messages, sink)
    assert before < len(plan)

    sink.crash_on_batch = None
    code, _worker = run_in_process(
        settings,
        [table_spec(table)],
        sink,
        until=lambda w: w.records_applied >= len(plan) - before,
    )
    assert code == 0
    assert_target_matches(sink, history)
    assert assert_committed_offsets_are_written(
        settings.kafka, group_id(target), messages, sink
    ) == len(plan)


def test_a_stop_during_a_write_finishes_that_batch_commits_it_and_exits_0(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table, target = unique_name("term"), unique_name("mem")
    history = random_history(table, seed=31, n_ops=800, backfill=False)
    settings = apply_settings(kafka_bootstrap, target, NullTarget(type="null"), [table])
    produce(settings.kafka, history.events)
    messages = consume_all(
        kafka_bootstrap, settings.kafka.changes_topic(table), len(history.events)
    )
    sink = MemorySink(write_delay_s=1.5)
    run = start_in_process(settings, [table_spec(table)], sink)
    deadline = time.monotonic() + 60
    while sink.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    run.worker.request_stop()  # what SIGTERM does, while the first write is in flight
    assert run.wait() == 0
    assert sink.batches_written == 1
    assert 0 < run.worker.records_applied < len(history.events)
    covered = assert_committed_offsets_are_written(settings.kafka, group_id(target), messages, sink)
    assert covered == run.worker.records_applied  # the finished batch was committed on the way out


def test_two_workers_share_the_partitions_and_the_target_ends_equal(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table, target = unique_name("pair"), unique_name("mem")
    history = random_history(table, seed=41, n_ops=2500)
    plan = delivery_plan(history.events, seed=42)
    settings = apply_settings(
        kafka_bootstrap, target, NullTarget(type="null"), [table], batch_size=100
    )
    produce(settings.kafka, plan)
    messages = consume_all(kafka_bootstrap, settings.kafka.changes_topic(table), len(plan))
    # Slow enough (~12 s for one worker alone) that the second joins and takes partitions.
    sink = MemorySink(write_delay_s=0.3)
    first = start_in_process(settings, [table_spec(table)], sink)
    assert first.worker.joined.wait(60)
    second = start_in_process(settings, [table_spec(table)], sink)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if first.worker.records_applied + second.worker.records_applied >= len(
                plan
            ) and assert_committed_offsets_are_written(
                settings.kafka, group_id(target), messages, sink
            ) == len(plan):
                break
            assert first.thread.is_alive() and second.thread.is_alive()
            time.sleep(0.2)
    finally:
        first.worker.request_stop()
        second.worker.request_stop()
    assert first.wait() == 0 and second.wait() == 0
    assert first.worker.records_applied > 0 and second.worker.records_applied > 0
    assert_target_matches(sink, history)
    assert assert_committed_offsets_are_written(
        settings.kafka, group_id(target), messages, sink
    ) == len(plan)
