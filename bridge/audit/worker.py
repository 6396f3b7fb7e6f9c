"""The audit worker: consume the change topics, archive every event, commit after durable.

See `bridge/audit/__init__.py` for why a crash neither loses nor duplicates an event.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from bridge.audit.destination import ArchiveDestination
from bridge.audit.records import ArchiveFormat, Bucket, archive_record, archive_schema
from bridge.audit.segment import Segment, staging_prefix
from bridge.codec.avro import EventCodec
from bridge.kafka.limits import librdkafka_fetch_config, message_max_bytes
from bridge.kafka.publisher import admin_config, table_of_topic
from bridge.model.errors import DecodeError, PermanentError
from bridge.runtime.metrics import REGISTRY
from bridge.runtime.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_GROUP = "ddb-bridge.audit"
JOINED = "audit worker joined its group and is consuming"


@dataclass(frozen=True)
class AuditOptions:
    group: str = DEFAULT_GROUP
    fmt: ArchiveFormat = "avro"
    codec: str = "deflate"
    max_events: int = 100_000
    max_bytes: int = 128 * 1024 * 1024
    max_seconds: float = 300.0


@dataclass(frozen=True)
class Intent:
    """A segment about to be published: its offsets and files (`_audit/<topic>/<p>.json`)."""

    topic: str
    partition: int
    first: int
    last: int
    files: tuple[str, ...]

    @staticmethod
    def key(topic: str, partition: int) -> str:
        return f"_audit/{topic}/{partition}.json"

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "topic": self.topic,
                "partition": self.partition,
                "first": self.first,
                "last": self.last,
                "files": list(self.files),
            },
            indent=1,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Intent:
        try:
            raw = json.loads(data)
            return cls(
                raw["topic"], int(raw["partition"]), int(raw["first"]), int(raw["last"]),
                tuple(raw["files"]),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(f"{where}: not an audit intent record: {exc}") from exc


def subscription(settings: Settings, tables: Sequence[str]) -> list[str]:
    """The change topics of `tables`, or a pattern matching every table's change topic."""
    kafka = settings.kafka
    if tables:
        return [kafka.changes_topic(t) for t in tables]
    suffix = kafka.changes_topic("")[len(kafka.topic_prefix) :]
    return [f"^{re.escape(kafka.topic_prefix)}.+{re.escape(suffix)}$"]


