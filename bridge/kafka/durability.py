"""Whether an acknowledged event survives the loss of a broker: the topics' replication.

With `acks=all` (every producer of the bridge, bridge/kafka/publisher.py) the leader acknowledges a
record once every replica *in sync* has it, and `min.insync.replicas` is how few in-sync
replicas the leader may accept. At Kafka's default of 1, a leader whose followers fell behind
acknowledges alone; lose that broker and the event is gone, after the stream checkpointed past
it. So the topics the bridge creates get `replication.factor = min(3, brokers)` and
`min.insync.replicas = min(2, replication factor)` unless set, and every daemon reads the
change topic's real figures at start (`check`), warning with the exact command when one broker
lost could lose an acknowledged event. One broker (a development setup) gets one INFO line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from bridge.runtime.metrics import REGISTRY, TOPIC_DURABLE, TOPIC_MIN_ISR, TOPIC_REPLICAS, Metrics
from bridge.runtime.settings import KafkaSettings

log = logging.getLogger(__name__)


def broker_count(admin: AdminClient, timeout_s: float) -> int:
    return len(admin.list_topics(timeout=timeout_s).brokers)


def replication_factor(kafka: KafkaSettings, brokers: int) -> int:
    """The replication factor of a topic the bridge creates: the setting, else min(3, brokers)."""
    if kafka.replication_factor is not None:
        return kafka.replication_factor
    return max(1, min(3, brokers))


def min_insync_replicas(kafka: KafkaSettings, replicas: int) -> int:
    """`min.insync.replicas` of a topic the bridge creates: the setting, else min(2, replicas)."""
    if kafka.min_insync_replicas is not None:
        return kafka.min_insync_replicas
    return min(2, replicas)


@dataclass(frozen=True, slots=True)
class Durability:
    """What one topic's replication promises, read from the cluster."""

    topic: str
    brokers: int
    replication_factor: int  # the smallest of its partitions'
    min_insync_replicas: int

    @property
    def development(self) -> bool:
        """One broker: nothing can survive its loss, and nothing is expected to."""
        return self.brokers < 2

    @property
    def durable(self) -> bool:
        """An acknowledged event survives the loss of any one broker: at least two replicas
        had it (min ISR ≥ 2), and the topic is replicated as widely as the cluster allows up
        to three (so one broker down does not also stop every producer)."""
        if self.development:
            return False
        wanted = min(3, self.brokers)
        return self.min_insync_replicas >= 2 and self.replication_factor >= wanted

    def advice(self, bootstrap: str) -> list[str]:
        """The exact changes that make the topic durable (empty when it is)."""
        if self.development or self.durable:
            return []
        steps = []
        if self.replication_factor < min(3, self.brokers):
            steps.append(
                f"raise its replication factor to {min(3, self.brokers)} "
                f"(kafka-reassign-partitions.sh --bootstrap-server {bootstrap} --execute with a "
                f"plan listing {min(3, self.brokers)} replicas per partition; [kafka] "
                "replication_factor applies only to topics the bridge creates)"
            )
        if self.min_insync_replicas < 2:
            steps.append(
                f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics "
                f"--entity-name {self.topic} --add-config min.insync.replicas=2"
            )
        return steps

    def summary(self) -> str:
        return (
            f"replication factor {self.replication_factor}, min.insync.replicas "
            f"{self.min_insync_replicas}, {self.brokers} broker(s)"
        )


def read(
    admin: AdminClient, topic: str, timeout_s: float = 10.0, settle_s: float = 0.0
) -> Durability:
    """The topic's replication as the cluster reports it now; `settle_s` is how long an
    unknown topic is asked again (for one just created, see below)."""
    deadline = time.monotonic() + settle_s
    while True:
        try:
            return _read_once(admin, topic, timeout_s)
        except KafkaException as exc:
            # A topic created a moment ago is known to the controller before every broker
            # has its metadata: the broker asked may not know it for a few hundred ms.
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.2)


def _read_once(admin: AdminClient, topic: str, timeout_s: float) -> Durability:
    metadata = admin.list_topics(topic, timeout=timeout_s)
    described = metadata.topics[topic]
    if described.error is not None:
        raise KafkaException(described.error)
    replicas = min((len(p.replicas) for p in described.partitions.values()), default=0)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs: dict[str, Any] = admin.describe_configs([resource], request_timeout=timeout_s)[
        resource
    ].result(timeout=timeout_s)
    entry = configs.get("min.insync.replicas")
    min_isr = int(entry.value) if entry is not None and entry.value is not None else 1
    return Durability(topic, len(metadata.brokers), replicas, min_isr)


def report(found: Durability, bootstrap: str, metrics: Metrics = REGISTRY) -> None:
    """Log what a daemon found at start (WARNING when not durable) and export it."""
    metrics.set(TOPIC_REPLICAS, found.replication_factor, topic=found.topic)
    metrics.set(TOPIC_MIN_ISR, found.min_insync_replicas, topic=found.topic)
    metrics.set(TOPIC_DURABLE, 1 if found.durable else 0, topic=found.topic)
    if found.development:
        log.info(
            "topic %s is on a single broker (%s): fine for development; on a cluster the "
            "bridge creates topics that survive a broker loss",
            found.topic,
            found.summary(),
            extra={"topic": found.topic},
        )
    elif found.durable:
        log.info(
            "topic %s survives the loss of one broker (%s)",
            found.topic,
            found.summary(),
            extra={"topic": found.topic},
        )
    else:
        log.warning(
            "topic %s is NOT durable against the loss of one broker (%s): an event Kafka "
            "acknowledged can be lost with its leader after the bridge checkpointed past it. "
            "To fix: %s",
            found.topic,
            found.summary(),
            "; ".join(found.advice(bootstrap)),
            extra={
                "topic": found.topic,
                "replication_factor": found.replication_factor,
                "min_insync_replicas": found.min_insync_replicas,
                "brokers": found.brokers,
            },
        )
