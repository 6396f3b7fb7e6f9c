"""Reading the cluster's bookkeeping without joining a group: partitions, watermarks,
committed offsets, offsets by time.

One place for the consumer that only reads (status, lag, replay, the DLQ readers, apply's
offset ledger) and one rule for what a broker answers while a topic or a group coordinator is
still settling. A topic created a moment ago answers NOT_LEADER_FOR_PARTITION or
LEADER_NOT_AVAILABLE until its partitions have leaders; a group's coordinator answers
NOT_COORDINATOR or "load in progress" while it is created or moved. Each passes in seconds, so
each read here is retried for a few seconds before it becomes a `TransientError` naming what
was read. (`status` once died on a DLQ topic the stream had created a second earlier.)

Committed offsets are read one way, by `OffsetFetcher`: an OffsetFetch from a consumer that
carries the group's id but never subscribes, joins or commits, so running members see no
rebalance. Not through the admin API: librdkafka's admin OffsetFetch crashes the process
(SIGSEGV) when the coordinator answers NOT_COORDINATOR — a fresh cluster, or a coordinator
moving after a broker restart (tests/integration/test_committed_offsets_fresh_broker.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from bridge.kafka.publisher import admin_config
from bridge.model.errors import TransientError
from bridge.runtime.settings import KafkaSettings

T = TypeVar("T")

# Broker answers that mean "not yet", not "no".
SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._WAIT_COORD,
    }
)
SETTLE_S = 10.0


def settling(error: KafkaError | None) -> bool:
    return error is not None and error.code() in SETTLING


def retrying(what: str, call: Callable[[], T], settle_s: float = SETTLE_S) -> T:
    """`call()`, again while the broker answers "not yet" (for up to `settle_s`); any other
    Kafka error, or one that outlasts `settle_s`, is a TransientError naming `what`."""
    deadline = time.monotonic() + settle_s
    delay = 0.1
    while True:
        try:
            return call()
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if not settling(error) or time.monotonic() + delay > deadline:
                raise TransientError(f"{what}: {exc}") from exc
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def reader_consumer(
    kafka: KafkaSettings, purpose: str, extra: dict[str, Any] | None = None
) -> Consumer:
    """A consumer that never subscribes, joins or commits: its group id is a throwaway."""
    config = admin_config(kafka)
    config.update(
        {
            "group.id": f"ddb-bridge.{purpose}.{uuid.uuid4().hex[:8]}",
            "client.id": f"ddb-bridge-{purpose}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # librdkafka's default, kept explicit: records of aborted transactions written
            # by other producers (MirrorMaker 2, Connect) are never read as changes.
            "isolation.level": "read_committed",
            **(extra or {}),
        }
    )
    return Consumer(config)


@contextmanager
def reader(
    kafka: KafkaSettings, purpose: str, extra: dict[str, Any] | None = None
) -> Iterator[Consumer]:
    consumer = reader_consumer(kafka, purpose, extra)
    try:
        yield consumer
    finally:
        consumer.close()


def partitions_of(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> list[int] | None:
    """The partition numbers of `topic`, or None when it does not exist."""

    def look() -> list[int] | None:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None:
            return None
        if meta.error is not None:
            if meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return None
            raise KafkaException(meta.error)
        return sorted(meta.partitions)

    return retrying(f"reading the partitions of {topic}", look)


def existing_topics(consumer: Consumer, timeout_s: float = 10.0) -> set[str]:
    """Every topic the cluster has, in one metadata request."""
    meta = retrying("listing topics", lambda: consumer.list_topics(timeout=timeout_s))
    return {name for name, t in meta.topics.items() if t.error is None}


def watermarks(
    consumer: Consumer, topic: str, partition: int, timeout_s: float = 10.0
) -> tuple[int, int]:
    """(low, high) watermark of one partition."""
    return retrying(
        f"reading the offsets of {topic}/{partition}",
        lambda: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s),
    )


def offsets_for_time(
    consumer: Consumer, tps: Sequence[tuple[str, int]], time_ms: int, timeout_s: float = 10.0
) -> dict[tuple[str, int], int | None]:
    """The first offset at or after `time_ms` per partition; None where there is none."""
    asked = [TopicPartition(t, p, time_ms) for t, p in tps]
    found = retrying(
        "reading offsets by time", lambda: consumer.offsets_for_times(asked, timeout=timeout_s)
    )
    out: dict[tuple[str, int], int | None] = {}
    for tp in found:
        if tp.error is not None:
            raise TransientError(f"offset for time on {tp.topic}/{tp.partition}: {tp.error}")
        out[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
    return out


class OffsetFetcher:
    """Committed offsets of any number of groups: one consumer per group, carrying its id,
    created on first use and closed together (`close`, or use it as a context manager)."""

    def __init__(self, kafka: KafkaSettings, settle_s: float = SETTLE_S) -> None:
        self._kafka = kafka
        self._settle_s = settle_s
        self._consumers: dict[str, Consumer] = {}

    def __enter__(self) -> OffsetFetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def committed(
        self, group: str, tps: Sequence[tuple[str, int]], timeout_s: float = 10.0
    ) -> dict[tuple[str, int], int | None]:
        """`group`'s committed offset per partition (None: never committed)."""
        notes = self.committed_with_metadata(group, tps, timeout_s)
        return {tp: offset for tp, (offset, _meta) in notes.items()}

    def committed_with_metadata(
        self, group: str, tps: Sequence[tuple[str, int]], timeout_s: float = 10.0
    ) -> dict[tuple[str, int], tuple[int | None, str]]:
        """`group`'s committed offset per partition (None: never committed) and the metadata
        committed with it ("" for none)."""
        consumer = self._consumers.get(group)
        if consumer is None:
            # The group's own id: an OffsetFetch is answered for the group the consumer names.
            consumer = reader_consumer(self._kafka, "offsets", {"group.id": group})
            self._consumers[group] = consumer
        request = [TopicPartition(t, p) for t, p in tps]

        def fetch() -> list[TopicPartition]:
            listed: list[TopicPartition] = consumer.committed(request, timeout=timeout_s)
            for tp in listed:
                if tp.error is not None:
                    raise KafkaException(tp.error)
            return listed

        # A read that times out (a broker restarting) raises KafkaException(_TIMED_OUT): retried
        # here, then a TransientError that apply's loop retries, never a bare TimeoutError.
        listed = retrying(f"reading the committed offsets of group {group}", fetch, self._settle_s)
        return {
            (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None, _metadata(tp))
            for tp in listed
        }

    def close(self) -> None:
        consumers, self._consumers = self._consumers, {}
        for consumer in consumers.values():
            consumer.close()


def _metadata(tp: TopicPartition) -> str:
    """A committed offset's metadata. confluent-kafka 2.16 reads it as a C string, past its
    end unless it holds a NUL (the bridge's own notes end with one: bridge/kafka/skipped_offsets.py),
    so another tool's metadata may come back undecodable: it is not the bridge's, so none."""
    try:
        return tp.metadata or ""
    except UnicodeDecodeError:
        return ""
