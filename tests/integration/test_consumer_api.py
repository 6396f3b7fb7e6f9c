"""The public consumer API (`bridge.consumer.events`) against the real broker: what is committed
when, reading without a group, records that are not change events, a missing topic."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Producer

from bridge.consumer import EventStream, Undecodable, events
from bridge.model.errors import PermanentError
from bridge.model.event import ChangeEvent
from tests.consumer_helpers import change, kafka_for, publish

pytestmark = pytest.mark.integration

FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def deadline(seconds: float = 60) -> Any:
    """An `on_idle` that fails the test instead of waiting forever."""
    end = time.monotonic() + seconds

    def check() -> None:
        if time.monotonic() > end:
            raise AssertionError(f"no event for {seconds}s")

    return check


def versions(items: list[ChangeEvent]) -> list[int]:
    return [e.version for e in items]


def open_group(bootstrap: str, table: str, group: str, **kw: Any) -> EventStream:
    return events(
        bootstrap, table, group, from_beginning=True, config=FAST_GROUP, on_idle=deadline(), **kw
    )


def test_an_event_is_committed_once_the_loop_body_returned_for_it(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table, group = unique_name("api"), unique_name("group")
    sent = [change(table, "a", i) for i in range(6)]
    publish(kafka_for(kafka_bootstrap, partitions=1), sent)
    seen: list[ChangeEvent] = []
    with open_group(kafka_bootstrap, table, group) as stream:
        for event in stream:
            seen.append(event)
            if len(seen) == 3:
                break  # the body of the third event did not return: not committed
    assert versions(seen) == versions(sent[:3])
    again: list[ChangeEvent] = []
    with open_group(kafka_bootstrap, table, group) as stream:
        for event in stream:
            again.append(event)
            if len(again) == 4:
                break
    assert versions(again) == versions(sent[2:6])


def test_with_commit_off_only_an_explicit_commit_counts(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table, group = unique_name("apicommit"), unique_name("group")
    sent = [change(table, "a", i) for i in range(5)]
    publish(kafka_for(kafka_bootstrap, partitions=1), sent)
    with open_group(kafka_bootstrap, table, group, commit=False) as stream:
        for n, _event in enumerate(stream, start=1):
            if n == 2:
                stream.commit()  # the second event included
            if n == 4:
                break
    with open_group(kafka_bootstrap, table, group, commit=False) as stream:
        first = next(iter(stream))
    assert first.version == sent[2].version


def test_without_a_group_nothing_is_committed_and_latest_means_after_the_call(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table = unique_name("apinogroup")
    kafka = kafka_for(kafka_bootstrap)
    old = [change(table, k, i) for i, k in enumerate("ab")]
    publish(kafka, old)
    with events(kafka, [table], None, on_idle=deadline()) as stream:
        new = [change(table, k, i) for i, k in enumerate("cde", start=10)]
        publish(kafka, new)
        got = [c for _, c in zip(range(3), stream.records(), strict=False)]
        with pytest.raises(ValueError, match="no offsets to commit"):
            stream.commit()
    assert sorted(c.event.version for c in got) == versions(new)
    assert {c.topic for c in got} == {kafka.changes_topic(table)}
    assert all(c.change_time_ms == c.event.approximate_creation_time_ms for c in got)
    with events(kafka, table, None, from_beginning=True, on_idle=deadline()) as stream:
        everything = [e for _, e in zip(range(5), stream, strict=False)]
    assert sorted(versions(everything)) == versions(old + new)


def test_a_record_that_is_not_an_event_is_raised_with_where_it_is_or_handed_over(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table = unique_name("apibad")
    kafka = kafka_for(kafka_bootstrap, partitions=1)
    publish(kafka, [change(table, "a", 1)])
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(kafka.changes_topic(table), key=b"k", value=b"not avro")
    producer.flush(30)
    publish(kafka, [change(table, "a", 2)])

    with events(kafka, table, None, from_beginning=True, on_idle=deadline()) as stream:
        records = stream.records()
        assert next(records).offset == 0
        with pytest.raises(Undecodable) as raised:
            next(records)
    assert (raised.value.topic, raised.value.partition, raised.value.offset) == (
        kafka.changes_topic(table),
        0,
        1,
    )
    assert f"{kafka.changes_topic(table)} partition 0 offset 1" in str(raised.value)
    assert raised.value.value == b"not avro"

    bad: list[Undecodable] = []
    with events(
        kafka, table, None, from_beginning=True, on_idle=deadline(), on_undecodable=bad.append
    ) as stream:
        good = [e for _, e in zip(range(2), stream, strict=False)]
    assert [e.version for e in good] == [
        change(table, "a", 1).version,
        change(table, "a", 2).version,
    ]
    assert [b.offset for b in bad] == [1]


def test_a_missing_topic_is_named(kafka_bootstrap: str, unique_name: Any) -> None:
    table = unique_name("apimissing")
    with pytest.raises(PermanentError, match=rf"topic ddb\.{table}\.changes does not exist"):
        events(kafka_bootstrap, table, None)
