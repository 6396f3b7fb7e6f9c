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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from bridge.codec.avro import EventCodec
from bridge.kafka import durability
from bridge.kafka.client_config import producer_config
from bridge.kafka.durability import min_insync_replicas, replication_factor
from bridge.kafka.limits import message_max_bytes, topic_max_message_bytes
from bridge.kafka.reach import described_cluster, ensure_reachable
from bridge.kafka.refusals import wait_result
from bridge.model.acks import AckTracker
from bridge.model.errors import (
    AttributeTypeError,
    MessageTooLargeError,
    PermanentError,
    TransientError,
    Unavailable,
)
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import KafkaSettings
from bridge.runtime.waits import waiting

log = logging.getLogger(__name__)


# CreateTopics answers meaning "the cluster did not answer", not "no".
_NO_ANSWER = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError.NOT_CONTROLLER,
        KafkaError._ALL_BROKERS_DOWN,
    }
)


def ensure_topics(kafka: KafkaSettings, tables: Iterable[str], timeout_s: float = 30.0) -> None:
    """Create each table's change and DLQ topics if missing (retention: `kafka.retention_ms`;
    replication: bridge/kafka/durability.py), then report whether each change topic survives
    the loss of a broker."""
    ensure_reachable(kafka)
    admin, watch, cluster = described_cluster(kafka, timeout_s)
    tables = list(tables)
    brokers = len(cluster.nodes)
    replicas = replication_factor(kafka, brokers)
    configs = {
        "min.insync.replicas": str(min_insync_replicas(kafka, replicas)),
        "cleanup.policy": "delete",
        "retention.ms": str(kafka.retention_ms),
        "max.message.bytes": str(topic_max_message_bytes(kafka)),
        # Each record's timestamp is its DynamoDB change time (`Publisher.publish`); a broker
        # default of LogAppendTime would replace it with the time Kafka received it.
        "message.timestamp.type": "CreateTime",
    }
    if kafka.retention_ms == -1:
        configs["retention.bytes"] = "-1"
    wanted = []
    for table in tables:
        for name in (kafka.changes_topic(table), kafka.dlq_topic(table)):
            wanted.append(
                NewTopic(
                    name,
                    num_partitions=kafka.partitions,
                    replication_factor=replicas,
                    config=configs,
                )
            )
    if not wanted:
        return
    futures = admin.create_topics(wanted, request_timeout=timeout_s)
    existing = []
    for name, future in futures.items():
        try:
            wait_result(
                future, admin, watch, kafka.bootstrap_servers, f"creating {name}", timeout_s
            )
            log.info("created topic", extra={"topic": name, "partitions": kafka.partitions})
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                existing.append(name)
                continue
            if err.code() in _NO_ANSWER:
                # The controller is down or restarting (a broker outage): not the topic's
                # fault, and nothing was done that a restart would not redo.
                raise Unavailable(
                    f"Kafka at {kafka.bootstrap_servers} did not answer creating {name} "
                    f"({err.str()}); run it again once the broker is reachable"
                ) from exc
            raise PermanentError(f"cannot create topic {name}: {err.str()}") from exc
    if existing:
        warn_small_topics(admin, existing, topic_max_message_bytes(kafka), timeout_s)
        changes = {kafka.changes_topic(t) for t in tables}
        warn_few_partitions(admin, [t for t in existing if t in changes], kafka, timeout_s)
    for table in tables:
        topic = kafka.changes_topic(table)
        try:
            found = durability.read(admin, topic, timeout_s, settle_s=timeout_s)
            durability.report(found, kafka.bootstrap_servers)
        except KafkaException as exc:
            log.warning("cannot read the replication of %s: %s", topic, exc, extra={"topic": topic})


