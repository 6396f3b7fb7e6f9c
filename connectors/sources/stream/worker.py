"""The stream producer: lease-coordinated DynamoDB Streams (or Kinesis Data Streams) → Kafka.

`StreamWorker` is what `ddb-bridge stream` runs. For every configured table it checks that
the stream carries new images, records the capture start (for the back-fill's safety check),
creates the Kafka topics, discovers shards into the lease table, and then, on one coordinator
thread, renews its leases, takes free or expired ones and balances shards with other workers.
Each held shard is a `ShardConsumer` that drives a `KafkaRecordProcessor` through the KCL
lifecycle, one GetRecords page per step, on a pool of `max_concurrent_requests` reader
threads shared by every shard of every table; an idle shard's pause between calls grows from
`poll_interval_ms` to `idle_poll_max_ms`. An ended shard's children are found with one
filtered DescribeStream (`ShardFilter` CHILD_SHARDS); every stream is also listed in full, one
at a time, over `shard_sync_interval_s`. A child shard is only taken once all its parents are
checkpointed `SHARD_END`, and starts from their last version. The service calls go through a
`Transport` (`[stream] transport`): DynamoDB Streams, or the Kinesis data stream the table
streams to (kinesis_transport.py); everything above is the same for both.

Delivery guarantee: at-least-once, in shard order. A checkpoint covers only records Kafka
acknowledged; after any crash the records past it are re-published with the same versions.
A checkpoint behind the trim horizon stops the shard with a recorded data-loss alarm.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.kafka.publisher import Publisher, ensure_topics
from bridge.kafka.schema_registry import make_codec
from bridge.model.errors import (
    BridgeError,
    ConfigError,
    DataLossError,
    PermanentError,
    TransientError,
)
from bridge.ports.source import PartReader
from bridge.runtime.metrics import (
    ERRORS,
    LEASES_HELD,
    REGISTRY,
    STREAM_GET_RECORDS,
    STREAM_POLL_DELAY,
)
from bridge.runtime.settings import Settings
from connectors.dynamodb import aws
from connectors.dynamodb.aws import Interrupted
from connectors.dynamodb.capture import (
    ensure_lease_table,
    read_capture,
    record_capture_start,
    record_data_loss,
)
from connectors.dynamodb.leases import ExpiryWatch, LeaseLost
from connectors.sources.stream.kinesis_transport import make_transport
from connectors.sources.stream.leases import (
    Claim,
    Lease,
    LeaseTable,
    lease_key,
    obsolete,
    plan_claims,
    starting_versions,
)
from connectors.sources.stream.pool import IdleBackoff, ReaderPool
from connectors.sources.stream.processor import (
    Checkpointer,
    InitializationInput,
    KafkaRecordProcessor,
    ShardRecordProcessor,
)
from connectors.sources.stream.shards import (
    LATEST,
    TRIM_HORIZON,
    Batch,
    DynamoDBStreamsTransport,
    ShardReader,
    resolve_latest,
    stream_arn_of,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_kinesis import KinesisClient

log = logging.getLogger(__name__)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class TableStream:
    table: str
    stream_arn: str


class ShardConsumer:
    """Reads one leased shard and drives its record processor through the KCL lifecycle.

    A task of the worker's `ReaderPool`: each `step` reads one page (one GetRecords call),
    publishes it and returns how long to wait before the next, so a shard holds no thread of
    its own. Steps of one shard never overlap, so its records are published in order.
    """

    def __init__(
        self,
        worker: StreamWorker,
        stream: TableStream,
        lease: Lease,
        processor: ShardRecordProcessor,
    ) -> None:
        self.name = f"shard-{lease.shard_id}"
        self.worker = worker
        self.stream = stream
        self.lease = lease
        self.processor = processor
        self.stop_requested = threading.Event()
        self.outcome = "running"  # stopped | ended | lost | data_loss | failed
        self.error: BaseException | None = None
        conf = worker.settings.stream
        self.idle = IdleBackoff(conf.poll_interval_ms / 1000, conf.idle_poll_max_ms / 1000)
        # GetRecords pages read by this consumer; the last few as (records, delay chosen
        # after it), newest last: what the idle backoff did, for tests and diagnostics.
        self.get_records_calls = 0
        self.pages: deque[tuple[int, float]] = deque(maxlen=64)
        self._page_limit = 0
        self._done = threading.Event()
        self._checkpointer: Checkpointer | None = None
        self._reader: PartReader[Batch] | None = None
        self._where = {"table": stream.table, "shard": lease.shard_id}

    # -- the thread-like surface the coordinator uses -----------------------------------------

    def start(self) -> None:
        self.worker.pool.submit(self)

    def is_alive(self) -> bool:
        return not self._done.is_set()

    def join(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def request_stop(self) -> None:
        self.stop_requested.set()
        self.worker.pool.wake(self)

    # -- one step ----------------------------------------------------------------------------

    def step(self) -> float | None:
        outcome: str
        try:
            result = self._step()
            if isinstance(result, float):
                return result
            outcome = result
        except LeaseLost:
            self.processor.lease_lost()
            outcome = "lost"
        except DataLossError as exc:
            self.error = exc
            outcome = "data_loss"
            try:
                self.worker.data_loss(self.stream, self.lease, exc)
            except Exception:
                # The alarm could not be stored. The shard stays stopped here and its lease
                # lapses, so the next holder meets the trimmed position and records it again.
                log.error("could not record the data-loss alarm", extra=self._where, exc_info=True)
        except Exception as exc:  # reported by the coordinator, which stops the worker
            REGISTRY.inc(ERRORS, daemon="stream", error=type(exc).__name__)
            self.error = exc
            outcome = "failed"
            log.error("shard consumer failed: %s", exc, extra=self._where, exc_info=True)
        REGISTRY.remove(STREAM_POLL_DELAY, **self._where)
        # The outcome before `done`: the coordinator reads it once `is_alive()` is false.
        self.outcome = outcome
        self._done.set()
        return None

    def _step(self) -> float | str:
        if self._checkpointer is None:
            if self.stop_requested.is_set():
                return "stopped"
            # Fencing: a stolen lease's previous owner may still be processing until then.
            wait = self.lease.start_after - time.monotonic()
            if wait > 0:
                return wait
            self._open()
        checkpointer, reader = self._checkpointer, self._reader
        assert checkpointer is not None and reader is not None
        if self.stop_requested.is_set():
            self.processor.shutdown_requested(checkpointer)
            return "stopped"
        if not self.lease.held():
            raise LeaseLost(self.lease.key)
        try:
            batch = reader.read()
        except Interrupted:
            return 0.0  # a stop cut a throttling backoff short: the next step stops
        self.get_records_calls += 1
        REGISTRY.inc(STREAM_GET_RECORDS, table=self.stream.table)
        if not self.lease.held():
            # A long throttling backoff may have outlived the lease: publish nothing more.
            raise LeaseLost(self.lease.key)
        self.processor.process_records(batch.records, checkpointer)
        if batch.end:
            # Children's leases before the parent's SHARD_END: a crash in between leaves
            # them findable, and they are not taken before the parent is finished.
            self.worker.adopt_children(self.stream, self.lease.shard_id, self.stop_requested)
            self.processor.shard_ended(checkpointer)
            return "ended"
        count = len(batch.records)
        delay = self.idle.after(count, full=count >= self._page_limit)
        self.pages.append((count, delay))
        REGISTRY.set(STREAM_POLL_DELAY, delay, **self._where)
        return delay

    def _open(self) -> None:
        self._checkpointer = Checkpointer(self.worker.leases, self.lease)
        last_version, item_versions = self._starting_versions()
        self.processor.initialize(
            InitializationInput(
                table=self.stream.table,
                stream_arn=self.stream.stream_arn,
                shard_id=self.lease.shard_id,
                checkpoint=self.lease.checkpoint,
                last_version=last_version,
                item_versions=item_versions,
            )
        )
        start = self.lease.checkpoint
        if start == LATEST:
            # Written by an earlier version, which kept LATEST until the first checkpoint: a
            # previous owner may have published from a LATEST of its own. Only reading the
            # whole shard is sure to miss nothing (duplicates are harmless).
            log.warning(
                "lease still at LATEST: reading the shard from TRIM_HORIZON", extra=self._where
            )
            start = TRIM_HORIZON
        reader = ShardReader(
            self.worker.transport,
            self.stream.stream_arn,
            self.lease.shard_id,
            start,
            self.stop_requested,
        )
        self._page_limit = reader.limit
        self._reader = reader

    def _starting_versions(self) -> tuple[int, bytes | None]:
        """The lease's last version and item memory; for a fresh child shard, its parents'."""
        if self.lease.last_version is not None:
            return starting_versions(self.lease, ())
        parents = [
            self.worker.leases.get(self.stream.stream_arn, parent)
            for parent in self.lease.parent_ids
        ]
        return starting_versions(self.lease, parents)


ProcessorFactory = Callable[[], ShardRecordProcessor]


class StreamWorker:
    """One stream-producer process: any number of these share the shards of the same tables."""

    def __init__(
        self,
        settings: Settings,
        tables: list[str] | None = None,
        worker_id: str | None = None,
        *,
        ddb: DynamoDBClient | None = None,
        streams: DynamoDBStreamsClient | None = None,
        kinesis: KinesisClient | None = None,
        publisher: Publisher | None = None,
        processor_factory: ProcessorFactory | None = None,
        stop: threading.Event | None = None,
        discover_interval_s: float | None = None,
        create_topics: bool = True,
    ) -> None:
        self.settings = settings
        self.table_names = tables if tables is not None else [t.name for t in settings.tables]
        if not self.table_names:
            raise ConfigError("no tables to stream: add a [[tables]] entry or pass --table")
        self.worker_id = worker_id or settings.stream.worker_id or default_worker_id()
        self.ddb = ddb if ddb is not None else aws.client("dynamodb", settings.aws)
        # DynamoDB Streams or Kinesis Data Streams: the only part of the reader that differs.
        self.transport = make_transport(settings, self.ddb, streams, kinesis)
        self._own_publisher = publisher is None
        # The same framing as the back-fill's, so one topic holds one framing.
        self.publisher = publisher or Publisher(
            settings.kafka, make_codec(settings.kafka, self.table_names), **self._memory_cap()
        )
        self.processor_factory: ProcessorFactory = processor_factory or self._processor
        self.stop = stop or threading.Event()
        # Every stream is listed in full once per this period, one at a time (see
        # `_streams_to_list`).
        self.sync_interval_s = (
            discover_interval_s
            if discover_interval_s is not None
            else settings.stream.shard_sync_interval_s
        )
        self.create_topics = create_topics
        duration_s = settings.stream.lease_duration_ms / 1000
        self.leases = LeaseTable(self.ddb, settings.stream.lease_table, self.worker_id, duration_s)
        self.expiry = ExpiryWatch(duration_s)
        # Renew well inside the lease duration (the KCL renews at a third of it).
        self.tick_s = min(1.0, duration_s / 3)
        self.streams_by_arn: dict[str, TableStream] = {}
        self.consumers: dict[str, ShardConsumer] = {}
        self.failure: BaseException | None = None
        self._listed_all = False
        self._sync_order: deque[str] = deque()
        self._next_sync_at = 0.0
        # Streams to list in full at the next round: an ended shard's children were not found.
        self._relist: set[str] = set()
        self._relist_lock = threading.Lock()
        # How the children of ended shards were found: by a filtered call or a full listing.
        self.child_lookups: Counter[str] = Counter()
        self._pool: ReaderPool | None = None
        self._lease_io: ThreadPoolExecutor | None = None
        # When the lease table is next read for leases to take; at once when `_take_now`.
        self._take_now = True
        self._next_take_at = 0.0
        self._leases_seen: list[Lease] | None = None
        self.started = threading.Event()

    def _memory_cap(self) -> dict[str, Any]:
        """The producer's queue bounds the records read but not yet acknowledged (memory):
        a full queue makes `produce` wait, so reading pauses. An explicit
        [kafka.extra] queue.buffering.max.kbytes is the operator's and wins."""
        if "queue.buffering.max.kbytes" in self.settings.kafka.extra:
            return {}
        return {"queue.buffering.max.kbytes": self.settings.stream.max_in_flight_mb * 1024}

    @property
    def streams(self) -> DynamoDBStreamsClient:
        """The DynamoDB Streams client (transport "dynamodb" only)."""
        if not isinstance(self.transport, DynamoDBStreamsTransport):
            raise AttributeError(f"the {self.transport.kind} transport has no streams client")
        return self.transport.streams

    def _processor(self) -> ShardRecordProcessor:
        if self.transport.kind == "kinesis":
            # Versions from Kinesis' own rules (duplicates, ms precision): KinesisVersioner.
            return KafkaRecordProcessor(self.publisher, transport="kinesis")
        return KafkaRecordProcessor(self.publisher)

    @property
    def pool(self) -> ReaderPool:
        """The reader threads every shard of every table shares (started on first use)."""
        if self._pool is None:
            self._pool = ReaderPool(self.settings.stream.max_concurrent_requests)
        return self._pool

    # -- start -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Validate tables and streams, create the lease table and topics, record capture."""
        conf = self.settings.stream
        for table in self.table_names:
            arn = self.transport.stream_arn(table)
            if arn in self.streams_by_arn:
                # Leases are keyed by stream and shard: two tables cannot share them.
                raise ConfigError(
                    f"tables {self.streams_by_arn[arn].table!r} and {table!r} both read "
                    f"{arn}: give each table its own Kinesis data stream ([[tables]] "
                    "kinesis_stream)"
                )
            self.streams_by_arn[arn] = TableStream(table, arn)
        ensure_lease_table(self.ddb, conf.lease_table)
        for stream in self.streams_by_arn.values():
            if conf.initial_position == LATEST and (
                read_capture(self.ddb, conf.lease_table, stream.stream_arn) is None
            ):
                # Leases first, capture record after: the capture's start time, which the
                # back-fill's safety check trusts, is then no earlier than every position.
                self._resolve_latest(stream)
            capture = record_capture_start(
                self.ddb, conf.lease_table, stream.table, stream.stream_arn, conf.initial_position
            )
            if capture.data_loss:
                log.warning(
                    "this stream has a recorded data-loss alarm; re-run a back-fill",
                    extra={"table": stream.table, "alarms": len(capture.data_loss)},
                )
        stopped = [lease for lease in self.leases.list(set(self.streams_by_arn)) if lease.data_loss]
        if stopped and not conf.continue_on_data_loss:
            first = stopped[0]
            raise DataLossError(
                f"table {first.table} shard {first.shard_id} is stopped by a data-loss alarm "
                f"({first.data_loss}); re-run a back-fill of the table, then delete the "
                f"dataLoss attribute of lease {first.key!r} in {conf.lease_table}, or set "
                "stream.continue_on_data_loss = true to stream the other shards"
            )
        if self.create_topics:
            ensure_topics(self.settings.kafka, [s.table for s in self.streams_by_arn.values()])

    def _resolve_latest(self, stream: TableStream) -> None:
        """Create the root shards' leases at concrete positions (see `resolve_latest`)."""
        known = {lease.shard_id for lease in self.leases.list({stream.stream_arn})}
        shards = self.transport.list_shards(stream.stream_arn, self.stop)
        in_stream = {shard.shard_id for shard in shards}
        for shard in shards:
            if shard.shard_id in known or any(p in in_stream for p in shard.parent_ids):
                continue  # already resolved (an earlier start), or a child: read whole
            position = resolve_latest(self.transport, stream.stream_arn, shard, self.stop)
            if self.leases.create(stream.table, stream.stream_arn, shard, position):
                log.info(
                    "initial position LATEST resolved",
                    extra={"table": stream.table, "shard": shard.shard_id, "position": position},
                )

    # -- main loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Run until `stop` is set (exit 0) or a shard fails (raises)."""
        try:
            self.prepare()
        except Interrupted:
            # Stopped before anything was taken or published (e.g. while resolving LATEST).
            log.info("stream worker stopped while starting", extra={"worker": self.worker_id})
            return 0
        log.info(
            "stream worker starting",
            extra={"worker": self.worker_id, "tables": ",".join(self.table_names)},
        )
        try:
            while not self.stop.is_set() and self.failure is None:
                self.tick()
                if not self.started.is_set():
                    self.started.set()
                    log.info(
                        "stream started",
                        extra={"worker": self.worker_id, "leases": len(self.consumers)},
                    )
                self.stop.wait(self.tick_s)
        finally:
            self.shutdown()
        if self.failure is not None:
            if isinstance(self.failure, BridgeError):
                raise self.failure
            raise PermanentError(f"stream worker failed: {self.failure}") from self.failure
        return 0

    def tick(self) -> None:
        """One coordinator round: renew, reap finished consumers, discover, take, report."""
        self._renew()
        self._reap()
        try:
            due = self._streams_to_list()
            if due:
                self._discover(due)
                if not self._listed_all:
                    self._listed_all = True
                    self._sync_order.extend(self.streams_by_arn)
                    self._next_sync_at = time.monotonic() + self._sync_step_s()
            now = time.monotonic()
            if self._take_now or now >= self._next_take_at:
                # Reading the whole lease table every round is most of what hundreds of
                # shards cost it: once a lease duration (expiry needs no more: the KCL's
                # taker runs every two), and at once when something changed here.
                self._take_now = False
                self._next_take_at = now + self.leases.lease_duration_s
                self._take()
        except (TransientError, Interrupted) as exc:
            REGISTRY.inc(ERRORS, daemon="stream", error=type(exc).__name__)
            # The lease table or the stream is throttled or unreachable: held leases keep
            # being renewed each round; discovery and taking resume on a later one.
            log.warning(
                "lease coordination round skipped: %s", exc, extra={"worker": self.worker_id}
            )
        self._report_leases()
        # /healthz reads this clock: a round ran (held leases renewed, consumers reaped).
        REGISTRY.progress("stream")

    def _renew(self) -> None:
        # A lease is renewed once a third of its validity is gone (the KCL's pace), not every
        # round: with hundreds of shards, renewals are most of the lease table's writes.
        renew_below = self.leases.lease_duration_s * 2 / 3
        now = time.monotonic()
        due = [
            c
            for c in self.consumers.values()
            if c.outcome == "running" and c.lease.valid_until - now <= renew_below
        ]
        # Concurrently: one after another, hundreds of renewals outlast the leases themselves.
        for _ in self.lease_io.map(self._renew_one, due):
            pass

    def _renew_one(self, consumer: ShardConsumer) -> None:
        try:
            self.leases.renew(consumer.lease)
        except LeaseLost:
            # The consumer sees `held()` turn false and stops before its next page.
            log.warning(
                "lease lost on renewal",
                extra={"table": consumer.stream.table, "shard": consumer.lease.shard_id},
            )
        except BridgeError as exc:
            # Not fatal: the lease lapses on its own if renewals keep failing.
            log.warning(
                "lease renewal failed: %s",
                exc,
                extra={"table": consumer.stream.table, "shard": consumer.lease.shard_id},
            )

    @property
    def lease_io(self) -> ThreadPoolExecutor:
        """Threads for lease-table writes (renewals, takes), apart from the readers: a renewal
        must never queue behind reads that wait on throttling or on Kafka."""
        if self._lease_io is None:
            self._lease_io = ThreadPoolExecutor(
                self.settings.stream.max_concurrent_requests, thread_name_prefix="stream-leases"
            )
        return self._lease_io

    def _reap(self) -> None:
        for key, consumer in list(self.consumers.items()):
            if consumer.is_alive():
                continue
            del self.consumers[key]
            # Its children, or its lease (lost, stopped), may be takeable now.
            self._take_now = True
            if consumer.outcome == "ended":
                # Its children's leases were created when it ended (`adopt_children`): the
                # next `_take` sees them, with no listing of the stream.
                self._release(consumer.lease)
            elif consumer.outcome == "failed" or (
                consumer.outcome == "data_loss" and not self.settings.stream.continue_on_data_loss
            ):
                self.failure = self.failure or consumer.error

    def _sync_step_s(self) -> float:
        return self.sync_interval_s / max(1, len(self.streams_by_arn))

    def _streams_to_list(self) -> list[str]:
        """The streams to list in full this round: all of them at the first round; then the
        next in turn whenever its share of `sync_interval_s` has passed (so 200 streams make
        one DescribeStream every 1.5 s by default, not 200 at once, which DescribeStream's
        rate limit would throttle while lease renewals wait); and any whose ended shard's
        children were not found."""
        if not self._listed_all:
            return list(self.streams_by_arn)
        with self._relist_lock:
            due = sorted(self._relist)
            self._relist.clear()
        now = time.monotonic()
        # A bounded catch-up after a slow round; the schedule then restarts from now.
        for _ in range(4):
            if now < self._next_sync_at or not self._sync_order:
                break
            arn = self._sync_order.popleft()
            self._sync_order.append(arn)
            if arn not in due:
                due.append(arn)
            self._next_sync_at += self._sync_step_s()
        self._next_sync_at = max(self._next_sync_at, now - self._sync_step_s())
        return due

    def adopt_children(self, stream: TableStream, shard_id: str, stop: threading.Event) -> None:
        """Create the leases of an ended shard's children, found by one filtered call.

        Never fatal: should the call fail or find no child yet, the stream is listed in full
        at the next round instead (their leases are then created there)."""
        try:
            children = self.transport.child_shards(stream.stream_arn, shard_id, stop)
            self.child_lookups["filtered" if children.filtered else "full"] += 1
            for child in children.shards:
                self.leases.create(stream.table, stream.stream_arn, child, TRIM_HORIZON)
            self._take_now = True
            if children.shards:
                return
            log.info("no child shard yet: listing the stream", extra={"shard": shard_id})
        except (BridgeError, Interrupted) as exc:
            log.warning(
                "could not look up child shards: %s; listing the stream",
                exc,
                extra={"table": stream.table, "shard": shard_id},
            )
        with self._relist_lock:
            self._relist.add(stream.stream_arn)

    def _discover(self, arns: list[str]) -> None:
        # The lease list of the last `_take` will do to skip known shards (a lease created
        # meanwhile makes `create` a no-op); a scan per listed stream would cost more than
        # the listing itself.
        leases = self._leases_seen
        if leases is None:
            leases = self.leases.list(set(self.streams_by_arn))
        known = {lease.key for lease in leases}
        for arn in arns:
            stream = self.streams_by_arn[arn]
            shards = self.transport.list_shards(stream.stream_arn, self.stop)
            in_stream = {shard.shard_id for shard in shards}
            for shard in shards:
                if lease_key(stream.stream_arn, shard.shard_id) in known:
                    continue
                # Read whole: children always; root shards too, which with TRIM_HORIZON is the
                # setting, and with LATEST concerns only roots the capture did not start with
                # (those it started with got concrete positions in `prepare`).
                if self.leases.create(stream.table, stream.stream_arn, shard, TRIM_HORIZON):
                    self._take_now = True
            # Trimmed, finished shards: without clean-up the lease table (scanned every
            # round) would grow with every shard rollover, about six per partition a day.
            if obsolete(leases, stream.stream_arn, in_stream):
                # Decided on a fresh read only: a child created since the last one must
                # keep its parent's lease (its first version comes from there).
                fresh = self.leases.list({stream.stream_arn})
                for lease in obsolete(fresh, stream.stream_arn, in_stream):
                    self.leases.delete_finished(lease)

    def _take(self) -> None:
        leases = self.leases.list(set(self.streams_by_arn))
        self._leases_seen = leases
        self.expiry.observe(leases)
        held = {key for key, c in self.consumers.items() if c.outcome == "running"}
        claims = plan_claims(leases, held, self.worker_id, self.expiry)
        # Concurrently, as renewals are (a first start takes every lease at once); each
        # taken lease gets its consumer even if another take failed, then that error counts.
        failure: BridgeError | None = None
        for claim, outcome in zip(claims, self.lease_io.map(self._take_one, claims), strict=True):
            if isinstance(outcome, BridgeError):
                failure = failure or outcome
            elif outcome:
                self._start_consumer(claim)
        if failure is not None:
            raise failure

    def _take_one(self, claim: Claim) -> bool | BridgeError:
        try:
            self.leases.take(claim.lease, wait_for_fence=claim.steal)
        except LeaseLost:
            return False  # another worker was faster
        except BridgeError as exc:
            return exc
        return True

    def _start_consumer(self, claim: Claim) -> None:
        lease = claim.lease
        stream = self.streams_by_arn[lease.stream_arn]
        log.info(
            "took lease",
            extra={
                "table": stream.table,
                "shard": lease.shard_id,
                "checkpoint": lease.checkpoint,
                "stolen": claim.steal,
            },
        )
        consumer = ShardConsumer(self, stream, lease, self.processor_factory())
        self.consumers[lease.key] = consumer
        consumer.start()

    def _report_leases(self) -> None:
        per_table = {stream.table: 0 for stream in self.streams_by_arn.values()}
        for consumer in self.consumers.values():
            if consumer.outcome == "running" and consumer.lease.held():
                per_table[consumer.stream.table] += 1
        for table, count in per_table.items():
            REGISTRY.set(LEASES_HELD, count, table=table)

    def _release(self, lease: Lease) -> None:
        try:
            self.leases.release(lease)
        except LeaseLost:
            pass  # already someone else's: nothing to give up
        except BridgeError as exc:
            # It expires by itself after lease_duration_ms; another worker then takes it.
            log.warning("could not release lease: %s", exc, extra={"shard": lease.shard_id})

    # -- data loss and stop ------------------------------------------------------------------

    def data_loss(self, stream: TableStream, lease: Lease, exc: DataLossError) -> None:
        """Record the alarm where `status` and the back-fill read it, and stop the shard."""
        conf = self.settings.stream
        message = str(exc)
        log.error(
            "DATA LOSS: the stream was trimmed past the checkpoint; re-run a back-fill of "
            "this table (ddb-bridge backfill --table %s) to repair the target",
            stream.table,
            extra={"table": stream.table, "shard": lease.shard_id, "stream": stream.stream_arn},
        )
        record_data_loss(self.ddb, conf.lease_table, stream.stream_arn, lease.shard_id, message)
        try:
            self.leases.mark_data_loss(lease, message)
        except LeaseLost:
            log.warning("lease lost while marking data loss", extra={"shard": lease.shard_id})

    def shutdown(self) -> None:
        """Stop polling, flush, checkpoint, release leases (the SIGTERM path)."""
        for consumer in self.consumers.values():
            consumer.request_stop()
        for consumer in self.consumers.values():
            consumer.join()
            if consumer.outcome == "stopped" and consumer.lease.held():
                self._release(consumer.lease)
            elif consumer.outcome == "failed" and self.failure is None:
                self.failure = consumer.error
        self.consumers.clear()
        if self._pool is not None:
            self._pool.close()
        if self._lease_io is not None:
            self._lease_io.shutdown(wait=True)
        self._report_leases()
        if self._own_publisher:
            self.publisher.close()
        log.info("stream worker stopped", extra={"worker": self.worker_id})


__all__ = ["ShardConsumer", "StreamWorker", "TableStream", "stream_arn_of"]
