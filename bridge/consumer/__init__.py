"""Your own consumers of the change topics: decoded `ChangeEvent`s, with or without a group.

    from bridge.consumer import events

    with events("localhost:9092", "orders", "orders-audit", from_beginning=True) as stream:
        for event in stream:          # bridge.model.event.ChangeEvent
            handle(event)             # the offset is stored once this returns

Delivery guarantee, with a group and `commit=True` (the default): at least once. An event's
offset is stored only when the loop asks for the next event, that is after the loop body
returned for it; stored offsets are committed every `auto.commit.interval.ms` (5 s), when
partitions are revoked in a rebalance, and on `close()`. A crash, or a `break` out of the
loop, before that means the event is delivered again to the group's next reader. Events
come in order per partition, so per item (the topics are keyed by the item's key). Handle
events idempotently: a re-delivered event carries the same version, and
`bridge.model.versioning.wins` is the bridge's own rule for which of two events of an item wins.
`stream.commit()` commits synchronously everything handed out so far, the event in hand
included. With `commit=False`, nothing is committed except by `commit()`.

Without a group (`group_id=None`) the reader is assigned every partition of the topics as
they are when it starts (no consumer group, nothing committed): at the oldest retained
event with `from_beginning=True`, else at each partition's end as read at `events()`, so
every event published after `events()` returned is seen. With a group, `from_beginning`
applies where the group has no committed offset yet, and "latest" is resolved when the group
join completes.

Both framings decode (Avro single-object, Confluent wire format): the codec comes from the
settings (`bridge.kafka.schema_registry.make_codec`) unless one is passed, e.g.
`bridge.kafka.schema_registry.registry_codec(url)` or `bridge.codec.avro.EventCodec()`.

This room holds the reader (here, the package face) and events as text (`text`).
May import: `kafka`, `codec`, `runtime`, `model`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from bridge.codec.avro import EventCodec
from bridge.kafka import client_config as kafka_config
from bridge.kafka.limits import librdkafka_fetch_config, message_max_bytes
from bridge.kafka.schema_registry import make_codec, registry_codec
from bridge.model.errors import DecodeError, PermanentError, TransientError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import KafkaSettings

# What a consumer of your own needs, importable from here: the reader, the event type, and
# the decoders of both framings (`EventCodec().decode`; `registry_codec(url).decode`).
__all__ = [
    "ChangeEvent",
    "Consumed",
    "EventCodec",
    "EventStream",
    "Op",
    "Origin",
    "Undecodable",
    "events",
    "registry_codec",
]

log = logging.getLogger(__name__)

# Consumer errors that no retry inside librdkafka will cure: the reader stops on them.
_PERMANENT = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
}


@dataclass(frozen=True, slots=True)
class Consumed:
    """A decoded event and where it was read."""

    event: ChangeEvent
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None  # the record's Kafka timestamp

    @property
    def change_time_ms(self) -> int | None:
        """When the item changed: the stream's change time, else the record's timestamp."""
        if self.event.approximate_creation_time_ms is not None:
            return self.event.approximate_creation_time_ms
        return self.timestamp_ms


class Undecodable(DecodeError):
    """A record of a change topic that is not a change event, and where it is."""

    def __init__(
        self, topic: str, partition: int, offset: int, value: bytes | None, reason: str
    ) -> None:
        super().__init__(f"{topic} partition {partition} offset {offset}: {reason}")
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.value = value
        self.reason = reason


def consumer_config(
    kafka: KafkaSettings, group_id: str | None, *, from_beginning: bool, commit: bool
) -> dict[str, Any]:
    """librdkafka options of a reader of change topics (and `[kafka.extra]`, through the
    one builder: a key contradicting these is refused by name)."""
    return kafka_config.consumer_config(
        kafka,
        "event-stream",
        defaults=librdkafka_fetch_config(message_max_bytes(kafka)),
        fixed={
            # Without a group the id is never used to join or commit; librdkafka wants one.
            "group.id": group_id or f"ddb-bridge.reader.{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": commit and group_id is not None,
            # Offsets are stored by EventStream once the caller is done with an event.
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.partition.eof": False,
            # librdkafka's default, kept explicit: aborted transactions are never read.
            "isolation.level": "read_committed",
        },
    )


class EventStream:
    """Decoded events of the change topics of some tables; see the module docstring.

    Iterate it for `ChangeEvent`s, or `records()` for `Consumed` (event, topic, partition,
    offset, timestamp). Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        tables: Sequence[str],
        group_id: str | None,
        *,
        from_beginning: bool = False,
        commit: bool = True,
        codec: EventCodec | None = None,
        config: Mapping[str, Any] | None = None,
        on_undecodable: Callable[[Undecodable], object] | None = None,
        on_idle: Callable[[], object] | None = None,
        poll_timeout_s: float = 0.2,
        timeout_s: float = 30.0,
    ) -> None:
        if not tables:
            raise ValueError("events() needs at least one table")
        if codec is None:
            codec = make_codec(kafka)  # registers nothing: this codec only decodes
        self.kafka = kafka
        self.codec = codec
        self.group_id = group_id
        self.topics = [kafka.changes_topic(t) for t in tables]
        self._on_undecodable = on_undecodable
        self._on_idle = on_idle
        self._poll_timeout_s = poll_timeout_s
        self._stop = threading.Event()
        self._in_hand: Message | None = None  # handed out, the caller not yet done with it
        conf = consumer_config(kafka, group_id, from_beginning=from_beginning, commit=commit)
        conf.update(config or {})
        self._consumer = Consumer(conf)
        try:
            partitions = self._partitions(timeout_s)
            if group_id is None:
                self._assign(partitions, from_beginning, timeout_s)
            else:
                self._consumer.subscribe(self.topics)
        except BaseException:
            self._consumer.close()
            raise

    def _partitions(self, timeout_s: float) -> dict[str, list[int]]:
        out = {}
        for topic in self.topics:
            try:
                meta = self._consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
            except KafkaException as exc:
                raise TransientError(
                    f"Kafka {self.kafka.bootstrap_servers}: metadata of {topic}: {exc}"
                ) from exc
            if meta is None or meta.error is not None or not meta.partitions:
                raise PermanentError(
                    f"topic {topic} does not exist on {self.kafka.bootstrap_servers}: nothing "
                    f"was published for that table yet, or kafka.topic_prefix "
                    f"({self.kafka.topic_prefix!r}) is not the bridge's"
                    + (f" ({meta.error.str()})" if meta is not None and meta.error else "")
                )
            out[topic] = sorted(meta.partitions)
        return out

    def _assign(
        self, partitions: dict[str, list[int]], from_beginning: bool, timeout_s: float
    ) -> None:
        """Every partition, at its start or at its end as of now (resolved here rather than by
        librdkafka's first fetch, so nothing published after this call is skipped)."""
        tps = []
        for topic, numbers in partitions.items():
            for p in numbers:
                if from_beginning:
                    tps.append(TopicPartition(topic, p, OFFSET_BEGINNING))
                    continue
                try:
                    _low, high = self._consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=timeout_s
                    )
                except KafkaException as exc:
                    raise TransientError(f"end offset of {topic}/{p}: {exc}") from exc
                tps.append(TopicPartition(topic, p, high))
        self._consumer.assign(tps)

    def __iter__(self) -> Iterator[ChangeEvent]:
        for consumed in self.records():
            yield consumed.event

    def records(self) -> Iterator[Consumed]:
        """Decoded records until `stop()` or `close()`, each with where it was read."""
        while True:
            self._done_with_in_hand()
            if self._stop.is_set():
                return
            try:
                msg = self._consumer.poll(self._poll_timeout_s)
            except RuntimeError:
                if self._stop.is_set():  # closed from another thread
                    return
                raise
            if msg is None:
                if self._on_idle is not None:
                    self._on_idle()
                continue
            err = msg.error()
            if err is not None:
                self._consumer_error(err)
                continue
            consumed = self._decode(msg)
            self._in_hand = msg
            if consumed is not None:
                yield consumed

    def _decode(self, msg: Message) -> Consumed | None:
        """The record decoded; an undecodable one goes to `on_undecodable` (then None) or
        is raised."""
        topic, partition, offset = msg.topic() or "?", msg.partition(), msg.offset()
        assert partition is not None and offset is not None  # a record, not an event
        value = msg.value()
        try:
            if not value:
                raise DecodeError("empty value (not a change event)")
            event = self.codec.decode(value)
        except DecodeError as exc:
            bad = Undecodable(topic, partition, offset, value, str(exc))
            if self._on_undecodable is None:
                raise bad from exc
            self._on_undecodable(bad)
            return None
        kind, ts = msg.timestamp()
        return Consumed(
            event, topic, partition, offset, None if kind == TIMESTAMP_NOT_AVAILABLE else ts
        )

    def _consumer_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() in _PERMANENT:
            raise PermanentError(f"Kafka consumer of {', '.join(self.topics)}: {err.str()}")
        # Anything else librdkafka retries by itself (a broker down, a leader moving).
        log.warning("kafka consumer: %s", err.str(), extra={"topics": ",".join(self.topics)})

    def _done_with_in_hand(self) -> None:
        msg, self._in_hand = self._in_hand, None
        if msg is None or self.group_id is None:
            return
        try:
            self._consumer.store_offsets(message=msg)
        except KafkaException as exc:
            # Its partition was revoked meanwhile: its new owner reads it again.
            log.info(
                "offset not stored: %s",
                exc,
                extra={"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()},
            )

    def commit(self) -> None:
        """Commit, synchronously, every event handed out so far (the one in hand included)."""
        if self.group_id is None:
            raise ValueError("a reader without a group_id has no offsets to commit")
        self._done_with_in_hand()
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError._NO_OFFSET:
                return  # nothing new since the last commit
            raise TransientError(f"commit of group {self.group_id}: {exc}") from exc

    def stop(self) -> None:
        """End the iteration at the next poll (safe from a signal handler or another thread)."""
        self._stop.set()

    def close(self) -> None:
        """Leave the group, committing stored offsets when `commit=True`. The event in hand
        when the loop was left is not committed: it is delivered again."""
        self._stop.set()
        self._consumer.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def events(
    kafka: KafkaSettings | str,
    tables: str | Sequence[str],
    group_id: str | None,
    *,
    from_beginning: bool = False,
    commit: bool = True,
    codec: EventCodec | None = None,
    config: Mapping[str, Any] | None = None,
    on_undecodable: Callable[[Undecodable], object] | None = None,
    on_idle: Callable[[], object] | None = None,
) -> EventStream:
    """Decoded change events of `tables` (their `<prefix><table>.changes` topics).

    `kafka`: the bridge's settings (`load_settings().kafka`: prefix, security options,
    Schema Registry) or just a bootstrap string. `group_id`: a consumer group of your own
    (never the bridge's `ddb-bridge.apply.*`), or None to read without one. `config`:
    librdkafka options on top (e.g. `session.timeout.ms`). `on_undecodable`: called with a
    record that is not a change event (its offset then counts as handled); without it such
    a record raises `Undecodable` (naming topic, partition and offset) and is not committed.
    `on_idle`: called after each poll that returned nothing. Raises `PermanentError` if a
    topic does not exist.
    """
    settings = KafkaSettings(bootstrap_servers=kafka) if isinstance(kafka, str) else kafka
    names = [tables] if isinstance(tables, str) else list(tables)
    return EventStream(
        settings,
        names,
        group_id,
        from_beginning=from_beginning,
        commit=commit,
        codec=codec,
        config=config,
        on_undecodable=on_undecodable,
        on_idle=on_idle,
    )
