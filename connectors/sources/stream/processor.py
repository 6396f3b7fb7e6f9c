"""The record processor: the KCL lifecycle, publishing a shard's records to Kafka.

`ShardRecordProcessor` is the KCL's contract (initialize, process records, lease lost, shard
ended, shutdown requested); `KafkaRecordProcessor` implements it for ddb-bridge: every record
becomes a `ChangeEvent` with its stream version and is published; the checkpoint written to
the lease is only ever a position `AckTracker` reports as fully acknowledged, together with
the versioner's state at that position (the shard's last version and, on Kinesis, its
per-item memory), so a restart reproduces the same versions.

Delivery guarantee: at-least-once. Records after the last checkpoint are published again
after a crash or a lease change, with identical keys and versions.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

from bridge.codec import compiled
from bridge.kafka.publisher import Publisher
from bridge.model.acks import AckTracker
from bridge.model.errors import PermanentError, TransientError
from bridge.model.event import ChangeEvent
from bridge.model.item_memory import ItemMemory
from bridge.model.versioning import KinesisVersioner, StreamVersioner, to_micros
from bridge.runtime.metrics import (
    REGISTRY,
    STREAM_BEHIND_SECONDS,
    STREAM_OTHER_TABLE,
    STREAM_PUBLISH_SECONDS,
    STREAM_RECORDS,
)
from connectors.dynamodb.aws import AWS_BACKOFF
from connectors.sources.stream.get_records import WireRecords
from connectors.sources.stream.kinesis_records import SLOTS
from connectors.sources.stream.leases import Lease, LeaseTable
from connectors.sources.stream.shards import SHARD_END
from connectors.sources.stream.text_pages import NotScanned, TextRecords

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.type_defs import RecordTypeDef

log = logging.getLogger(__name__)

RECORDS_PUBLISHED = STREAM_RECORDS

# (sequence number, the shard's last version once the record at it is versioned, and the
# Kinesis versioner's per-item memory then, packed; b"" for DynamoDB Streams): what a restart
# from that sequence number needs to version the records after it the same way.
Position = tuple[str, int, bytes]
# Where the shard's records come from: DynamoDB Streams, or Kinesis Data Streams for DynamoDB
# (records converted by kinesis_records.py; versioned by KinesisVersioner, see there why).
Transport = Literal["dynamodb", "kinesis"]


@dataclass(frozen=True, slots=True)
class InitializationInput:
    table: str
    stream_arn: str
    shard_id: str
    checkpoint: str  # sequence number or TRIM_HORIZON
    last_version: int  # version of the record at the checkpoint (or the parents' last)
    # KinesisVersioner's per-item memory stored with that checkpoint (or the parents'
    # merged); b"" when there is none, None for a checkpoint written before memories existed.
    item_versions: bytes | None = b""


class CheckpointWriter(Protocol):
    """Where the processor writes checkpoints: the bridge's lease (`Checkpointer`), or the
    KCL's checkpointer when the Java KCL drives the processor."""

    @property
    def last(self) -> str: ...

    def checkpoint(
        self, position: str, last_version: int | None, item_versions: bytes = b""
    ) -> None: ...


class Checkpointer:
    """Writes a lease's checkpoint; a lost lease makes it raise `LeaseLost`."""

    def __init__(self, leases: LeaseTable, lease: Lease) -> None:
        self._leases = leases
        self._lease = lease

    @property
    def last(self) -> str:
        return self._lease.checkpoint

    def checkpoint(
        self, position: str, last_version: int | None, item_versions: bytes = b""
    ) -> None:
        """Write it, retrying transient failures for as long as the lease is held.

        Bounded by the lease: if the lease table stays unreachable, renewals fail too, the
        lease lapses, and `LeaseLost` ends the shard's processing instead of a crash.
        """
        failures = 0
        while True:
            try:
                self._leases.checkpoint(self._lease, position, last_version, item_versions)
                return
            except TransientError as exc:
                failures += 1
                delay = AWS_BACKOFF.delay(failures)
                log.warning(
                    "checkpoint failed, retrying: %s",
                    exc,
                    extra={"shard": self._lease.shard_id, "delay_s": round(delay, 3)},
                )
                time.sleep(delay)


class ShardRecordProcessor(Protocol):
    def initialize(self, init: InitializationInput) -> None: ...

    def process_records(
        self, records: Sequence[RecordTypeDef], checkpointer: CheckpointWriter
    ) -> None: ...

    def lease_lost(self) -> None: ...

    def shard_ended(self, checkpointer: CheckpointWriter) -> None: ...

    def shutdown_requested(self, checkpointer: CheckpointWriter) -> None: ...