def warn_few_partitions(
    admin: AdminClient, topics: list[str], kafka: KafkaSettings, timeout_s: float
) -> None:
    """Warn about existing change topics with fewer partitions than `kafka.partitions`: they
    are used as they are (not altered: they are the operator's, and adding partitions moves
    keys), so apply's parallelism is their partition count, not the setting."""
    for name in topics:
        meta = admin.list_topics(name, timeout=timeout_s).topics.get(name)
        if meta is None or meta.error is not None:
            continue  # just created or gone: create_topics said so already
        count = len(meta.partitions)
        if count < kafka.partitions:
            log.warning(
                "existing change topic %s has %d partitions, fewer than kafka.partitions=%d; "
                "it is used as it is (at most %d apply workers share it)",
                name,
                count,
                kafka.partitions,
                count,
                extra={"topic": name, "partitions": count, "configured": kafka.partitions},
            )


def warn_small_topics(admin: AdminClient, topics: list[str], needed: int, timeout_s: float) -> None:
    """Warn about existing topics that may refuse the largest event (they are not altered:
    they are the operator's). If one does refuse a record, the producer stops with an alarm."""
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in topics]
    for resource, future in admin.describe_configs(resources, request_timeout=timeout_s).items():
        try:
            entry = future.result(timeout=timeout_s).get("max.message.bytes")
            limit = int(entry.value) if entry is not None and entry.value is not None else None
        except (KafkaException, ValueError) as exc:
            log.warning(
                "cannot read max.message.bytes of an existing topic: %s",
                exc,
                extra={"topic": resource.name},
            )
            continue
        if limit is not None and limit < needed:
            log.warning(
                "existing topic %s has max.message.bytes=%d, below the largest change event "
                "(%d bytes); a larger event will stop the bridge until it is raised: "
                "kafka-configs --alter --entity-type topics --entity-name %s "
                "--add-config max.message.bytes=%d",
                resource.name,
                limit,
                needed,
                resource.name,
                needed,
                extra={"topic": resource.name, "max_message_bytes": limit},
            )


def table_of_topic(kafka: KafkaSettings, topic: str) -> str:
    """The table whose changes or DLQ topic this is ('?' for any other topic)."""
    name = topic[len(kafka.topic_prefix) :] if topic.startswith(kafka.topic_prefix) else ""
    for end in (kafka.changes_topic(""), kafka.dlq_topic("")):
        end = end[len(kafka.topic_prefix) :]  # ".changes", ".dlq"
        if name.endswith(end) and len(name) > len(end):
            return name[: -len(end)]
    return "?"


_OP_HEADER = {op: op.value.encode() for op in Op}
_ORIGIN_HEADER = {origin: origin.value.encode() for origin in Origin}
# The same as whole header items, shared by every record (publish_batch's loop).
_OP_HEADER_ITEM: dict[Op, tuple[str, str | bytes | None]] = {
    op: ("ddb.op", value) for op, value in _OP_HEADER.items()
}
_ORIGIN_HEADER_ITEM: dict[Origin, tuple[str, str | bytes | None]] = {
    origin: ("ddb.origin", value) for origin, value in _ORIGIN_HEADER.items()
}


