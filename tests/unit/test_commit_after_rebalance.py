"""A commit whose partitions were all revoked meanwhile is "rebalanced", not a crash.

Seen on Apache Kafka (tests/integration/test_apply_kafka.py, two workers): a second worker
joined while the first wrote a batch, the batch's partitions moved, and Faust's driver handed
aiokafka an empty commit, which aiokafka refuses with ValueError({}); Faust then crashed the
consumer and `apply` exited 1.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.util import commit_structure_validate
from faust.types import TP

from bridge.apply.faust_group import FeedConsumer


class FakeAiokafka:
    def __init__(self, assigned: set[Any]) -> None:
        self.assigned = assigned
        self.committed: list[dict[Any, Any]] = []

    def assignment(self) -> set[Any]:
        return self.assigned

    async def commit(self, offsets: dict[Any, Any]) -> None:
        self.committed.append(commit_structure_validate(offsets))  # aiokafka's own check


def consumer_thread(assigned: set[TP]) -> tuple[Any, FakeAiokafka, list[BaseException]]:
    """The consumer thread FeedConsumer runs, without a broker: only what `_commit` touches."""
    cls = FeedConsumer.thread_class
    thread = cls.__new__(cls)
    consumer = FakeAiokafka(set(assigned))
    crashes: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashes.append(exc)

    thread._consumer = consumer
    thread.tp_last_committed_at = {}
    thread.crash = crash
    thread.log = logging.getLogger("test")
    return thread, consumer, crashes


def test_all_partitions_revoked_reports_rebalanced_without_crashing() -> None:
    thread, consumer, crashes = consumer_thread(assigned=set())
    done = asyncio.run(thread._commit({TP("t", 0): 5, TP("t", 1): 7}))
    assert done is False
    assert crashes == [] and consumer.committed == []


def test_partitions_still_assigned_are_committed() -> None:
    thread, consumer, crashes = consumer_thread(assigned={TP("t", 1)})
    done = asyncio.run(thread._commit({TP("t", 0): 5, TP("t", 1): 7}))
    assert done is True and crashes == []
    assert [
        {(tp.topic, tp.partition): o.offset for tp, o in c.items()} for c in consumer.committed
    ] == [{("t", 1): 7}]
