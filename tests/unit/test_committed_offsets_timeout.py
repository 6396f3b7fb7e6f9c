"""A committed-offsets read that times out (a broker restarting under it) is a TransientError,
which apply retries with backoff. Seen in `make chaos` (seed 6): a bare timeout escaped the
read's retry, and apply stopped with exit 1 and a traceback right after the broker came back."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from bridge.kafka import reads as kafka_reads
from bridge.model.errors import TransientError
from bridge.runtime.settings import KafkaSettings


class SilentBroker:
    """A consumer whose OffsetFetch never gets an answer in time."""

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False

    def committed(self, partitions: Any, timeout: float) -> Any:
        self.calls += 1
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out"))

    def close(self) -> None:
        self.closed = True


def test_a_timed_out_read_is_transient_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = SilentBroker()
    made: list[dict[str, Any] | None] = []

    def consumer(_kafka: KafkaSettings, _purpose: str, extra: Any = None) -> SilentBroker:
        made.append(extra)
        return broker

    monkeypatch.setattr(kafka_reads, "reader_consumer", consumer)
    with (
        kafka_reads.OffsetFetcher(KafkaSettings(), settle_s=0.5) as offsets,
        pytest.raises(TransientError, match="committed offsets of group g"),
    ):
        offsets.committed("g", [("t", 0)], timeout_s=0.1)
    assert broker.calls >= 2  # retried before giving up
    assert made == [{"group.id": "g"}]  # the read carries the group's own id
    assert broker.closed
