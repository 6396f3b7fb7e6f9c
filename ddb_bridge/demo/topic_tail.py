"""A consumer that reads one topic from its beginning and counts what is really in it.

The demo's fall-back for the embedded Tansu broker, whose high watermarks are wrong (1 on
partitions holding ~50 records), so "caught up" cannot be read from them: `bridge.kafka.lag.
group_lag(..., tail=TopicTail(...))` takes each partition's start and end from what the
tail read. The tail also hands each record to a callback (the demo counts the stream
positions that reached Kafka, ddb_bridge/demo/stream_check.py).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from bridge.kafka.client_config import consumer_config
from bridge.kafka.limits import librdkafka_fetch_config
from bridge.runtime.settings import KafkaSettings


class TopicTail(threading.Thread):
    """Reads `topic` from the beginning and counts what is there: the Tansu-safe end offsets.

    `extents()` gives, per partition, the offset of the first record read and one past the
    last (0, 0 until a record arrives). `on_record` sees every record's value, on this thread;
    an exception it raises stops the tail and is kept in `error`, as is a consumer error.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        partitions: int,
        on_record: Callable[[bytes], object] | None = None,
    ) -> None:
        super().__init__(name=f"tail-{topic}", daemon=True)
        self.topic = topic
        self.partitions = partitions
        self.records = 0
        self.stop_event = threading.Event()
        self.error: str | None = None
        self._on_record = on_record
        self._lock = threading.Lock()
        self._start: dict[int, int] = {}
        self._end: dict[int, int] = dict.fromkeys(range(partitions), 0)
        self._config = consumer_config(
            kafka,
            "topic-tail",
            defaults=librdkafka_fetch_config(),
            fixed={
                # Never joined or committed.
                "group.id": f"ddb-bridge.tail.{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                # librdkafka's default, kept explicit: aborted transactions are not counted.
                "isolation.level": "read_committed",
            },
        )

    def stop(self, timeout_s: float = 10) -> None:
        """Stop reading and wait for the consumer to close: closed after its broker is gone,
        librdkafka logs "Connection refused" errors while it gives up."""
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout_s)

    def extents(self) -> dict[int, tuple[int, int]]:
        """(start, end) offsets read so far, per partition."""
        with self._lock:
            return {p: (self._start.get(p, end), end) for p, end in self._end.items()}

    def run(self) -> None:
        consumer = Consumer(self._config)
        try:
            consumer.assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)]
            )
            while not self.stop_event.is_set():
                for msg in consumer.consume(5000, timeout=0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            self.error = err.str()
                        continue
                    partition, offset = msg.partition(), msg.offset()
                    if partition is None or offset is None:
                        continue  # not a record (confluent-kafka types these as optional)
                    if self._on_record is not None:
                        self._on_record(msg.value() or b"")
                    with self._lock:
                        self._start.setdefault(partition, offset)
                        self._end[partition] = max(self._end[partition], offset + 1)
                    self.records += 1
        except Exception as exc:  # kept for the reader of `error`: a thread's exception is lost
            self.error = f"topic {self.topic}: {exc!r}"
        finally:
            consumer.close()
