"""Topics that survive a broker loss, on a real three-node cluster, and the warning when not.

A topic left at Kafka's default `min.insync.replicas=1` lets a leader acknowledge an event
alone; losing that broker then loses an event the stream already checkpointed past. The bridge
creates its topics durable on a cluster and says so at start when a topic it finds is not.
"""

from __future__ import annotations

import logging

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from bridge.kafka import durability as kafka_durability
from bridge.kafka.publisher import ensure_topics
from bridge.runtime.metrics import REGISTRY, TOPIC_DURABLE, TOPIC_MIN_ISR, TOPIC_REPLICAS
from bridge.runtime.settings import KafkaSettings, Settings
from ddb_bridge.services.kafka_cluster import KafkaCluster
from ddb_bridge.services.names import unique
from ddb_bridge.status import topic_durability
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_topics_the_bridge_creates_on_a_cluster_survive_a_broker_loss(
    cluster: KafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    table = unique("durable")
    kafka = KafkaSettings(bootstrap_servers=cluster.bootstrap, partitions=3)
    caplog.set_level(logging.INFO)
    ensure_topics(kafka, [table])

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for topic in (kafka.changes_topic(table), kafka.dlq_topic(table)):
        found = kafka_durability.read(admin, topic)
        assert (found.brokers, found.replication_factor, found.min_insync_replicas) == (3, 3, 2)
        assert found.durable
    assert not [w for w in _warnings(caplog) if "durable" in w]
    topic = kafka.changes_topic(table)
    assert REGISTRY.get(TOPIC_DURABLE, topic=topic) == 1
    assert REGISTRY.get(TOPIC_REPLICAS, topic=topic) == 3
    assert REGISTRY.get(TOPIC_MIN_ISR, topic=topic) == 2


@pytest.mark.parametrize(
    ("replicas", "min_isr", "advice"),
    [
        (3, 1, "--add-config min.insync.replicas=2"),  # Kafka's default min ISR
        (2, 2, "replication factor to 3"),  # one broker down leaves one copy
        (1, 1, "replication factor to 3"),
    ],
)
def test_an_existing_topic_not_durable_draws_a_warning_with_the_fix(
    cluster: KafkaCluster,
    caplog: pytest.LogCaptureFixture,
    replicas: int,
    min_isr: int,
    advice: str,
) -> None:
    table = unique("fragile")
    kafka = KafkaSettings(bootstrap_servers=cluster.bootstrap, partitions=2)
    topic = kafka.changes_topic(table)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    made = admin.create_topics(
        [NewTopic(topic, 2, replicas, config={"min.insync.replicas": str(min_isr)})]
    )
    made[topic].result(timeout=30)

    caplog.set_level(logging.INFO)
    ensure_topics(kafka, [table])

    warned = [w for w in _warnings(caplog) if topic in w and "NOT durable" in w]
    assert len(warned) == 1, _warnings(caplog)
    assert advice in warned[0]
    assert f"replication factor {replicas}, min.insync.replicas {min_isr}" in warned[0]
    assert REGISTRY.get(TOPIC_DURABLE, topic=topic) == 0


def test_a_single_broker_says_one_info_line_and_no_warning(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    table = unique("dev")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=1)
    caplog.set_level(logging.INFO)
    ensure_topics(kafka, [table])

    topic = kafka.changes_topic(table)
    lines = [r for r in caplog.records if r.name == kafka_durability.__name__]
    assert [r.levelno for r in lines] == [logging.INFO]
    assert "single broker" in lines[0].getMessage()
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    found = kafka_durability.read(admin, topic)
    assert (found.replication_factor, found.min_insync_replicas) == (1, 1)


def test_status_shows_the_change_topics_durability(cluster: KafkaCluster) -> None:
    table = unique("status")
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=cluster.bootstrap))
    assert topic_durability(settings, table) is None  # no topic yet
    topic = settings.kafka.changes_topic(table)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(timeout=30)  # min ISR 1

    # The controller has the topic; the broker asked may learn of it a moment later, and
    # until then status says "no topic yet" (a CI run caught that window).
    wait_until(
        lambda: topic_durability(settings, table) is not None,
        30,
        "the topic in the brokers' metadata",
        interval=0.5,
    )
    found = topic_durability(settings, table)
    assert found is not None
    assert (found.brokers, found.replication_factor, found.min_insync_replicas) == (3, 3, 1)
    assert not found.durable and not found.development
    assert any(f"--entity-name {topic}" in step for step in found.advice)
