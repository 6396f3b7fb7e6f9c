"""The apply worker: a Faust app that moves change topics into one target, batch by batch.

Delivery guarantee: at-least-once into an idempotent, last-write-wins target. Offsets advance
only after the sink confirmed the write (or the dead letter is durable):

- Batches come from `Stream.noack_take`, not `Stream.take`. `take()` acks the buffered events
  in a `finally` around its `yield`, so the batch is acked whenever the generator is closed —
  also when the agent raises, and when `Stream.on_stop` closes it during shutdown, after
  which `Consumer.on_stop` commits. A crash or SIGTERM in the middle of a write would then
  commit the unwritten batch. `noack_take` never acks; this module acks each event itself,
  after `BatchProcessor.process` returned.
- Acks are in offset order per partition and a failed batch stops the worker instead of
  letting the agent restart and ack later records: Faust commits the first run of
  consecutive acked offsets, so acking past an unwritten record could commit over it
  (faust-streaming#315, robinhood/faust#604 and #682 describe those skips).
- The sink is blocking; writes run in one worker thread so heartbeats keep going.

SIGTERM (and SIGINT) finish the batch in flight, ack and commit it, then exit 0. A stop
during a target outage abandons the batch unacknowledged (it is read again later) and also
exits 0. Any number of workers may run: they share the partitions through the consumer group
`ddb-bridge.apply.<target>`.
"""

from __future__ import annotations

import asyncio
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
from bridge.apply.processor import Abandoned, BatchProcessor, BatchResult, describe_metrics
from bridge.apply.retry import Backoff, Stopper
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
    events_acked: int = field(default=0, init=False)
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
        processor = BatchProcessor(
            self.sink,
            self.target,
            dead_letters,
            table_resolver(self.settings, self.specs),
            backoff=Backoff(conf.retry_backoff_ms, conf.retry_backoff_max_ms, conf.max_retries),
            stopper=self.stopper,
        )
        app = faust.App(
            group_id(self.target),
            broker=[
                f"kafka://{h.strip()}" for h in self.settings.kafka.bootstrap_servers.split(",")
            ],
            key_serializer="raw",
            value_serializer="raw",
            web_enabled=False,
            datadir=data_dir,
            autodiscover=False,
            # The leader-election topic is for Faust tables; apply has none.
            topic_disable_leader=True,
            topic_allow_declare=False,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=conf.session_timeout_ms / 1000,
            broker_heartbeat_interval=conf.heartbeat_interval_ms / 1000,
            broker_commit_interval=conf.commit_interval_ms / 1000,
            # We commit explicitly after the last batch; waiting for "all acked" would hang
            # on a batch abandoned during an outage.
            stream_wait_empty=False,
        )
        channel = app.topic(*topics, key_serializer="raw", value_serializer="raw")
        batch_size, window_s = conf.batch_size, conf.batch_window_ms / 1000

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

        async def apply_agent(stream: Any) -> None:
            loop = asyncio.get_running_loop()
            async for events in stream.noack_take(batch_size, within=window_s):
                if self.stopper.stopping:
                    break  # leave the batch unacknowledged: it is read again later
                records = [_raw(e.message) for e in events]
                self._in_flight = True
                try:
                    result = await loop.run_in_executor(executor, processor.process, records)
                except Abandoned as exc:
                    log.warning("batch abandoned on stop", extra={"reason": str(exc)})
                    self._finish(0)
                    break
                except Exception as exc:
                    log.exception(
                        "apply failed; stopping without acknowledging the batch",
                        extra={"target": self.target, "error": str(exc)},
                    )
                    self._finish(1)
                    break
                finally:
                    self._in_flight = False
                for event in events:
                    await stream.ack(event)
                self.events_acked += len(events)
                if self.on_batch is not None:
                    self.on_batch(result)
                if self.stopper.stopping:
                    self._finish(0)
                    break

        app.agent(channel, name="apply", concurrency=1)(apply_agent)

        if self.install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await app.start()
            log.info(
                "apply worker started",
                extra={"group": group_id(self.target), "topics": ",".join(topics)},
            )
            await self._done.wait()
            # Offsets of every acked batch, now, rather than at the next commit interval.
            await app.consumer.commit()
        finally:
            log.info("apply worker stopping", extra={"group": group_id(self.target)})
            await app.stop()
            # A write still running (stop during a slow write) must end before the sink closes.
            await self._loop.run_in_executor(None, executor.shutdown, True)
            self.sink.close()
            if own_dlq:
                assert isinstance(dead_letters, KafkaDeadLetters)
                dead_letters.close()
            if conf.data_dir is None:
                shutil.rmtree(data_dir, ignore_errors=True)
        log.info(
            "apply worker stopped",
            extra={"events_acked": self.events_acked, "exit_code": self.exit_code},
        )
        return self.exit_code

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
