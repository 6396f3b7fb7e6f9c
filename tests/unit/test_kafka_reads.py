"""The "not yet" rule of bridge/kafka/reads.py: a broker still settling is waited for, any
other answer is an error naming what was read."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from bridge.kafka import reads as kafka_reads
from bridge.model.errors import TransientError


def _failing(errors: list[int], result: str = "read") -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if errors:
            raise KafkaException(KafkaError(errors.pop(0)))
        return result

    return calls, call


def test_a_new_topic_without_a_leader_yet_is_read_once_it_has_one() -> None:
    # What CI saw: status reading a DLQ topic created a second earlier.
    calls, call = _failing([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE])
    assert kafka_reads.retrying("reading the offsets of t.dlq", call) == "read"
    assert len(calls) == 3


def test_a_coordinator_loading_is_waited_for() -> None:
    calls, call = _failing([KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.NOT_COORDINATOR])
    assert kafka_reads.retrying("committed offsets", call) == "read"
    assert len(calls) == 3


def test_any_other_error_is_raised_at_once_naming_what_was_read() -> None:
    calls, call = _failing([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(TransientError, match="reading the offsets of orders/3: .*AUTHORIZATION"):
        kafka_reads.retrying("reading the offsets of orders/3", call)
    assert len(calls) == 1


def test_settling_that_outlasts_the_wait_is_an_error() -> None:
    calls, call = _failing([KafkaError.NOT_LEADER_FOR_PARTITION] * 100)
    with pytest.raises(TransientError, match="reading the offsets of t/0: .*NOT_LEADER"):
        kafka_reads.retrying("reading the offsets of t/0", call, settle_s=0.5)
    assert 2 <= len(calls) < 10
