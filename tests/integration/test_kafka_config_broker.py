"""The one client-config builder against the real broker: a consumer it builds with
`[kafka.extra]` reads, and the broker sees the extra (the member's client id)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from bridge.consumer import EventStream
from bridge.kafka.client_config import admin_config
from bridge.kafka.reads import reader, watermarks
from tests.consumer_helpers import change, kafka_for, publish

pytestmark = pytest.mark.integration

EXTRA = {"client.id": "extra-reached-the-broker", "socket.keepalive.enable": True}


def member_client_ids(admin: AdminClient, group: str) -> set[str]:
    [future] = admin.describe_consumer_groups([group], request_timeout=10).values()
    return {member.client_id for member in future.result().members}


def test_a_consumer_built_with_an_extra_reads_and_the_broker_sees_the_extra(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table, group = unique_name("extra"), unique_name("group")
    kafka = kafka_for(kafka_bootstrap, partitions=1).model_copy(
        update={"extra": {**EXTRA, "fetch.wait.max.ms": 100}}
    )
    sent = [change(table, "a", i) for i in range(3)]
    publish(kafka, sent)
    with reader(kafka, "extra-check") as consumer:
        assert watermarks(consumer, kafka.changes_topic(table), 0) == (0, 3)
    admin = AdminClient(admin_config(kafka))
    end = time.monotonic() + 60
    seen: list[int] = []
    members: set[str] = set()
    with EventStream(
        kafka,
        [table],
        group,
        from_beginning=True,
        config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    ) as stream:
        for event in stream:
            seen.append(event.version)
            if len(seen) == len(sent):
                break
            assert time.monotonic() < end, "the events did not arrive"
        # Still a member while the stream is open: the broker reports its client id.
        while time.monotonic() < end and not members:
            members = member_client_ids(admin, group)
    assert seen == [e.version for e in sent]
    assert members == {EXTRA["client.id"]}
