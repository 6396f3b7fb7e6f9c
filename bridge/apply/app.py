"""The apply worker: a Faust app that moves change topics into one target, batch by batch.

Delivery guarantee: at-least-once into an idempotent, last-write-wins target. An offset is
committed only after the sink confirmed the write of every record below it (or the dead
letter of a record the target refuses is durable):

- Faust's ack bookkeeping does not decide commits. `Stream.take()` acks its batch in a
  `finally` around the `yield`, so a batch is acked whenever the generator is closed — when
  the agent raises, and when `Stream.on_stop` closes it at shutdown, just before
  `Consumer.on_stop` commits: a crash or SIGTERM mid-write would commit the unwritten batch.
  `noack_take` avoids that, but after it returns the stream re-enables auto-acks (a test
  here caught a commit passing an unwritten record that way), Faust acks records it skips
  during rebalances, and its commit takes the first run of acked offsets with an off-by-one
  gap check (see bridge/apply/offsets.py; faust-streaming#315, robinhood/faust#604 and #682
  report the resulting skips). So the topics are subscribed with `acks=False` and each
  commit is computed by `OffsetLedger` from the broker's committed offset and the offsets
  actually written, then sent through the group member.
- No agent and no `Stream`: Faust's consumer (group membership, heartbeats, rebalancing,
  seeking to committed offsets) delivers records straight into a bounded `Feed` that this
  loop drains in batches of `batch_size` or `batch_window_ms`; records of an older consumer
  generation are dropped, as Faust's streams drop them. Faust's per-event delivery and
  Stream machinery were the throughput limit (see bridge/apply/fast_consumer.py).
- The sink is blocking; batches run in one worker thread so heartbeats keep going.

SIGTERM (and SIGINT) finish the batch in flight, commit it, then exit 0. A stop during a
target outage abandons the batch uncommitted (it is read again later) and also exits 0.
A target that refuses every write and that waiting cannot cure (a `TargetError`: access
denied, a table gone, a read-only file) stops the worker with exit code 1, naming target,
table and cause, with nothing committed past the last written event and nothing
dead-lettered for it. A broker blip while reading the group's committed offsets (needed
before the first commit of a partition) is retried with backoff like any transient error.
Any number of workers may run: they share the partitions through the consumer group
`ddb-bridge.apply.<target>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bridge.apply.dlq import DeadLetterWriter, KafkaDeadLetters, RawRecord
from bridge.apply.kafka_auth import faust_credentials
from bridge.apply.offsets import OffsetLedger
from bridge.apply.processor import (
    RETRIES,
    Abandoned,
    BatchProcessor,
    BatchResult,
    describe_metrics,
)
from bridge.apply.retry import Backoff, Stopper
from bridge.errors import TargetError, TransientError
from bridge.kafka_limits import consumer_fetch_bytes
from bridge.lag import CommittedReader
from bridge.metrics import REGISTRY
from bridge.schema_registry import make_codec
from bridge.settings import Settings
from bridge.sink import Sink, TableSpec

log = logging.getLogger("ddb-bridge.apply")


def group_id(target: str) -> str:
    return f"ddb-bridge.apply.{target}"


def table_resolver(settings: Settings, specs: Sequence[TableSpec]) -> Callable[[str], str]:
    """Changes topic -> source table, for dead letters of records that cannot be decoded."""
    known = {settings.kafka.changes_topic(s.source): s.source for s in specs}
    prefix, suffix = settings.kafka.topic_prefix, ".changes"

    def table_of_topic(topic: str) -> str:
        if topic in known:
            return known[topic]
        if topic.startswith(prefix) and topic.endswith(suffix):
            return topic[len(prefix) : -len(suffix)]
        return topic

    return table_of_topic


@dataclass
class ApplyWorker:
    """One apply process. `run()` blocks until stopped; returns the exit code."""

    settings: Settings
    target: str
    specs: Sequence[TableSpec]
    sink: Sink
    create_schema: bool = False
    dead_letters: DeadLetterWriter | None = None
    install_signal_handlers: bool = False
    # Called in the event loop after each acknowledged batch (tests, benchmarks).
    on_batch: Callable[[BatchResult], None] | None = None

    stopper: Stopper = field(default_factory=Stopper, init=False)
    joined: threading.Event = field(default_factory=threading.Event, init=False)
    exit_code: int = field(default=0, init=False)
    records_applied: int = field(default=0, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _done: asyncio.Event | None = field(default=None, init=False)
    _in_flight: bool = field(default=False, init=False)

    # -- control, from any thread -------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the batch in flight, commit, stop (thread-safe, idempotent)."""
        self.stopper.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        if not self._in_flight:
            self._finish(0)

    def _finish(self, code: int) -> None:
        self.exit_code = max(self.exit_code, code)
        if self._done is not None:
            self._done.set()

    # -- running --------------------------------------------------------------------------

    def run(self) -> int:
        # Each batch holds thousands of decoded items (tens of containers each) alive at once;
        # with the default thresholds the cyclic GC re-scans them several times per batch.
        # Measured on the apply path: ~30 -> ~19 µs per record. The long-lived objects made
        # during start-up are frozen out of collection altogether.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        return asyncio.run(self._main())

    async def _main(self) -> int:
        import faust  # deferred: importing faust costs ~0.5 s, not needed by other commands

        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        describe_metrics()
        conf = self.settings.apply
        topics = sorted({self.settings.kafka.changes_topic(s.source) for s in self.specs})
        if not topics:
            raise ValueError("apply needs at least one table")
        data_dir = conf.data_dir or tempfile.mkdtemp(prefix="ddb-bridge-apply-")
        executor = ThreadPoolExecutor(1, thread_name_prefix="apply-sink")
        own_dlq = self.dead_letters is None
        dead_letters = self.dead_letters or KafkaDeadLetters(self.settings.kafka, self.target)

        await self._loop.run_in_executor(executor, self.sink.open, self.specs, self.create_schema)
        backoff = Backoff(conf.retry_backoff_ms, conf.retry_backoff_max_ms, conf.max_retries)
        processor = BatchProcessor(
            self.sink,
            self.target,
            dead_letters,
            table_resolver(self.settings, self.specs),
            backoff=backoff,
            stopper=self.stopper,
            codec=make_codec(self.settings.kafka),
            specs=self.specs,
        )
        app = faust.App(
            group_id(self.target),
            broker=[
                f"kafka://{h.strip()}" for h in self.settings.kafka.bootstrap_servers.split(",")
            ],
            key_serializer="raw",
            value_serializer="raw",
            web_enabled=False,
            broker_credentials=faust_credentials(self.settings.kafka.extra),
            datadir=data_dir,
            autodiscover=False,
            # The leader-election topic is for Faust tables; apply has none.
            topic_disable_leader=True,
            topic_allow_declare=False,
            consumer_auto_offset_reset="earliest",
            # Per-partition fetch size (aiokafka's max_partition_fetch_bytes): the largest
            # change event must fit whole (bridge/kafka_limits.py).
            consumer_max_fetch_size=consumer_fetch_bytes(self.settings.kafka),
            broker_session_timeout=conf.session_timeout_ms / 1000,
            broker_heartbeat_interval=conf.heartbeat_interval_ms / 1000,
            broker_commit_interval=conf.commit_interval_ms / 1000,
            # Nothing is acked (acks=False); waiting for "all acked" on stop would hang.
            stream_wait_empty=False,
            # Room for a few batches: Faust pauses a partition's fetching when its buffer
            # is 80% full, and a buffer of barely one batch made every batch wait for a fetch.
            stream_buffer_maxsize=max(4096, conf.batch_size * 4),
        )
        from bridge.apply.fast_consumer import Feed, FeedConsumer

        feed = Feed(maxsize=max(4096, conf.batch_size * 4))
        # Before the consumer is created at start. (An instance attribute shadowing the
        # transport's class attribute is what `create_consumer` reads.)
        # The module name puts its (mode) log lines under Faust's quieted "faust" logger.
        app.transport.Consumer = type(  # type: ignore[misc]
            "ApplyConsumer", (FeedConsumer,), {"feed": feed, "__module__": "faust.apply"}
        )
        # acks=False: Faust never commits these topics by itself; `commit_written` does.
        # Iterating the topic registers it with Faust's conductor, hence the subscription.
        app.topic(*topics, key_serializer="raw", value_serializer="raw", acks=False).__aiter__()
        ledger: OffsetLedger[Any] = OffsetLedger()
        committed_reader = CommittedReader(self.settings.kafka, group_id(self.target))

        async def forget_offsets(*_args: Any, **_kwargs: Any) -> None:
            # Partitions may have moved and come back with offsets committed by others; what
            # is buffered belongs to the generation that just ended.
            ledger.forget()
            feed.clear()

        app.on_partitions_revoked.connect(forget_offsets)

        async def read_committed(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
            """The committed offsets, retried with backoff: the batch is written, a broker
            blip here must not stop the worker (it would re-read and rewrite the batch)."""
            attempt = 0
            while True:
                try:
                    return await asyncio.get_running_loop().run_in_executor(
                        None, committed_reader.read, partitions
                    )
                except TransientError as exc:
                    attempt += 1
                    if backoff.exhausted(attempt):
                        raise
                    delay = backoff.delay_s(attempt)
                    REGISTRY.inc(RETRIES, target=self.target)
                    log.warning(
                        "reading committed offsets failed; retrying",
                        extra={
                            "target": self.target,
                            "attempt": attempt,
                            "delay_s": round(delay, 3),
                            "error": str(exc),
                        },
                    )
                    # Woken at once by a stop: the batch then stays uncommitted (re-read
                    # later, harmlessly: writes are idempotent).
                    if await self._loop_sleep(delay):
                        raise Abandoned("stop requested while reading committed offsets") from exc

        async def commit_written(messages: Sequence[Any]) -> None:
            by_tp: dict[Any, list[int]] = {}
            for message in messages:
                by_tp.setdefault(message.tp, []).append(message.offset)
            unknown = [tp for tp in by_tp if not ledger.known(tp)]
            if unknown:
                bases = await read_committed([(tp.topic, tp.partition) for tp in unknown])
                for tp in unknown:
                    ledger.set_base(tp, bases[(tp.topic, tp.partition)])
            commits = {}
            for tp, offsets in by_tp.items():
                offset = ledger.advance(tp, offsets)
                if offset is not None:
                    commits[tp] = offset
            # The group member's own commit (Faust's driver); Faust's public `commit()` would
            # commit from its ack bookkeeping instead. Any: private API, untyped.
            consumer: Any = app.consumer
            if commits and not await consumer._commit(commits):
                # Rebalanced meanwhile: nothing committed; the new owner re-reads, harmlessly.
                ledger.forget(commits)
                log.info(
                    "commit skipped: partitions rebalanced", extra={"partitions": len(commits)}
                )

        async def announce(*_args: Any, **_kwargs: Any) -> None:
            assigned = app.consumer.assignment()
            log.info(
                "apply worker joined its group and is consuming",
                extra={
                    "group": group_id(self.target),
                    "target": self.target,
                    "topics": ",".join(topics),
                    "partitions": len(assigned),
                },
            )
            self.joined.set()

        app.on_rebalance_complete.connect(announce)

        batch_size, window_s = conf.batch_size, conf.batch_window_ms / 1000

        async def pump() -> None:
            loop = asyncio.get_running_loop()
            while not self.stopper.stopping:
                messages = await feed.take(batch_size, window_s)
                # Records fetched before a rebalance are read again from the committed offset
                # by whoever owns the partition now; drop them (Faust's streams do the same).
                generation = app.consumer_generation_id
                messages = [m for m in messages if m.generation_id == generation]
                if not messages or self.stopper.stopping:
                    continue
                records = [_raw(m) for m in messages]
                self._in_flight = True
                try:
                    result = await loop.run_in_executor(executor, processor.process, records)
                    await commit_written(messages)
                except Abandoned as exc:
                    log.warning("batch abandoned on stop", extra={"reason": str(exc)})
                    self._finish(0)
                    return
                except TargetError as exc:
                    log.error(
                        "the target refuses writes; apply stops without committing the batch "
                        "(nothing was dead-lettered for it; fix the target and start apply "
                        "again: it resumes after the last written event)",
                        extra={
                            "target": self.target,
                            "table": exc.table or "?",
                            "error": str(exc),
                        },
                    )
                    self._finish(1)
                    return
                except Exception as exc:
                    log.exception(
                        "apply failed; stopping without committing the batch",
                        extra={"target": self.target, "error": str(exc)},
                    )
                    self._finish(1)
                    return
                finally:
                    self._in_flight = False
                self.records_applied += len(messages)
                if self.on_batch is not None:
                    self.on_batch(result)
            self._finish(0)

        if self.install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await app.start()
            pump_task = asyncio.create_task(pump(), name="apply-pump")
            pump_task.add_done_callback(self._on_pump_done)
            log.info(
                "apply worker started",
                extra={"group": group_id(self.target), "topics": ",".join(topics)},
            )
            while not self._done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._done.wait(), 1.0)
                if app.crashed or app.consumer.crashed:
                    log.error(
                        "Faust app crashed; stopping",
                        extra={"error": repr(app.crash_reason or app.consumer.crash_reason)},
                    )
                    self._finish(1)
            pump_task.cancel()  # it is idle: waiting for records (a batch in flight finished)
            with contextlib.suppress(asyncio.CancelledError):
                await pump_task
        finally:
            log.info("apply worker stopping", extra={"group": group_id(self.target)})
            await app.stop()
            # A write still running (stop during a slow write) must end before the sink closes.
            await self._loop.run_in_executor(None, executor.shutdown, True)
            self.sink.close()
            committed_reader.close()
            if own_dlq:
                assert isinstance(dead_letters, KafkaDeadLetters)
                dead_letters.close()
            if conf.data_dir is None:
                shutil.rmtree(data_dir, ignore_errors=True)
        log.info(
            "apply worker stopped",
            extra={"records_applied": self.records_applied, "exit_code": self.exit_code},
        )
        return self.exit_code

    async def _loop_sleep(self, seconds: float) -> bool:
        """Sleep in the event loop up to `seconds`; True if a stop was requested meanwhile."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self.stopper.stopping:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, 0.1))
        return True

    def _on_pump_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "apply loop failed; stopping",
                exc_info=task.exception(),
                extra={"target": self.target},
            )
            self._finish(1)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info(
            "signal received; finishing the batch in flight",
            extra={"signal": sig.name, "in_flight": self._in_flight},
        )
        self.request_stop()


def _raw(message: Any) -> RawRecord:
    headers = message.headers
    if isinstance(headers, dict):
        headers = list(headers.items())
    return RawRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple(headers or ()),
    )
