"""The durability rule of bridge/kafka/durability.py, and the settings it resolves."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridge.kafka.durability import Durability, min_insync_replicas, replication_factor
from bridge.runtime.settings import KafkaSettings


@pytest.mark.parametrize(
    ("brokers", "rf", "min_isr", "durable"),
    [
        (3, 3, 2, True),
        (5, 3, 2, True),
        (3, 3, 1, False),  # Kafka's default min ISR: the leader acknowledges alone
        (3, 2, 2, False),  # one broker down leaves a single copy
        (3, 1, 1, False),
        (2, 2, 2, True),  # as wide as a two-broker cluster allows
        (2, 2, 1, False),
        (1, 1, 1, False),  # development: nothing survives the only broker's loss
    ],
)
def test_durable_against_one_broker_loss(
    brokers: int, rf: int, min_isr: int, durable: bool
) -> None:
    found = Durability("t", brokers, rf, min_isr)
    assert found.durable is durable
    assert bool(found.advice("b:9092")) is (not durable and brokers > 1)
    assert found.development is (brokers == 1)


def test_the_advice_is_the_exact_command() -> None:
    steps = Durability("ddb.orders.changes", 3, 3, 1).advice("k1:9092")
    assert steps == [
        "kafka-configs.sh --bootstrap-server k1:9092 --alter --entity-type topics "
        "--entity-name ddb.orders.changes --add-config min.insync.replicas=2"
    ]


@pytest.mark.parametrize(("brokers", "rf", "min_isr"), [(1, 1, 1), (2, 2, 2), (3, 3, 2), (6, 3, 2)])
def test_defaults_follow_the_cluster(brokers: int, rf: int, min_isr: int) -> None:
    kafka = KafkaSettings()
    assert replication_factor(kafka, brokers) == rf
    assert min_insync_replicas(kafka, replication_factor(kafka, brokers)) == min_isr


def test_settings_win_over_the_defaults() -> None:
    kafka = KafkaSettings(replication_factor=2, min_insync_replicas=1)
    assert replication_factor(kafka, 5) == 2
    assert min_insync_replicas(kafka, 2) == 1


def test_a_min_isr_above_the_replication_factor_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="no write could ever be acknowledged"):
        KafkaSettings(replication_factor=2, min_insync_replicas=3)
