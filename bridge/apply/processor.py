"""One batch, start to finish, synchronously: decode, coalesce, write, retry, dead-letter.

Runs in a worker thread (the sinks are blocking), so the Faust event loop keeps heartbeating
while a write is slow. Contract with the caller: when `process` returns, every record of the
batch is either written to the target or durable in a DLQ topic, and the caller may ack them
all. When it raises, nothing of the batch may be acknowledged:
- `Abandoned`: a stop was requested while the target was failing transiently;
- `TransientError`: retries exhausted (`apply.max_retries`);
- anything else: a bug or an unexpected driver error. The worker stops, and the batch is
  read again by whichever worker next owns the partitions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.apply.batching import coalesce
from bridge.apply.dlq import DeadLetter, DeadLetterWriter, RawRecord
from bridge.apply.retry import Backoff, Stopper
from bridge.avro_codec import EventCodec
from bridge.errors import DecodeError, PermanentError, TransientError
from bridge.event import ChangeEvent
from bridge.metrics import REGISTRY, Metrics
from bridge.sink import Sink

log = logging.getLogger(__name__)

EVENTS = "ddb_bridge_apply_events_total"
WRITES = "ddb_bridge_apply_rows_written_total"
DLQ = "ddb_bridge_apply_dlq_total"
RETRIES = "ddb_bridge_apply_retries_total"
BATCHES = "ddb_bridge_apply_batches_total"
BATCH_SECONDS = "ddb_bridge_apply_batch_seconds_sum"
LAST_BATCH_SECONDS = "ddb_bridge_apply_last_batch_seconds"


def describe_metrics(metrics: Metrics = REGISTRY) -> None:
    metrics.describe(EVENTS, "change events applied (written or superseded in their batch)")
    metrics.describe(WRITES, "rows written to the target after coalescing")
    metrics.describe(DLQ, "records sent to the dead-letter topic")
    metrics.describe(RETRIES, "batch writes retried after a transient error")
    metrics.describe(BATCHES, "batches applied")
    metrics.describe(BATCH_SECONDS, "total seconds spent applying batches")
    metrics.describe(LAST_BATCH_SECONDS, "seconds the last batch took")


class Abandoned(Exception):
    """A stop was requested before the batch could be written; do not ack it."""


@dataclass
class BatchResult:
    received: int = 0
    written: int = 0  # rows after coalescing
    dead: int = 0


class BatchProcessor:
    def __init__(
        self,
        sink: Sink,
        target: str,
        dead_letters: DeadLetterWriter,
        table_of_topic: Callable[[str], str],
        backoff: Backoff | None = None,
        stopper: Stopper | None = None,
        codec: EventCodec | None = None,
        metrics: Metrics = REGISTRY,
    ) -> None:
        self.sink = sink
        self.target = target
        self.dead_letters = dead_letters
        self.table_of_topic = table_of_topic
        self.backoff = backoff or Backoff()
        self.stopper = stopper or Stopper()
        self.codec = codec or EventCodec()
        self.metrics = metrics

    def process(self, records: Sequence[RawRecord]) -> BatchResult:
        started = time.perf_counter()
        result = BatchResult(received=len(records))
        letters: list[DeadLetter] = []
        events: list[ChangeEvent] = []
        origin: dict[int, RawRecord] = {}  # id(event) -> its record, to dead-letter it
        decode = self.codec.decode
        for rec in records:
            if rec.value is None:
                letters.append(self._letter(rec, None, "record has no value", "DecodeError"))
                continue
            try:
                event = decode(rec.value)
            except DecodeError as exc:
                letters.append(self._letter(rec, None, f"undecodable: {exc}", "DecodeError"))
                continue
            events.append(event)
            origin[id(event)] = rec

        winners = coalesce(events)
        rejected_ids: set[int] = set()
        if winners:
            try:
                self._write(winners)
                result.written = len(winners)
            except PermanentError as exc:
                log.warning(
                    "batch rejected; writing its events one at a time to find the poison",
                    extra={"target": self.target, "events": len(winners), "error": str(exc)},
                )
                rejected = self._isolate(winners)
                result.written = len(winners) - len(rejected)
                for event, err in rejected:
                    rejected_ids.add(id(event))
                    letters.append(
                        self._letter(origin[id(event)], event.table, str(err), type(err).__name__)
                    )
                # Older versions of a rejected key were superseded inside the batch; they
                # are not applied instead (that would move the row to a state that is not
                # the newest), and they are acknowledged with the rejected one.
        if letters:
            for letter in letters:
                self.dead_letters.send(letter)
            self.dead_letters.flush()
            for letter in letters:
                self.metrics.inc(DLQ, table=letter.table, target=self.target)
            result.dead = len(letters)

        applied: dict[str, int] = {}
        for event in events:
            if id(event) not in rejected_ids:
                applied[event.table] = applied.get(event.table, 0) + 1
        for table, n in applied.items():
            self.metrics.inc(EVENTS, n, table=table, target=self.target)
        elapsed = time.perf_counter() - started
        self.metrics.inc(WRITES, result.written, target=self.target)
        self.metrics.inc(BATCHES, target=self.target)
        self.metrics.inc(BATCH_SECONDS, elapsed, target=self.target)
        self.metrics.set(LAST_BATCH_SECONDS, elapsed, target=self.target)
        return result

    def _letter(self, rec: RawRecord, table: str | None, reason: str, error: str) -> DeadLetter:
        return DeadLetter(
            record=rec, table=table or self.table_of_topic(rec.topic), reason=reason, error=error
        )

    def _write(self, events: Sequence[ChangeEvent]) -> None:
        """Write with retries on TransientError; PermanentError propagates."""
        attempt = 0
        while True:
            if self.stopper.stopping and attempt > 0:
                raise Abandoned(f"stop requested; {len(events)} events left unwritten")
            try:
                self.sink.write_batch(events)
                return
            except TransientError as exc:
                attempt += 1
                if self.backoff.exhausted(attempt):
                    log.error(
                        "transient errors persisted; giving up without acknowledging the batch",
                        extra={"target": self.target, "attempts": attempt, "error": str(exc)},
                    )
                    raise
                delay = self.backoff.delay_s(attempt)
                self.metrics.inc(RETRIES, target=self.target)
                log.warning(
                    "transient sink error; retrying",
                    extra={
                        "target": self.target,
                        "attempt": attempt,
                        "delay_s": round(delay, 3),
                        "error": str(exc),
                    },
                )
                if self.stopper.sleep(delay):
                    raise Abandoned(
                        f"stop requested during retries; {len(events)} events left unwritten"
                    ) from exc

    def _isolate(self, events: Sequence[ChangeEvent]) -> list[tuple[ChangeEvent, Exception]]:
        rejected: list[tuple[ChangeEvent, Exception]] = []
        for event in events:
            try:
                self._write([event])
            except PermanentError as exc:
                rejected.append((event, exc))
        return rejected
