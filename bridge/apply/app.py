"""The apply worker: moves change topics into one target, batch by batch.

Delivery guarantee: at-least-once into an idempotent, last-write-wins target. An offset is
committed only after the sink confirmed the write of every record below it (or the dead
letter of a record the target refuses is durable): each batch is processed
(bridge/apply/processor.py) and only then committed (bridge/apply/offsets.py decides which
offsets; Faust's ack bookkeeping never does).

Faust is used for what it does well and kept behind `FaustGroup` (bridge/apply/faust_group.py,
which says why and which of its internals it needs): group membership, heartbeats,
rebalancing, seeking to committed offsets, fetching and sending commits. Records of an older
group generation are dropped, as Faust's streams drop them. The sink is blocking; batches run
in one worker thread so heartbeats keep going.

The run, step by step (`ApplyWorker._main`): open the sink, dead letters, group and commit
path (`_open`); join the group and pump batches until stopped (`_consume`, `_pump`,
`_apply_batch`); close everything in reverse (`_close`).

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
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from bridge.apply.offsets import Partition, Passed, WrittenOffsets
from bridge.apply.processor import (
    RETRIES,
    Abandoned,
    BatchProcessor,
    BatchResult,
    Screened,
    sink_backoff,
)
from bridge.dlq.writer import DeadLetterWriter, KafkaDeadLetters, RawRecord
from bridge.kafka.lag import CommittedBase, CommittedReader
from bridge.kafka.schema_registry import make_codec
from bridge.kafka.skipped_offsets import SkippedRange
from bridge.model.backoff import Backoff, Stop
from bridge.model.errors import TargetError, TransientError, Unavailable
from bridge.ports.sink import Sink, TableSpec
from bridge.runtime.metrics import APPLY_SKIPPED, ERRORS, REGISTRY
from bridge.runtime.settings import Settings
from bridge.runtime.waits import waiting

if TYPE_CHECKING:
    from bridge.apply.faust_group import FaustGroup

log = logging.getLogger("ddb-bridge.apply")

GIL_SWITCH_S = 0.0005  # how long a running thread keeps the GIL from a waiting one (`run`)

_A = TypeVar("_A")
_R = TypeVar("_R")


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
class _Ahead:
    """A batch taken from the group: its records, drain spans, generation, and its
    screening (running or done in the screening thread; None: no records)."""

    records: list[RawRecord]
    passed: list[Passed]
    generation: int
    screened: asyncio.Future[Screened] | None


@dataclass
class _Run:
    """What one run of the worker opened; `ApplyWorker._close` releases it in reverse."""

    topics: list[str]
    data_dir: str
    remove_data_dir: bool
    executor: ThreadPoolExecutor  # the one sink thread
    screener: ThreadPoolExecutor  # the one thread screening the batch taken ahead
    dead_letters: DeadLetterWriter
    close_dead_letters: bool
    processor: BatchProcessor
    group: FaustGroup
    committed_reader: CommittedReader
    offsets: WrittenOffsets


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

    stopper: Stop = field(default_factory=Stop, init=False)
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
        # The sink thread spends a batch's write waiting on its target, a few round trips
        # each; at every answer it needs the GIL back while the fetch and screening threads
        # run Python, which keep it up to the switch interval (5 ms by default: up to ~10 µs
        # a row at 2,000 rows a batch). Measured into PostgreSQL: 22.4-22.9k -> 26.4k rows/s.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        try:
            return asyncio.run(self._main())
        finally:
            sys.setswitchinterval(interval)

    async def _main(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        if self.install_signal_handlers:
            # Before opening the sink and the group (seconds against a slow target): a stop
            # requested meanwhile ends the worker once they are open, before it joins.
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._on_signal, sig)
        run = await self._open()
        try:
            if not self.stopper.is_set():
                await self._consume(run)
        finally:
            await self._close(run)
        log.info(
            "apply worker stopped",
            extra={"records_applied": self.records_applied, "exit_code": self.exit_code},
        )
        return self.exit_code

    async def _open(self) -> _Run:
        """The sink (opened, schema created if asked), dead letters, the batch processor,
        the group (not yet joined) and the commit path."""
        conf = self.settings.apply
        topics = sorted({self.settings.kafka.changes_topic(s.source) for s in self.specs})
        if not topics:
            raise ValueError("apply needs at least one table")
        data_dir = conf.data_dir or tempfile.mkdtemp(prefix="ddb-bridge-apply-")
        executor = ThreadPoolExecutor(1, thread_name_prefix="apply-sink")
        screener = ThreadPoolExecutor(1, thread_name_prefix="apply-screen")
        dead_letters = self.dead_letters or KafkaDeadLetters(self.settings.kafka, self.target)
        try:
            await asyncio.get_running_loop().run_in_executor(
                executor, self.sink.open, self.specs, self.create_schema
            )
        except TransientError as exc:
            # The target is down at start-up (nothing read yet, so a restart loses nothing):
            # exit 75, "run it again", as a supervisor would; not a failure to investigate.
            executor.shutdown(wait=False)
            screener.shutdown(wait=False)
            raise Unavailable(
                f"the target {self.target} did not answer at start-up ({exc}); run it again "
                "once it is reachable"
            ) from exc
        backoff = sink_backoff(conf.retry_backoff_ms, conf.retry_backoff_max_ms, conf.max_retries)
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
        # Deferred: importing faust costs ~0.5 s, not needed by other commands.
        from bridge.apply.faust_group import FaustGroup

        group = FaustGroup(
            self.settings.kafka, conf, group_id(self.target), topics, data_dir=data_dir
        )
        committed_reader = CommittedReader(self.settings.kafka, group_id(self.target))

        async def read_committed(
            partitions: list[Partition],
        ) -> Mapping[Partition, CommittedBase]:
            return await self._read_broker(
                "reading committed offsets", backoff, committed_reader.read, partitions
            )

        async def log_start(tp: Partition) -> int:
            return await self._read_broker(
                "reading a log start offset", backoff, committed_reader.log_start, tp
            )

        table_of_topic = table_resolver(self.settings, self.specs)

        def report(topic: str, skipped: SkippedRange) -> None:
            self._report_skipped(table_of_topic(topic), topic, skipped)

        offsets = WrittenOffsets(read_committed, group.commit, log_start, report)
        group.on_revoke(offsets.forget)
        group.on_joined(lambda: self._announce(group, topics))
        return _Run(
            topics=topics,
            data_dir=data_dir,
            remove_data_dir=conf.data_dir is None,
            executor=executor,
            screener=screener,
            dead_letters=dead_letters,
            close_dead_letters=self.dead_letters is None,
            processor=processor,
            group=group,
            committed_reader=committed_reader,
            offsets=offsets,
        )

    async def _consume(self, run: _Run) -> None:
        """Join the group, pump batches until a stop or a failure, then let the pump go."""
        assert self._done is not None
        await run.group.start()
        pump_task = asyncio.create_task(self._pump(run), name="apply-pump")
        pump_task.add_done_callback(self._on_pump_done)
        log.info(
            "apply worker started",
            extra={"group": group_id(self.target), "topics": ",".join(run.topics)},
        )
        while not self._done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), 1.0)
            failure = run.group.failure()
            if failure is not None:
                log.error("Faust app crashed; stopping", extra={"error": failure})
                self._finish(1)
        pump_task.cancel()  # it is idle: waiting for records (a batch in flight finished)
        with contextlib.suppress(asyncio.CancelledError):
            await pump_task

    async def _pump(self, run: _Run) -> None:
        """Take a batch, apply it, repeat, until a stop is requested. One batch is written
        (and committed) at a time, in order; while it is, the next one is taken and screened
        in the screening thread, so the target's time and apply's own CPU overlap. A batch
        taken ahead is dropped uncommitted when a stop comes first (read again later) or a
        rebalance made its generation an old one (whoever owns its partitions reads them)."""
        ahead: _Ahead | None = None
        while not self.stopper.is_set():
            if ahead is None:
                ahead = await self._take(run)
                continue
            current, ahead = ahead, None
            if current.generation != run.group.generation():
                continue
            self._in_flight = True  # now: a stop from now on waits for this batch's commit
            applying = asyncio.ensure_future(self._apply_batch(run, current))
            while ahead is None and not applying.done() and not self.stopper.is_set():
                ahead = await self._take(run)
            if not await applying:
                return
        self._finish(0)

    async def _take(self, run: _Run) -> _Ahead | None:
        """The next batch with its screening started, or None (nothing came in a turn)."""
        conf = self.settings.apply
        # Every turn, records or not (an idle turn lasts one batch window): /healthz reads
        # this clock to tell a live worker from a stuck one.
        REGISTRY.progress("apply")
        records, passed, generation = await run.group.next_batch(
            conf.batch_size, conf.batch_window_ms / 1000
        )
        if not (records or passed) or self.stopper.is_set():
            return None
        screened = None
        if records:
            screened = asyncio.get_running_loop().run_in_executor(
                run.screener, run.processor.screened, records
            )
        return _Ahead(records, passed, generation, screened)

    async def _apply_batch(self, run: _Run, batch: _Ahead) -> bool:
        """Write the batch (or dead-letter its refused records), then commit it with the
        drains that ended with it. False when the worker stops (the exit code is set), with
        nothing of the batch committed."""
        loop = asyncio.get_running_loop()
        records, passed = batch.records, batch.passed
        self._in_flight = True
        try:
            result = BatchResult()
            if batch.screened is not None:
                screened = await batch.screened
                result = await loop.run_in_executor(run.executor, run.processor.finish, screened)
            # A commit waits for the group coordinator through a broker outage: a legitimate
            # wait for /livez (bridge/runtime/waits.py), not a wedged loop.
            with waiting("Kafka (committing offsets)"):
                await run.offsets.commit_written(records, passed)
        except Abandoned as exc:
            log.warning("batch abandoned on stop", extra={"reason": str(exc)})
            self._finish(0)
            return False
        except TargetError as exc:
            log.error(
                "the target refuses writes; apply stops without committing the batch "
                "(nothing was dead-lettered for it; fix the target and start apply "
                "again: it resumes after the last written event)",
                extra={"target": self.target, "table": exc.table or "?", "error": str(exc)},
            )
            self._finish(1)
            return False
        except Exception as exc:
            log.exception(
                "apply failed; stopping without committing the batch",
                extra={"target": self.target, "error": str(exc)},
            )
            self._finish(1)
            return False
        finally:
            self._in_flight = False
        self.records_applied += len(records)
        if self.on_batch is not None and records:
            self.on_batch(result)
        return True

    def _report_skipped(self, table: str, topic: str, skipped: SkippedRange) -> None:
        """The alarm for events deleted before apply read them: they can never reach the
        target, which needs a new back-fill (`status` says so until one finishes)."""
        REGISTRY.inc(APPLY_SKIPPED, skipped.events, table=table, target=self.target)
        log.error(
            "events deleted from the change topic before apply read them were skipped; "
            "the target misses them: back-fill this target again (ddb-bridge backfill)",
            extra={
                "target": self.target,
                "table": table,
                "topic": topic,
                "partition": skipped.partition,
                "first_offset": skipped.first_offset,
                "last_offset": skipped.last_offset,
                "offsets": skipped.events,
            },
        )

    async def _read_broker(
        self, what: str, backoff: Backoff, read: Callable[[_A], _R], arg: _A
    ) -> _R:
        """A read the commit path needs (committed offsets, a log start), retried with
        backoff: the batch is written, a broker blip here must not stop the worker (it would
        re-read and rewrite the batch)."""
        attempt = 0
        while True:
            try:
                return await asyncio.get_running_loop().run_in_executor(None, read, arg)
            except TransientError as exc:
                attempt += 1
                if backoff.exhausted(attempt):
                    raise
                delay = backoff.delay(attempt)
                REGISTRY.inc(RETRIES, target=self.target)
                REGISTRY.inc(ERRORS, daemon="apply", error=type(exc).__name__)
                log.warning(
                    f"{what} failed; retrying",
                    extra={
                        "target": self.target,
                        "attempt": attempt,
                        "delay_s": round(delay, 3),
                        "error": str(exc),
                    },
                )
                # Woken at once by a stop: the batch then stays uncommitted (re-read later,
                # harmlessly: writes are idempotent).
                if await self.stopper.wait_async(delay):
                    raise Abandoned(f"stop requested while {what}") from exc

    def _announce(self, group: FaustGroup, topics: Sequence[str]) -> None:
        log.info(
            "apply worker joined its group and is consuming",
            extra={
                "group": group_id(self.target),
                "target": self.target,
                "topics": ",".join(topics),
                "partitions": len(group.assigned()),
            },
        )
        self.joined.set()

    async def _close(self, run: _Run) -> None:
        """Leave the group, let a write still running end, then close the sink and the
        rest. (The sink closes after the write: a stop during a slow write waits for it.)"""
        log.info("apply worker stopping", extra={"group": group_id(self.target)})
        await run.group.stop()
        await asyncio.get_running_loop().run_in_executor(None, run.executor.shutdown, True)
        run.screener.shutdown(wait=False, cancel_futures=True)  # a batch taken ahead: dropped
        self.sink.close()
        run.committed_reader.close()
        if run.close_dead_letters:
            assert isinstance(run.dead_letters, KafkaDeadLetters)
            run.dead_letters.close()
        if run.remove_data_dir:
            shutil.rmtree(run.data_dir, ignore_errors=True)

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
