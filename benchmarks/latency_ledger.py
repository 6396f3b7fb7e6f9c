"""Which write each sighting belongs to: the bookkeeping of benchmarks/bench_latency.py.

The writer gives every DynamoDB write a sequence number, carried in the item's `seq`
attribute (a counter, not a clock: the bridge treats it as any other number attribute). A
write is then known by (key, seq) wherever it shows up:
- in Kafka, as the change event whose new image holds that `seq` (its version noted);
- in the target, as the row of that key whose item holds that `seq` or a later one: a row
  that already holds a later write of the key (last-write-wins) also shows this one applied
  (it is then counted as superseded, and its version cannot be compared).

Thread-safe: the writer, the Kafka tail and the target poller report from their own threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Write:
    key: str
    seq: int
    sent: float  # wall clock (time.time()) when the request was sent
    measured: bool = True  # False for warm-up writes: must arrive, not counted
    returned: float | None = None  # when the write call returned
    kafka_seen: float | None = None  # when the tail consumer first read its event
    kafka_version: int | None = None
    # The Kafka record's timestamp, seconds: the stream producer stamps each record with its
    # DynamoDB change time (ApproximateCreationDateTime), not the time it was produced.
    record_ts: float | None = None
    # when a plain GetRecords reader of the same stream first read it (the floor, see
    # latency_probes.StreamFloor)
    floor_seen: float | None = None
    target_seen: float | None = None  # when the poller first saw it (or a later write) applied
    target_version: int | None = None  # the row's version, when it held exactly this write
    superseded: bool = False  # first seen in the target under a later write of its key

    @property
    def done(self) -> bool:
        return self.kafka_seen is not None and self.target_seen is not None


@dataclass
class Stages:
    """Per measured write, in seconds: the spans bench_latency reports."""

    end_to_end: list[float]  # target_seen - returned
    to_kafka: list[float]  # kafka_seen - returned
    kafka_to_target: list[float]  # target_seen - kafka_seen
    stamp_to_kafka: list[float]  # kafka_seen - record_ts: from DynamoDB's own change time
    put: list[float]  # returned - sent: the write call itself
    floor: list[float]  # floor_seen - returned: the same write, read by a plain poller
    # kafka_seen - floor_seen, write by write: what the stream producer and Kafka add to a
    # plain reader's delay (paired, so a machine-wide slowdown mostly cancels out)
    over_floor: list[float]


class Ledger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.writes: dict[tuple[str, int], Write] = {}
        # key -> its writes not yet seen in the target, oldest first
        self._waiting: dict[str, list[Write]] = {}
        self.unmatched_events = 0  # events of no write made here
        self.duplicate_events = 0  # at-least-once re-publishes of a write already seen

    def sent(self, key: str, seq: int, at: float, measured: bool = True) -> None:
        """Called before the write request goes out, so no sighting can precede it."""
        write = Write(key, seq, at, measured)
        with self._lock:
            if (key, seq) in self.writes:
                raise ValueError(f"write {key}/{seq} recorded twice")
            self.writes[(key, seq)] = write
            self._waiting.setdefault(key, []).append(write)

    def returned(self, key: str, seq: int, at: float) -> None:
        with self._lock:
            self.writes[(key, seq)].returned = at

    def kafka_event(
        self, key: str, seq: int | None, version: int, at: float, record_ts: float | None
    ) -> None:
        """The tail consumer read the event of write (key, seq) at `at`."""
        with self._lock:
            write = self.writes.get((key, seq)) if seq is not None else None
            if write is None:
                self.unmatched_events += 1
                return
            if write.kafka_seen is not None:
                self.duplicate_events += 1
                return
            write.kafka_seen, write.kafka_version, write.record_ts = at, version, record_ts

    def floor_record(self, key: str, seq: int | None, at: float) -> None:
        """The floor reader read write (key, seq) from the stream at `at` (first time counts)."""
        with self._lock:
            write = self.writes.get((key, seq)) if seq is not None else None
            if write is not None and write.floor_seen is None:
                write.floor_seen = at

    def target_row(self, key: str, seq: int, version: int, at: float) -> int:
        """The poller saw `key`'s row holding write `seq` at `at`: every write of the key up
        to `seq` is applied. Returns how many writes that made visible."""
        with self._lock:
            waiting = self._waiting.get(key)
            if not waiting:
                return 0
            shown = 0
            while waiting and waiting[0].seq <= seq:
                write = waiting.pop(0)
                write.target_seen = at
                if write.seq == seq:
                    write.target_version = version
                else:
                    write.superseded = True
                shown += 1
            if not waiting:
                del self._waiting[key]
            return shown

    def waiting_keys(self) -> list[str]:
        """Keys with a write not yet seen in the target (what the poller asks for)."""
        with self._lock:
            return list(self._waiting)

    def missing(self) -> list[Write]:
        """Writes not yet seen in Kafka or in the target, in write order."""
        with self._lock:
            return sorted((w for w in self.writes.values() if not w.done), key=lambda w: w.seq)

    def version_mismatches(self) -> list[Write]:
        """Writes whose target row carried another version than their Kafka event."""
        with self._lock:
            return [
                w
                for w in self.writes.values()
                if w.target_version is not None
                and w.kafka_version is not None
                and w.target_version != w.kafka_version
            ]

    def stages(self) -> Stages:
        """The spans of every measured write seen everywhere."""
        out = Stages([], [], [], [], [], [], [])
        with self._lock:
            for w in sorted(self.writes.values(), key=lambda w: w.seq):
                if not (w.measured and w.done and w.returned is not None):
                    continue
                assert w.kafka_seen is not None and w.target_seen is not None
                out.end_to_end.append(w.target_seen - w.returned)
                out.to_kafka.append(w.kafka_seen - w.returned)
                out.kafka_to_target.append(w.target_seen - w.kafka_seen)
                out.put.append(w.returned - w.sent)
                if w.floor_seen is not None:
                    out.floor.append(w.floor_seen - w.returned)
                    out.over_floor.append(w.kafka_seen - w.floor_seen)
                if w.record_ts is not None:
                    out.stamp_to_kafka.append(w.kafka_seen - w.record_ts)
        return out