class AuditWorker:
    """One member of the audit consumer group. `run()` returns 0 after SIGTERM/SIGINT."""

    def __init__(
        self,
        settings: Settings,
        tables: Sequence[str],
        destination: ArchiveDestination,
        codec: EventCodec,
        options: AuditOptions,
        install_signal_handlers: bool = False,
    ) -> None:
        self.settings = settings
        self.topics = subscription(settings, tables)
        self.destination = destination
        self.codec = codec
        self.options = options
        self.install_signal_handlers = install_signal_handlers
        self.schema = archive_schema()
        self.segments: dict[tuple[str, int], Segment] = {}
        # Offsets a segment must end at: the last offset of a segment published before a crash
        # and not yet committed, so that it is written again under the same names.
        self.must_end: dict[tuple[str, int], int] = {}
        self.assigned: set[tuple[str, int]] = set()
        # Partitions whose published segment's commit failed: offset to commit, paused meanwhile.
        self.held: dict[tuple[str, int], int] = {}
        self.archived = 0
        self.files_published = 0
        self._stop = threading.Event()
        self._joined = False
        kafka = settings.kafka
        config: dict[str, Any] = admin_config(kafka)
        config.update(
            {
                "group.id": options.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # librdkafka's default, kept explicit: aborted transactions are not archived.
                "isolation.level": "read_committed",
                "session.timeout.ms": settings.apply.session_timeout_ms,
                "heartbeat.interval.ms": settings.apply.heartbeat_interval_ms,
                # New topics matching the pattern are picked up this often.
                "topic.metadata.refresh.interval.ms": 10_000,
                **librdkafka_fetch_config(message_max_bytes(kafka)),
            }
        )
        self.consumer = Consumer(config)

    # -- life cycle --------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal received; publishing open files", extra={"signal": signum})
        self._stop.set()

    def run(self) -> int:
        if self.install_signal_handlers:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.consumer.subscribe(
            self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )  # fmt: skip
        log.info(
            "starting audit",
            extra={
                "group": self.options.group,
                "topics": ",".join(self.topics),
                "destination": self.destination.describe(),
                "format": self.options.fmt,
            },
        )
        try:
            while not self._stop.is_set():
                for msg in self.consumer.consume(1000, timeout=0.5):
                    self._handle(msg)
                self._rotate_due()
                self._retry_held_commits()
                REGISTRY.progress("audit")
            self._publish_all()
            self._retry_held_commits()
        finally:
            self.consumer.close()
            for segment in self.segments.values():
                segment.discard()
        log.info(
            "audit worker stopped",
            extra={"archived": self.archived, "files": self.files_published},
        )
        return 0

    # -- rebalancing -------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        for tp in committed:
            slot = (tp.topic, tp.partition)
            self.assigned.add(slot)
            self._clear_staging(tp.topic, tp.partition)
            position = tp.offset
            if position < 0:  # never committed: the group starts at the earliest offset
                position, _ = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=30
                )
            self._recover(tp.topic, tp.partition, position)
        if not self._joined:
            self._joined = True
            log.info(JOINED, extra={"partitions": len(partitions), "group": self.options.group})

    def _recover(self, topic: str, partition: int, position: int) -> None:
        """Force the segment published before a crash, uncommitted, to be written again whole."""
        key = Intent.key(topic, partition)
        data = self.destination.get_bytes(key)
        if data is None:
            return
        intent = Intent.from_bytes(data, f"{self.destination.describe()}/{key}")
        if intent.last < position:
            return  # committed: nothing in flight
        if intent.first == position:
            self.must_end[(topic, partition)] = intent.last
            log.info(
                "re-archiving a segment published but not committed before a crash",
                extra={"topic": topic, "partition": partition, "first": intent.first,
                       "last": intent.last},
            )  # fmt: skip
            return
        # The group's offset was moved (replay) into or before a published segment.
        log.warning(
            "the audit group's committed offset was moved back: events from it on are "
            "archived again (a replayed audit group duplicates them in the archive)",
            extra={"topic": topic, "partition": partition, "committed": position,
                   "published_last": intent.last},
        )  # fmt: skip

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Unpublished files are dropped, not committed: the next owner reads those offsets
        # again from the committed position.
        for tp in partitions:
            slot = (tp.topic, tp.partition)
            self.assigned.discard(slot)
            self.must_end.pop(slot, None)
            self.held.pop(slot, None)  # the next owner's recovery finds the intent
            segment = self.segments.pop(slot, None)
            if segment is not None:
                segment.discard()

    def _clear_staging(self, topic: str, partition: int) -> None:
        """Staging files a crashed worker left for this partition (never published)."""
        for path in self.destination.staging_dir.glob(f"{staging_prefix(topic, partition)}*"):
            path.unlink(missing_ok=True)

    # -- consuming ---------------------------------------------------------------------

    def _handle(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return
            if err.fatal():
                raise PermanentError(f"Kafka consumer failed: {err.str()}")
            log.warning("consumer error", extra={"error": err.str()})
            return
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        assert topic is not None and partition is not None and offset is not None
        slot = (topic, partition)
        if slot not in self.assigned or slot in self.held:
            # Fetched before a revoke (the new owner reads it) or while the partition is held
            # (read again from the held offset once its commit goes through).
            return
        value = msg.value()
        try:
            if value is None:
                raise DecodeError("record has no value")
            event = self.codec.decode(value)
        except DecodeError as exc:
            # Everything before it is archived and committed; the bad record is not skipped.
            self._publish_all()
            raise PermanentError(
                f"cannot archive {topic} partition {partition} offset {offset}: {exc}; "
                "stopped before it (fix or remove the record, then restart)"
            ) from exc
        end = self.must_end.get(slot)
        segment = self.segments.get(slot)
        if segment is not None and end is not None and segment.first < end and offset > end:
            self._publish(segment)  # defensive: never let a forced segment run past its end
            segment = None
        if segment is None:
            segment = self.segments[slot] = Segment(
                topic, partition, offset, self.options.fmt,
                self.destination.staging_dir, self.schema, self.options.codec,
            )  # fmt: skip
        timestamp_type, timestamp = msg.timestamp()
        record = archive_record(
            event, topic, partition, offset, timestamp if timestamp_type else None
        )
        table = table_of_topic(self.settings.kafka, topic)
        segment.add(Bucket.of(table, record["change_time_ms"]), record, len(value))
        if (end is not None and offset >= end) or (end is None and self._full(segment)):
            self._publish(segment)

    def _commit_or_hold(self, topic: str, partition: int, offset: int) -> None:
        """Commit `offset`; if the broker refuses for now (a rebalance under way, a coordinator
        moving), hold the partition until it accepts: paused, so that no next segment replaces
        the intent of this published, uncommitted one."""
        try:
            self.consumer.commit(
                offsets=[TopicPartition(topic, partition, offset)], asynchronous=False
            )
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal():
                raise PermanentError(f"commit of {topic}/{partition}: {err.str()}") from exc
            log.warning(
                "commit failed after the files were published; holding the partition until "
                "it succeeds (or the next owner rewrites the files under the same names)",
                extra={"topic": topic, "partition": partition, "offset": offset,
                       "error": err.str()},
            )  # fmt: skip
            self.consumer.pause([TopicPartition(topic, partition)])
            self.held[(topic, partition)] = offset

    def _retry_held_commits(self) -> None:
        for (topic, partition), offset in list(self.held.items()):
            try:
                self.consumer.commit(
                    offsets=[TopicPartition(topic, partition, offset)], asynchronous=False
                )
            except KafkaException as exc:
                if exc.args[0].fatal():
                    raise PermanentError(
                        f"commit of {topic}/{partition}: {exc.args[0].str()}"
                    ) from exc
                continue
            del self.held[(topic, partition)]
            # Records fetched while held were not archived: read them again from `offset`.
            self.consumer.seek(TopicPartition(topic, partition, offset))
            self.consumer.resume([TopicPartition(topic, partition)])
            log.info(
                "held commit went through; partition resumed",
                extra={"topic": topic, "partition": partition, "offset": offset},
            )

    def _full(self, segment: Segment) -> bool:
        return segment.events >= self.options.max_events or segment.bytes >= self.options.max_bytes

    def _rotate_due(self) -> None:
        now = time.monotonic()
        for slot, segment in list(self.segments.items()):
            if slot in self.must_end:
                continue  # a segment being redone ends at its recorded offset, not by age
            if now - segment.opened_at >= self.options.max_seconds:
                self._publish(segment)

    def _publish_all(self) -> None:
        for slot, segment in list(self.segments.items()):
            if slot in self.must_end and segment.last < self.must_end[slot]:
                # Cut short (stopping): published under other names it would duplicate what
                # the crashed run published; drop it and redo the whole segment next time.
                segment.discard()
                del self.segments[slot]
                continue
            self._publish(segment)

    def _publish(self, segment: Segment) -> None:
        """Files durable, intent durable, files renamed into place, then the offset committed."""
        slot = (segment.topic, segment.partition)
        files = segment.finish()
        intent = Intent(segment.topic, segment.partition, segment.first, segment.last,
                        tuple(sorted(files)))  # fmt: skip
        self.destination.put_bytes(Intent.key(*slot), intent.to_bytes())
        for key, path in sorted(files.items()):
            self.destination.publish(path, key)
        self._commit_or_hold(segment.topic, segment.partition, segment.last + 1)
        del self.segments[slot]
        self.must_end.pop(slot, None)
        self.archived += segment.events
        self.files_published += len(files)
        log.info(
            "archived",
            extra={"topic": segment.topic, "partition": segment.partition,
                   "first": segment.first, "last": segment.last, "events": segment.events,
                   "files": len(files)},
        )  # fmt: skip
