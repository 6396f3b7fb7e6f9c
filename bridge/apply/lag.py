"""How far behind is an apply group? Committed offsets against end offsets, per partition.

`demo` and `verify` use this to know when apply has caught up (tested on Apache Kafka; the
demo's Java-less Tansu broker can report a wrong high watermark).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from bridge.errors import TransientError
from bridge.publisher import admin_config
from bridge.settings import KafkaSettings


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    start: int
    end: int

    @property
    def lag(self) -> int:
        position = self.committed if self.committed is not None else self.start
        return max(0, self.end - max(position, self.start))


def group_lag(
    kafka: KafkaSettings, group: str, topics: Sequence[str], timeout_s: float = 10.0
) -> list[PartitionLag]:
    """Committed vs start/end offsets of `group` on every partition of `topics`.

    Reads committed offsets without joining the group (no rebalance for running workers).
    """
    config = admin_config(kafka)
    config.update(
        {"group.id": group, "enable.auto.commit": False, "client.id": f"lag-{uuid.uuid4().hex[:6]}"}
    )
    consumer = Consumer(config)
    try:
        tps: list[TopicPartition] = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
            if meta is None or meta.error is not None:
                raise TransientError(
                    f"topic {topic}: no metadata ({meta.error if meta else 'missing'})"
                )
            tps.extend(TopicPartition(topic, p) for p in sorted(meta.partitions))
        committed = consumer.committed(tps, timeout=timeout_s)
        out = []
        for tp in committed:
            if tp.error is not None:
                raise TransientError(f"committed offset of {tp.topic}/{tp.partition}: {tp.error}")
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=timeout_s
            )
            out.append(
                PartitionLag(
                    topic=tp.topic,
                    partition=tp.partition,
                    committed=tp.offset if tp.offset >= 0 else None,
                    start=low,
                    end=high,
                )
            )
        return out
    except KafkaException as exc:
        raise TransientError(f"reading offsets of group {group}: {exc}") from exc
    finally:
        consumer.close()


def total_lag(lags: Sequence[PartitionLag]) -> int:
    return sum(p.lag for p in lags)


def caught_up(lags: Sequence[PartitionLag]) -> bool:
    return total_lag(lags) == 0


class CommittedReader:
    """The group's committed offsets, read without joining the group (for `OffsetLedger`).

    A partition the group never committed, or whose committed offset retention has since
    deleted, starts at its log start offset: that is where the worker's fetch begins.
    """

    def __init__(self, kafka: KafkaSettings, group: str, timeout_s: float = 10.0) -> None:
        config = admin_config(kafka)
        config.update(
            {
                "group.id": group,
                "enable.auto.commit": False,
                "client.id": f"apply-offsets-{uuid.uuid4().hex[:6]}",
            }
        )
        self._consumer = Consumer(config)
        self._timeout_s = timeout_s

    def read(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        tps = [TopicPartition(t, p) for t, p in partitions]
        try:
            out: dict[tuple[str, int], int] = {}
            for tp in self._consumer.committed(tps, timeout=self._timeout_s):
                if tp.error is not None:
                    raise TransientError(
                        f"committed offset of {tp.topic}/{tp.partition}: {tp.error}"
                    )
                low, _high = self._consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=self._timeout_s
                )
                out[(tp.topic, tp.partition)] = max(tp.offset, low)
            return out
        except KafkaException as exc:
            raise TransientError(f"reading committed offsets: {exc}") from exc

    def close(self) -> None:
        self._consumer.close()
