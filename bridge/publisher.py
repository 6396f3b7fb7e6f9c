"""Kafka publisher: idempotent, keyed, with delivery tracking for safe checkpoints.

Delivery guarantee: at-least-once. Every record is produced with `enable.idempotence=true`
and `acks=all`; a source checkpoints a position only once its `AckTracker` says every record
before it was acknowledged. A delivery error is raised to the caller (`raise_if_failed`),
never only logged; re-publishing after a crash yields identical records (same key, same
version), which last-write-wins makes harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bridge.acks import AckTracker
from bridge.avro_codec import EventCodec
from bridge.errors import PermanentError, TransientError
from bridge.event import ChangeEvent
from bridge.settings import KafkaSettings

log = logging.getLogger(__name__)


def producer_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        # The Java client's partitioner, so other Kafka tools co-partition with us.
        "partitioner": "murmur2_random",
        "linger.ms": kafka.linger_ms,
        "compression.type": kafka.compression,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 200_000,
        "queue.buffering.max.kbytes": 256 * 1024,
    }
    config.update(kafka.extra)
    config.update(overrides)
    return config


def admin_config(kafka: KafkaSettings) -> dict[str, Any]:
    # Admin and consumers take the security options of `extra`, not producer tuning.
    config: dict[str, Any] = {"bootstrap.servers": kafka.bootstrap_servers}
    config.update(
        {k: v for k, v in kafka.extra.items() if k.startswith(("security.", "sasl.", "ssl."))}
    )
    return config


def ensure_topics(kafka: KafkaSettings, tables: Iterable[str], timeout_s: float = 30.0) -> None:
    """Create each table's change and DLQ topics if missing (retention: `kafka.retention_ms`)."""
    admin = AdminClient(admin_config(kafka))
    configs = {"cleanup.policy": "delete", "retention.ms": str(kafka.retention_ms)}
    if kafka.retention_ms == -1:
        configs["retention.bytes"] = "-1"
    wanted = []
    for table in tables:
        for name in (kafka.changes_topic(table), kafka.dlq_topic(table)):
            wanted.append(
                NewTopic(
                    name,
                    num_partitions=kafka.partitions,
                    replication_factor=kafka.replication_factor,
                    config=configs,
                )
            )
    if not wanted:
        return
    futures = admin.create_topics(wanted, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            log.info("created topic", extra={"topic": name, "partitions": kafka.partitions})
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise PermanentError(f"cannot create topic {name}: {err.str()}") from exc


class Publisher:
    """Produces change events to `<prefix><table>.changes`, keyed by canonical key bytes."""

    def __init__(
        self,
        kafka: KafkaSettings,
        codec: EventCodec | None = None,
        producer: Producer | None = None,
        **overrides: Any,
    ) -> None:
        self.kafka = kafka
        self.codec = codec or EventCodec()
        self._producer = producer or Producer(producer_config(kafka, **overrides))
        self._fatal: str | None = None
        self._unpolled = 0
        self.published = 0

    def publish(
        self, event: ChangeEvent, tracker: AckTracker[Any] | None = None, position: Any = None
    ) -> None:
        """Queue one event. With a tracker, `position` becomes safe once this record is acked."""
        self.produce_raw(
            self.kafka.changes_topic(event.table),
            event.key_bytes(),
            self.codec.encode(event),
            headers=[
                ("ddb.version", str(event.version).encode()),
                ("ddb.op", event.op.value.encode()),
                ("ddb.origin", event.origin.value.encode()),
            ],
            tracker=tracker,
            position=position,
        )

    def produce_raw(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]] | None = None,
        tracker: AckTracker[Any] | None = None,
        position: Any = None,
    ) -> None:
        self.raise_if_failed()
        if tracker is None:
            callback = self._delivered_untracked
        else:
            seq = tracker.add(position)

            def callback(err: KafkaError | None, msg: Any) -> None:
                self._delivered_untracked(err, msg)
                tracker.ack(seq, err.str() if err is not None else None)

        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=callback
                )
                break
            except BufferError:
                # Local queue full: serve delivery callbacks until there is room (backpressure).
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise TransientError(f"produce to {topic} failed: {exc}") from exc
        self.published += 1
        # Serving callbacks on every record costs more than the record itself; every 1,000
        # keeps trackers current to within a millisecond or so.
        self._unpolled += 1
        if self._unpolled >= 1000:
            self._unpolled = 0
            self._producer.poll(0)

    def _delivered_untracked(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            topic = msg.topic() if msg is not None else "?"
            if self._fatal is None:
                self._fatal = f"delivery to {topic} failed: {err.str()}"
            log.error("delivery failed", extra={"topic": topic, "error": err.str()})

    def poll(self, timeout_s: float = 0.0) -> None:
        self._producer.poll(timeout_s)
        self.raise_if_failed()

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every queued record is acknowledged, or raise."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = self._producer.flush(max(0.0, min(1.0, deadline - time.monotonic())))
            self.raise_if_failed()
            if remaining == 0:
                return
            if time.monotonic() >= deadline:
                raise TransientError(f"{remaining} records still unacknowledged after {timeout_s}s")

    def raise_if_failed(self) -> None:
        if self._fatal is not None:
            raise PermanentError(
                f"Kafka {self._fatal}; stopping without checkpointing past the failed record"
            )

    def close(self, timeout_s: float = 60.0) -> None:
        self.flush(timeout_s)