def no_creation_time(table: str, shard_id: str, record: Any) -> PermanentError:
    """The error for a record without the time its version is made of."""
    ddb = record.get("dynamodb") if isinstance(record, dict) else None
    seq = ddb.get("SequenceNumber") if isinstance(ddb, dict) else None
    return PermanentError(
        f"table {table} shard {shard_id} sequence {seq}: stream record "
        "has no dynamodb.ApproximateCreationDateTime"
    )


def stream_events(
    records: Sequence[Any], table: str, shard_id: str, versioner: StreamVersioner, wire: bool
) -> list[ChangeEvent]:
    """The events of one page of a DynamoDB stream's shard, versioned along it.

    A body the compiled core read as text (text_pages.TextRecords): its events in one call.
    Wire records (get_records.read_page): the compiled core versions, checks, keys and
    encodes a record in one call; what it leaves (or every record, without the core) takes
    `ChangeEvent.from_stream_record`, which decides and names any problem."""
    if isinstance(records, TextRecords):  # a body the core read as text: one call
        try:
            return records.events(table, shard_id, versioner)
        except NotScanned:
            records = records.parsed()
    convert = ChangeEvent.from_stream_record
    events = []
    core = compiled.CORE.stream_record if compiled.CORE is not None and wire else None
    for record in records:
        if core is not None:
            event = core(record, table, shard_id, versioner.last)
            if event is not None:
                versioner.last = event.version
                events.append(event)
                continue
        try:
            created = record["dynamodb"]["ApproximateCreationDateTime"]
        except (KeyError, TypeError):
            created = None
        if created is None:
            raise no_creation_time(table, shard_id, record)
        version = versioner.next(created)
        events.append(convert(table, record, version, shard_id, wire=wire))
    return events


