"""One batch, start to finish, synchronously: screen, coalesce, write, retry, dead-letter.

Runs in a worker thread (the sinks are blocking), so the Faust event loop keeps heartbeating
while a write is slow. Contract with the caller: when `process` returns, every record of the
batch is either written to the target (or superseded by a newer event of its key that was),
or durable in a DLQ topic, and the caller may ack them all. When it raises, nothing of the
batch may be acknowledged:
- `Abandoned`: a stop was requested while the target was failing transiently;
- `TransientError`: retries exhausted (`apply.max_retries`);
- `TargetError`: the target refuses every write (read-only, access denied, a table gone):
  no event's fault, so nothing is dead-lettered; the worker stops (a retryable one is
  waited for like a transient error first);
- anything else: a bug or an unexpected driver error. The worker stops, and the batch is
  read again by whichever worker next owns the partitions.

Which records are dead-lettered does not depend on how records fall into batches: each
record is screened alone (bridge/apply/screening.py), and when the target refuses a key's
newest event, the key falls back to its next newest event of the batch, as if the batch
had ended before the refused one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from operator import attrgetter

from bridge.apply.batching import newest, newest_first
from bridge.apply.screening import Rejected, Screen
from bridge.codec.avro import EventCodec
from bridge.dlq.writer import DeadLetter, DeadLetterWriter, RawRecord
from bridge.model.backoff import Backoff, Stop
from bridge.model.errors import PermanentError, TargetError, TransientError
from bridge.model.event import ChangeEvent
from bridge.ports.sink import Sink, TableSpec
from bridge.runtime import metrics as m
from bridge.runtime.metrics import REGISTRY, Metrics
from bridge.runtime.waits import waiting

log = logging.getLogger(__name__)

# The names tests and benchmarks read back (`Metrics.get`); declared in bridge/runtime/metrics.py.
EVENTS = m.APPLY_EVENTS
WRITES = m.APPLY_WRITES
DLQ = m.APPLY_DLQ
RETRIES = m.APPLY_RETRIES
BATCHES = m.APPLY_BATCHES
BATCH_SECONDS = m.APPLY_BATCH_SECONDS + "_sum"
TARGET_ERRORS = m.APPLY_TARGET_ERRORS
BLOCKED = m.APPLY_BLOCKED


_topic = attrgetter("topic")


def sink_backoff(base_ms: int, max_ms: int, max_retries: int) -> Backoff:
    """apply's pauses between tries of a batch (`[apply] retry_backoff_ms`,
    `retry_backoff_max_ms`, `max_retries`; 0 retries = until stopped).

    Equal jitter: half of each pause is fixed, so a recovering target is not hammered at
    once; the random half spreads the workers' retries apart.
    """
    return Backoff(
        base_s=base_ms / 1000,
        cap_s=max(base_ms, max_ms) / 1000,  # a cap below the base means no growth, as before
        jitter="equal",
        max_retries=max_retries or None,
    )


class Abandoned(Exception):
    """A stop was requested before the batch could be written; do not ack it."""


@dataclass
class BatchResult:
    received: int = 0
    written: int = 0  # rows after coalescing
    dead: int = 0


def _per_table(
    keyed: list[tuple[tuple[str, bytes], ChangeEvent]], rejected_ids: set[int]
) -> tuple[dict[str, int], dict[str, int]]:
    """Events written per table, and the change time of each table's newest one, leaving
    out the events whose ids are in `rejected_ids`."""
    applied: dict[str, int] = {}
    newest_ms: dict[str, int] = {}
    for _, event in keyed:
        if rejected_ids and id(event) in rejected_ids:
            continue
        table = event.table
        applied[table] = applied.get(table, 0) + 1
        # Back-fill snapshots carry no change time: only stream events measure lag.
        created = event.approximate_creation_time_ms
        if created is not None and created > newest_ms.get(table, -1):
            newest_ms[table] = created
    return applied, newest_ms


@dataclass
class Screened:
    """A batch after screening (`BatchProcessor.screened`), before its write."""

    records: Sequence[RawRecord]
    keyed: list[tuple[tuple[str, bytes], ChangeEvent]]  # ((table, key), event), admitted
    admitted: list[RawRecord]  # the record of each `keyed` event, to dead-letter it
    letters: list[DeadLetter]  # the records screening rejected
    winners: list[ChangeEvent]  # the newest event of each key (batching.newest)
    # Records per topic, events per table and each table's newest change time (ms), for
    # the metrics of a batch written whole.
    counts: tuple[Counter[str], dict[str, int], dict[str, int]]
    seconds: float  # spent screening (counted in the batch's latency)


class BatchProcessor:
    def __init__(
        self,
        sink: Sink,
        target: str,
        dead_letters: DeadLetterWriter,
        table_of_topic: Callable[[str], str],
        backoff: Backoff | None = None,
        stopper: Stop | None = None,
        codec: EventCodec | None = None,
        metrics: Metrics = REGISTRY,
        specs: Sequence[TableSpec] | None = None,
    ) -> None:
        self.sink = sink
        self.target = target
        self.dead_letters = dead_letters
        self.table_of_topic = table_of_topic
        self.backoff = backoff or sink_backoff(200, 30_000, 0)
        self.stopper = stopper or Stop()
        self.codec = codec or EventCodec()
        self.metrics = metrics
        self.screen = Screen(
            self.codec, table_of_topic, specs, image_text=sink.capabilities.image_text
        )

    def process(self, records: Sequence[RawRecord]) -> BatchResult:
        return self.finish(self.screened(records))

    def screened(self, records: Sequence[RawRecord]) -> Screened:
        """Step one of `process`: each record screened alone. Touches nothing outside the
        processor's screen, so the worker runs it for the next batch while this one is
        being written (bridge/apply/app.py)."""
        started = time.perf_counter()
        letters: list[DeadLetter] = []
        keyed: list[tuple[tuple[str, bytes], ChangeEvent]] = []
        admitted: list[RawRecord] = []  # the record of each `keyed` event, to dead-letter it
        for rec, verdict in zip(records, self.screen.check_batch(records), strict=True):
            if type(verdict) is tuple:  # Admitted: the common case first
                event, key = verdict
                keyed.append(((event.table, key), event))
                admitted.append(rec)
            else:
                assert isinstance(verdict, Rejected)
                letters.append(self._letter(rec, None, verdict.reason, verdict.error))
        # Done here, ahead of the write, as the rest of this step: the winners, and the
        # per-table counts the metrics take once the batch is written (as if none of its
        # events is refused; `_record` counts again in the rare batch where one is).
        winners = newest(keyed) if keyed else []
        counted = Counter(map(_topic, records))
        applied, newest_ms = _per_table(keyed, set())
        return Screened(
            records,
            keyed,
            admitted,
            letters,
            winners,
            (counted, applied, newest_ms),
            time.perf_counter() - started,
        )

    def finish(self, screened: Screened) -> BatchResult:
        """Step two of `process`: write the winners, dead-letter what is refused, count."""
        started = time.perf_counter() - screened.seconds
        records, keyed, admitted = screened.records, screened.keyed, screened.admitted
        letters = list(screened.letters)
        result = BatchResult(received=len(records))
        rejected_ids: set[int] = set()
        if keyed:
            winners = screened.winners
            try:
                self._write(winners)
                result.written = len(winners)
            except PermanentError as exc:
                log.warning(
                    "batch rejected; writing its events one at a time to find the poison",
                    extra={"target": self.target, "events": len(winners), "error": str(exc)},
                )
                written, rejected = self._isolate(newest_first(keyed))
                result.written = written
                origin = {id(event): rec for (_, event), rec in zip(keyed, admitted, strict=True)}
                for event, err in rejected:
                    rejected_ids.add(id(event))
                    # The topic's table: a dead letter goes next to the topic it came from.
                    letters.append(
                        self._letter(origin[id(event)], None, str(err), type(err).__name__)
                    )
        if letters:
            for letter in letters:
                self.dead_letters.send(letter)
            self.dead_letters.flush()
            for letter in letters:
                self.metrics.inc(DLQ, table=letter.table, target=self.target)
                self.metrics.inc(m.ERRORS, daemon="apply", error=letter.error)
            result.dead = len(letters)
        counted, applied, newest_ms = screened.counts
        if rejected_ids:
            applied, newest_ms = _per_table(keyed, rejected_ids)
        self._record(counted, applied, newest_ms, result, started)
        return result

    def _record(
        self,
        counted: Counter[str],
        applied: dict[str, int],
        newest_ms: dict[str, int],
        result: BatchResult,
        started: float,
    ) -> None:
        """Metrics of one finished batch: records in (`counted` per topic) and out
        (`applied` per table), latency, and the replication lag of each table (now minus
        the change time of its newest event, `newest_ms`)."""
        for topic, n in counted.items():
            table = self.table_of_topic(topic)
            self.metrics.inc(m.APPLY_RECEIVED, n, table=table, target=self.target)
        for table, n in applied.items():
            self.metrics.inc(EVENTS, n, table=table, target=self.target)
        now = time.time()
        for table, created in newest_ms.items():
            self.metrics.set(
                m.APPLY_LAG_SECONDS, max(0.0, now - created / 1000), table=table, target=self.target
            )
            self.metrics.set(
                m.APPLY_LAST_EVENT_TIME, created / 1000, table=table, target=self.target
            )
        elapsed = time.perf_counter() - started
        self.metrics.inc(WRITES, result.written, target=self.target)
        self.metrics.inc(BATCHES, target=self.target)
        self.metrics.observe(m.APPLY_BATCH_SECONDS, elapsed, target=self.target)

    def _letter(self, rec: RawRecord, table: str | None, reason: str, error: str) -> DeadLetter:
        return DeadLetter(
            record=rec, table=table or self.table_of_topic(rec.topic), reason=reason, error=error
        )

    def _write(self, events: Sequence[ChangeEvent]) -> None:
        """Write with retries on TransientError and on a retryable TargetError; a
        PermanentError or a TargetError that waiting cannot cure propagates."""
        attempt = 0
        while True:
            if self.stopper.is_set() and attempt > 0:
                raise Abandoned(f"stop requested; {len(events)} events left unwritten")
            try:
                # A try after a refusal is part of waiting for the target, like the backoff.
                with (
                    waiting(f"target {self.target} (retrying a batch)")
                    if attempt
                    else nullcontext()
                ):
                    self.sink.write_batch(events)
                if attempt:
                    self.metrics.set(BLOCKED, 0, target=self.target)
                return
            except (TransientError, TargetError) as exc:
                refused = isinstance(exc, TargetError)
                self.metrics.inc(m.ERRORS, daemon="apply", error=type(exc).__name__)
                if isinstance(exc, TargetError):
                    self.metrics.inc(TARGET_ERRORS, target=self.target)
                    if not exc.retryable:
                        raise
                    self.metrics.set(BLOCKED, 1, target=self.target)
                attempt += 1
                if self.backoff.exhausted(attempt):
                    log.error(
                        "errors persisted; giving up without acknowledging the batch",
                        extra={"target": self.target, "attempts": attempt, "error": str(exc)},
                    )
                    raise
                delay = self.backoff.delay(attempt)
                self.metrics.inc(RETRIES, target=self.target)
                # One line per attempt: the backoff (capped at apply.retry_backoff_max_ms)
                # bounds how often that is, and each says what is being waited for.
                log.warning(
                    "the target refuses writes; waiting for it to accept them again"
                    if refused
                    else "transient sink error; retrying",
                    extra={
                        "target": self.target,
                        "table": getattr(exc, "table", None),
                        "attempt": attempt,
                        "delay_s": round(delay, 3),
                        "error": str(exc),
                    },
                )
                # A target that refuses writes is waited for, not a wedged loop: /livez
                # stays 200 through the backoff (bridge/runtime/waits.py).
                with waiting(f"target {self.target} (retrying a batch)"):
                    stopped = self.stopper.wait(delay)
                if stopped:
                    raise Abandoned(
                        f"stop requested during retries; {len(events)} events left unwritten"
                    ) from exc

    def _isolate(
        self, candidates: Sequence[Sequence[ChangeEvent]]
    ) -> tuple[int, list[tuple[ChangeEvent, Exception]]]:
        """One key at a time, newest event first: the first the target takes is the key's
        write; each it refuses is rejected. Returns (rows written, rejected events)."""
        written = 0
        rejected: list[tuple[ChangeEvent, Exception]] = []
        for group in candidates:
            for event in group:
                try:
                    self._write([event])
                except PermanentError as exc:
                    rejected.append((event, exc))
                    continue
                written += 1
                break
        return written, rejected
