"""An in-memory Kafka producer as late and as unreliable as a real one can be.

librdkafka acknowledges a record whenever the broker answers, which can be any later
`poll()`, or only the `flush()` before a checkpoint; and it can answer with an error (the
broker refused the record as too large, or `message.timeout.ms` ran out). A fake that
acknowledges every record on the very next `poll(0)` hides a checkpoint written before the
acknowledgement: the flush in front of it can be deleted and every test still passes.
`HoldingProducer` therefore holds every delivery callback:

- `flush()` answers every record (as librdkafka's does, within its timeout), unless the broker
  is down (`outage(seconds)`): then it waits out its timeout, really, and answers nothing
  until the outage is over, as librdkafka's flush returns with records still queued;
- `poll()` serves only answers that have arrived: those the test let arrive (`arrive`), or,
  with `arrive_after_polls=n`, a record's answer on the n-th poll after it was produced
  (n >= 2: never on the producer's own `poll(0)` right after `produce`);
- `refuse(...)` makes the broker answer matching records with an error instead;
- `errors_only=True` is librdkafka's `delivery.report.only.error` (an untracked publisher's,
  bridge/kafka/publisher.py): only a refused record's callback is ever called.

The ledger (`records`) says which records are still unacknowledged, so a test can check,
at the moment a checkpoint is written, that nothing before it is (`unacked_events`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError

from bridge.codec.avro import EventCodec
from bridge.model.event import ChangeEvent


class FakeMessage:
    """The parts of confluent_kafka.Message a delivery callback reads."""

    def __init__(self, topic: str, key: bytes, value: bytes, headers: Any) -> None:
        self._topic, self._key, self._value, self._headers = topic, key, value, headers

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> Any:
        return self._headers


@dataclass
class SentRecord:
    message: FakeMessage
    on_delivery: Any
    produced_at_poll: int
    arrived: bool = False
    answered: bool = False  # its delivery callback ran
    error: KafkaError | None = None  # the broker's answer, when it refused the record


@dataclass
class HoldingProducer:
    """confluent_kafka.Producer's surface that Publisher uses; see the module docstring."""

    arrive_after_polls: int | None = None
    errors_only: bool = False
    records: list[SentRecord] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    polls: int = 0
    down_until: float = 0.0  # time.monotonic() at which a broker outage ends
    _refusals: list[tuple[Callable[[FakeMessage], bool], int]] = field(default_factory=list)

    # -- what the test controls --------------------------------------------------------------

    def arrive(self, count: int | None = None) -> None:
        """The broker's answers for the oldest `count` unanswered records (all: None) arrive;
        the next poll serves them."""
        with self.lock:
            waiting = [r for r in self.records if not r.arrived]
            for record in waiting if count is None else waiting[:count]:
                record.arrived = True

    def refuse(
        self,
        match: Callable[[FakeMessage], bool],
        code: int = KafkaError.MSG_SIZE_TOO_LARGE,
    ) -> None:
        """The broker answers every record `match` selects with `code` (as librdkafka
        reports a refusal: MSG_SIZE_TOO_LARGE, or _MSG_TIMED_OUT once message.timeout.ms
        ran out)."""
        with self.lock:
            self._refusals.append((match, code))

    # -- what the test reads -------------------------------------------------------------------

    @property
    def sent(self) -> list[tuple[str, bytes, bytes]]:
        """(topic, key, value) of every record produced, acknowledged or not."""
        with self.lock:
            return [(r.message.topic(), r.message.key(), r.message.value()) for r in self.records]

    @property
    def unacked(self) -> int:
        """Records produced whose delivery callback has not reported success."""
        with self.lock:
            return sum(1 for r in self.records if not r.answered or r.error is not None)

    def unacked_events(self, codec: EventCodec | None = None) -> list[ChangeEvent]:
        """The change events not (successfully) acknowledged, in production order."""
        codec = codec or EventCodec()
        with self.lock:
            values = [r.message.value() for r in self.records if not r.answered or r.error]
        return [codec.decode(value) for value in values]

    def unacked_through(
        self, shard_id: str, position: str, codec: EventCodec | None = None
    ) -> list[str]:
        """Sequence numbers of `shard_id`'s records at or before `position` (a sequence
        number, or SHARD_END: all of them) that Kafka has not acknowledged: a checkpoint at
        `position` must find none."""
        end = None if position == "SHARD_END" else int(position)
        return [
            e.sequence_number or ""
            for e in self.unacked_events(codec)
            if e.shard_id == shard_id and (end is None or int(e.sequence_number or 0) <= end)
        ]

    # -- confluent_kafka.Producer --------------------------------------------------------------

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        headers: Any = None,
        on_delivery: Any = None,
        timestamp: int = 0,
    ) -> None:
        with self.lock:
            message = FakeMessage(topic, key, value, headers)
            self.records.append(SentRecord(message, on_delivery, self.polls))

    def poll(self, _timeout: float = 0) -> int:
        with self.lock:
            self.polls += 1
            if self.arrive_after_polls is not None:
                for record in self.records:
                    if self.polls - record.produced_at_poll >= self.arrive_after_polls:
                        record.arrived = True
        return self._answer()

    def outage(self, seconds: float) -> None:
        """The broker stops answering for `seconds` from now (real time)."""
        self.down_until = time.monotonic() + seconds

    def flush(self, timeout: float = 0) -> int:
        down_for = self.down_until - time.monotonic()
        if down_for > 0:
            time.sleep(min(max(timeout, 0.0), down_for))
            if time.monotonic() < self.down_until:
                with self.lock:
                    return sum(1 for r in self.records if not r.answered)
        self.arrive()
        self._answer()
        return 0

    def _answer(self) -> int:
        # Callbacks run outside the lock, on the polling thread, as librdkafka runs them.
        with self.lock:
            due = [r for r in self.records if r.arrived and not r.answered]
            for record in due:
                record.answered = True
                for match, code in self._refusals:
                    if match(record.message):
                        record.error = KafkaError(code)
                        break
        for record in due:
            if self.errors_only and record.error is None:
                continue
            if record.on_delivery is not None:
                record.on_delivery(record.error, record.message)
        return len(due)


def key_contains(text: str) -> Callable[[FakeMessage], bool]:
    """A refusal rule: records whose key bytes contain `text`."""
    needle = text.encode()
    return lambda message: needle in message.key()