class KafkaRecordProcessor:
    """Publishes one shard to `<prefix><table>.changes`, checkpointing acknowledged prefixes."""

    def __init__(
        self,
        publisher: Publisher,
        checkpoint_interval_s: float = 1.0,
        flush_timeout_s: float = 60,
        transport: Transport = "dynamodb",
    ) -> None:
        self.publisher = publisher
        self.checkpoint_interval_s = checkpoint_interval_s
        self.flush_timeout_s = flush_timeout_s
        self.transport: Transport = transport
        self.tracker: AckTracker[Position] = AckTracker()
        self.versioner: StreamVersioner | KinesisVersioner = StreamVersioner()
        self.other_table = 0  # Kinesis records of another table skipped on this shard
        self.table = ""
        self.shard_id = ""
        self._checkpointed: Position | None = None
        self._last_checkpoint_at = 0.0

    def initialize(self, init: InitializationInput) -> None:
        self.table = init.table
        self.shard_id = init.shard_id
        compiled.notice()
        if self.transport == "kinesis":
            where = f"table {init.table} shard {init.shard_id} checkpoint {init.checkpoint}"
            try:
                memory = (
                    None
                    if init.item_versions is None
                    else ItemMemory.unpack(init.item_versions, where)
                )
            except ValueError as exc:
                raise PermanentError(f"{exc}: the stored item versions are damaged") from exc
            self.versioner = KinesisVersioner(init.last_version, memory=memory)
        else:
            self.versioner = StreamVersioner(init.last_version)
        log.info(
            "shard processing starts",
            extra={
                "table": init.table,
                "shard": init.shard_id,
                "checkpoint": init.checkpoint,
                "last_version": init.last_version,
            },
        )

    def process_records(
        self, records: Sequence[RecordTypeDef], checkpointer: CheckpointWriter
    ) -> None:
        started = time.perf_counter()
        # Records read from GetRecords' body (get_records.py) are in wire form already.
        wire = isinstance(records, WireRecords)
        if self.transport == "kinesis":
            events = self._kinesis_events(records, wire)
        else:
            events = self._stream_events(records, wire)
        if events:
            # The whole page as one tracked group: its last position is safe once every
            # record of it, and everything before, is acknowledged (bridge/model/acks.py).
            last = events[-1]
            with self._naming_shard():
                self.publisher.publish_batch(
                    events, self.tracker, self._position(last.sequence_number)
                )
            REGISTRY.inc(RECORDS_PUBLISHED, len(events), table=self.table)
        if records:
            created = records[-1]["dynamodb"]["ApproximateCreationDateTime"]
            behind = max(0.0, time.time() - to_micros(created) / 1_000_000)
            REGISTRY.set(STREAM_BEHIND_SECONDS, behind, table=self.table, shard=self.shard_id)
        else:
            # An empty page means the iterator is at the tip of the shard.
            REGISTRY.set(STREAM_BEHIND_SECONDS, 0, table=self.table, shard=self.shard_id)
        with self._naming_shard():
            self.publisher.poll(0)
        if records:
            REGISTRY.observe(
                STREAM_PUBLISH_SECONDS, time.perf_counter() - started, table=self.table
            )
        if time.monotonic() - self._last_checkpoint_at >= self.checkpoint_interval_s:
            self.checkpoint_safe(checkpointer)

    def _stream_events(self, records: Sequence[Any], wire: bool) -> list[ChangeEvent]:
        versioner = self.versioner
        assert isinstance(versioner, StreamVersioner)
        return stream_events(records, self.table, self.shard_id, versioner, wire)

    def _kinesis_events(self, records: Sequence[Any], wire: bool) -> list[ChangeEvent]:
        """Records of Kinesis Data Streams for DynamoDB (see kinesis_records.py)."""
        convert = ChangeEvent.from_stream_record
        versioner = self.versioner
        assert isinstance(versioner, KinesisVersioner)
        table, shard_id = self.table, self.shard_id
        events = []
        for record in records:
            # Several tables may stream to one Kinesis stream: another table's records are
            # not this table's changes. Counted and logged, never published here.
            owner = record.get("tableName")
            if owner is not None and owner != table:
                if not self.other_table:
                    log.warning(
                        "records of another table on this table's Kinesis stream: skipped",
                        extra={**self._where(), "other_table": owner},
                    )
                self.other_table += 1
                REGISTRY.inc(STREAM_OTHER_TABLE, table=table)
                continue
            ddb = record.get("dynamodb")
            created = ddb.get("ApproximateCreationDateTime") if type(ddb) is dict else None
            if created is None:
                raise self._no_creation_time(record)
            slots = SLOTS[ddb.get("ApproximateCreationDateTimePrecision", "MICROSECOND")]
            event_id = record.get("eventID")
            keys = ddb.get("Keys")
            # The item, as DynamoDB names it in every record of it (numbers normalized).
            item = orjson.dumps(keys, option=orjson.OPT_SORT_KEYS) if type(keys) is dict else b""
            version = versioner.next(
                to_micros(created), slots, event_id if type(event_id) is str else None, item
            )
            events.append(convert(table, record, version, shard_id, wire=wire))
        return events

    def _no_creation_time(self, record: Any) -> PermanentError:
        return no_creation_time(self.table, self.shard_id, record)

    def checkpoint_safe(self, checkpointer: CheckpointWriter) -> None:
        """Checkpoint the furthest fully acknowledged position, if it moved."""
        self._last_checkpoint_at = time.monotonic()
        safe = self.tracker.safe_position()
        if safe is None or safe == self._checkpointed:
            return
        checkpointer.checkpoint(*safe)
        self._checkpointed = safe

    def lease_lost(self) -> None:
        # Nothing may be checkpointed any more; records in flight are duplicates for the next
        # owner, with the same versions.
        REGISTRY.remove(STREAM_BEHIND_SECONDS, table=self.table, shard=self.shard_id)
        log.warning("lease lost, shard processing stops", extra=self._where())

    def shard_ended(self, checkpointer: CheckpointWriter) -> None:
        # SHARD_END passes every record of the shard: all must be acknowledged first. Wait as
        # long as the producer may still deliver them: giving up sooner (a broker outage of a
        # minute) fails the shard, and its next reader re-publishes from the last checkpoint
        # records that were only late, and that the producer still delivers: duplicates.
        wait_s = max(self.flush_timeout_s, self.publisher.delivery_timeout_s + 5)
        with self._naming_shard():
            self.publisher.flush(wait_s)
        checkpointer.checkpoint(*self._position(SHARD_END))
        REGISTRY.remove(STREAM_BEHIND_SECONDS, table=self.table, shard=self.shard_id)
        log.info("shard ended", extra={**self._where(), "last_version": self.versioner.last})

    def shutdown_requested(self, checkpointer: CheckpointWriter) -> None:
        with self._naming_shard():
            self.publisher.flush(self.flush_timeout_s)
        self.checkpoint_safe(checkpointer)
        REGISTRY.remove(STREAM_BEHIND_SECONDS, table=self.table, shard=self.shard_id)
        log.info(
            "shard checkpointed for shutdown", extra={**self._where(), "at": checkpointer.last}
        )

    def _position(self, sequence: str | None) -> Position:
        versioner = self.versioner
        memory = versioner.memory_state() if isinstance(versioner, KinesisVersioner) else b""
        return (sequence or "", versioner.last, memory)

    def _where(self) -> dict[str, str]:
        return {"table": self.table, "shard": self.shard_id}

    @contextlib.contextmanager
    def _naming_shard(self) -> Iterator[None]:
        """A refused or unacknowledged record stops the shard: say which shard, so the
        operator knows whose checkpoint it holds back (the publisher knows only the topic)."""
        try:
            yield
        except (PermanentError, TransientError) as exc:
            raise type(exc)(f"table {self.table} shard {self.shard_id}: {exc}") from exc