class Publisher:
    """Produces change events to `<prefix><table>.changes`, keyed by canonical key bytes."""

    def __init__(
        self,
        kafka: KafkaSettings,
        codec: EventCodec | None = None,
        producer: Producer | None = None,
        *,
        untracked: bool = False,
        **overrides: Any,
    ) -> None:
        """`untracked`: nothing published here waits on a record's acknowledgement (an
        export back-fill flushes at each file's end), so librdkafka reports failed deliveries
        only: a delivered record then costs no Python callback (~0.7 to 1 µs of ~10 an export
        item, A/B against a broker). Passing a tracker to such a publisher raises."""
        self.kafka = kafka
        self.codec = codec or EventCodec()
        if untracked:
            overrides["delivery.report.only.error"] = True
        self.untracked = untracked
        config = producer_config(kafka, **overrides)
        self._producer = producer or Producer(config)
        # How long librdkafka keeps trying to deliver a record before it reports a failure
        # (message.timeout.ms, alias delivery.timeout.ms; librdkafka's default is 300 s).
        # Until then a record unacknowledged is still in flight, not lost.
        timeout_ms = config.get("message.timeout.ms", config.get("delivery.timeout.ms", 300_000))
        self.delivery_timeout_s = float(timeout_ms) / 1000
        self._fatal: str | None = None
        self._fatal_too_large = False
        self._fatal_size = 0  # the size of the record _fatal names, when it is too large
        self._unpolled = 0
        self._topics: dict[str, str] = {}
        self._on_delivery = self._delivered_untracked  # one bound method, not one per record
        self.published = 0
        # The headers of the last untracked event published, and what they were made of.
        self._last_headers: list[tuple[str, str | bytes | None]] = []
        self._last_version: int | None = None
        self._last_op: Op | None = None
        self._last_origin: Origin | None = None

    def _topic(self, table: str) -> str:
        topic = self._topics.get(table)
        if topic is None:
            topic = self._topics[table] = self.kafka.changes_topic(table)
        return topic

    @staticmethod
    def headers(event: ChangeEvent) -> list[tuple[str, str | bytes | None]]:
        """`ddb.version`, `ddb.op`, `ddb.origin`: a consumer can filter without decoding."""
        return [
            ("ddb.version", str(event.version).encode()),
            ("ddb.op", _OP_HEADER[event.op]),
            ("ddb.origin", _ORIGIN_HEADER[event.origin]),
        ]

    def publish(
        self, event: ChangeEvent, tracker: AckTracker[Any] | None = None, position: Any = None
    ) -> None:
        """Queue one event. With a tracker, `position` becomes safe once this record is acked."""
        if tracker is not None:
            self.produce_raw(
                self._topic(event.table),
                event.key_bytes(),
                self.codec.encode(event),
                headers=self.headers(event),
                tracker=tracker,
                position=position,
                timestamp_ms=event.change_time_ms,
            )
            return
        # The back-fills' hot path (one call per item): produce_raw's work inlined, and the
        # headers list shared by consecutive events of one version, op and origin (a
        # back-fill run's events all have one version).
        self.raise_if_failed()
        key = event.key_bytes()
        value = self.codec.encode(event)
        topic = self._topic(event.table)
        headers = self._last_headers
        if (
            event.version != self._last_version
            or event.op is not self._last_op
            or event.origin is not self._last_origin
        ):
            headers = self._last_headers = self.headers(event)
            self._last_version, self._last_op = event.version, event.op
            self._last_origin = event.origin
        timestamp = event.change_time_ms
        try:
            self._producer.produce(
                topic,
                value=value,
                key=key,
                headers=headers,
                on_delivery=self._on_delivery,
                timestamp=timestamp if timestamp > 0 else 0,
            )
        except (BufferError, KafkaException):
            self._produce_waiting(topic, key, value, headers, self._on_delivery, timestamp)
        self.published += 1
        self._unpolled += 1
        if self._unpolled >= 1000:
            self._count_unpolled(0)

    def publish_batch(
        self,
        events: Sequence[ChangeEvent],
        tracker: AckTracker[Any],
        position: Any,
        refuse: Callable[[int, Exception], None] | None = None,
    ) -> int:
        """Queue `events` (one source page, in order) as one tracked group: `position`, where
        the source stands after the last of them (None: the caller marks it), becomes safe
        once every one of them (and everything tracked before) is acknowledged. Returns how
        many were queued.

        The hot path of the stream and of a scan back-fill: one delivery callback and one
        tracker entry for the page instead of one of each per record (a scan page tracked
        record by record cost ~24 µs of CPU an item, grouped ~10, against a broker here).
        Every record is encoded before any is queued: one whose key or image cannot be
        encoded (AttributeTypeError, ArithmeticError) goes to `refuse(index, exc)` and is left
        out of the group, or, without `refuse`, raises with nothing of the page queued. A
        record that cannot be queued raises, leaving the group, and so the position,
        unacknowledged for good.
        """
        self._check_trackable()
        self.raise_if_failed()
        encode = self.codec.encode
        topic_of = self._topic
        op_header = _OP_HEADER_ITEM
        origin_header = _ORIGIN_HEADER_ITEM
        records: list[tuple[str, bytes, bytes, list[tuple[str, str | bytes | None]], int]] = []
        add = records.append
        table: str | None = None
        topic = ""
        for index, event in enumerate(events):
            if event.table is not table:  # one table per page: its topic looked up once
                table = event.table
                topic = topic_of(table)
            try:
                key = event.key_bytes()
                value = encode(event)
            except (AttributeTypeError, ArithmeticError) as exc:
                if refuse is None:
                    raise
                refuse(index, exc)
                continue
            timestamp = event.change_time_ms
            headers: list[tuple[str, str | bytes | None]] = [
                ("ddb.version", b"%d" % event.version),
                op_header[event.op],
                origin_header[event.origin],
            ]
            add((topic, key, value, headers, timestamp if timestamp > 0 else 0))
        if not records:
            if position is not None:
                tracker.mark(position)
            return 0
        seq = tracker.add_many(len(records), position)
        ack = tracker.ack

        def delivered(err: KafkaError | None, msg: Any) -> None:
            if err is None:
                ack(seq)
            else:
                self._delivered_untracked(err, msg)
                ack(seq, self._failure_text(err, msg))

        produce = self._producer.produce
        for topic, key, value, headers, timestamp in records:
            try:
                produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=delivered,
                    timestamp=timestamp,
                )
            except (BufferError, KafkaException):
                self._produce_waiting(topic, key, value, headers, delivered, timestamp)
        self.published += len(records)
        self._count_unpolled(len(records))
        return len(records)

    def produce_raw(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]] | None = None,
        tracker: AckTracker[Any] | None = None,
        position: Any = None,
        timestamp_ms: int = 0,
    ) -> None:
        """Queue one record. `timestamp_ms` is its Kafka timestamp (0: the producer's clock)."""
        self.raise_if_failed()
        if tracker is None:
            callback = self._on_delivery
        else:
            self._check_trackable()
            seq = tracker.add(position)

            def callback(err: KafkaError | None, msg: Any) -> None:
                self._delivered_untracked(err, msg)
                tracker.ack(seq, self._failure_text(err, msg) if err is not None else None)

        try:
            self._producer.produce(
                topic,
                value=value,
                key=key,
                headers=headers,
                on_delivery=callback,
                # librdkafka takes 0 as "now"; a negative time is refused, so it is too.
                timestamp=timestamp_ms if timestamp_ms > 0 else 0,
            )
        except (BufferError, KafkaException):
            self._produce_waiting(topic, key, value, headers, callback, timestamp_ms)
        self.published += 1
        self._count_unpolled(1)

    def _check_trackable(self) -> None:
        if self.untracked:
            # Its producer never reports a success: the tracker would wait for ever.
            raise RuntimeError("an untracked publisher cannot track acknowledgements")

    def _produce_waiting(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]] | None,
        callback: Any,
        timestamp_ms: int,
    ) -> None:
        """Queue one record that the producer just refused: wait while its local queue is
        full; a refusal for any other reason is raised, translated."""
        # A queue that stays full is a broker that does not take records: a legitimate wait
        # (/livez stays 200, bridge/runtime/waits.py), however long the outage lasts.
        with waiting(f"Kafka (the producer's queue for {topic} is full)"):
            while True:
                try:
                    self._producer.poll(0.05)  # serve delivery callbacks: room in the queue
                    self._producer.produce(
                        topic,
                        value=value,
                        key=key,
                        headers=headers,
                        on_delivery=callback,
                        timestamp=max(0, timestamp_ms),
                    )
                    return
                except BufferError:
                    continue  # still full (backpressure)
                except KafkaException as exc:
                    if exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                        setting = (
                            f'the producer\'s limit, [kafka.extra] "message.max.bytes" '
                            f"(now {message_max_bytes(self.kafka)})"
                        )
                        raise MessageTooLargeError(
                            self._too_large(topic, key, len(value), setting)
                        ) from exc
                    raise TransientError(f"produce to {topic} failed: {exc}") from exc

    def _count_unpolled(self, produced: int) -> None:
        # Serving callbacks on every record costs more than the record itself; every 1,000
        # keeps trackers current to within a millisecond or so.
        self._unpolled += produced
        if self._unpolled >= 1000:
            self._unpolled = 0
            self._producer.poll(0)

    def _delivered_untracked(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            topic = msg.topic() if msg is not None else "?"
            too_large = err.code() == KafkaError.MSG_SIZE_TOO_LARGE
            size = len(msg.value() or b"") if msg is not None else 0
            # The broker refuses a whole batch over the topic's limit, and every record of
            # it is reported: the largest is the one that did not fit (seen: an export
            # file's 60 KB item named by the 584-byte record batched before it).
            if self._fatal is None or (
                too_large and self._fatal_too_large and size > self._fatal_size
            ):
                self._fatal = self._failure_text(err, msg)
                self._fatal_too_large, self._fatal_size = too_large, size
            log.error("delivery failed", extra={"topic": topic, "error": err.str()})

    def _failure_text(self, err: KafkaError, msg: Any) -> str:
        topic = msg.topic() if msg is not None else "?"
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE and msg is not None:
            # The broker refused it: the topic's (or the broker's) limit is the one to raise.
            setting = (
                f"the topic's max.message.bytes (kafka-configs --alter --entity-type topics "
                f"--entity-name {topic} --add-config max.message.bytes="
                f"{topic_max_message_bytes(self.kafka)}), or the broker's message.max.bytes"
            )
            return self._too_large(topic, msg.key() or b"", len(msg.value() or b""), setting)
        key = (msg.key() or b"")[:300].decode("utf-8", "replace") if msg is not None else "?"
        return f"delivery to {topic} of key {key} failed: {err.str()}"

    def _too_large(self, topic: str, key: bytes, size: int, setting: str) -> str:
        table = table_of_topic(self.kafka, topic)
        return (
            f"Kafka refused a record of table {table} (topic {topic}) key "
            f"{key[:300].decode('utf-8', 'replace')}, {size} bytes before compression: "
            f"over {setting}. "
            "Stopped without checkpointing past it, so nothing is skipped yet; raise that "
            f"setting to at least {size} and restart. A stream record not published within "
            "24 hours of its write is trimmed from the DynamoDB stream and lost (the table "
            "then needs a new back-fill)"
        )

    def poll(self, timeout_s: float = 0.0) -> None:
        self._producer.poll(timeout_s)
        self.raise_if_failed()

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every queued record is acknowledged, or raise."""
        deadline = time.monotonic() + timeout_s
        remaining = self._producer.flush(0)
        with waiting("Kafka (acknowledgement of the records sent)"):
            while True:
                self.raise_if_failed()
                if remaining == 0:
                    return
                if time.monotonic() >= deadline:
                    raise TransientError(
                        f"{remaining} records still unacknowledged after {timeout_s}s"
                    )
                remaining = self._producer.flush(max(0.0, min(1.0, deadline - time.monotonic())))

    def raise_if_failed(self) -> None:
        if self._fatal is not None and self._fatal_too_large:
            raise MessageTooLargeError(self._fatal)
        if self._fatal is not None:
            raise PermanentError(
                f"Kafka {self._fatal}; stopping without checkpointing past the failed record"
            )

    def close(self, timeout_s: float = 60.0) -> None:
        self.flush(timeout_s)
