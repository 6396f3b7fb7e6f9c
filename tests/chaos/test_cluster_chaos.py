"""The pipeline on a three-node Kafka cluster while brokers die: the leader of the change
topic's partitions (SIGKILL) while stream and back-fill publish, the active controller, the
leader again while apply works, then two of three nodes at once — below the topic's
min.insync.replicas=2, where producers must wait and retry, acknowledging and checkpointing
nothing, and resume when the nodes return. Checked as the chaos suite checks (tests/chaos/):
no checkpoint ahead of an unacknowledged record, no committed offset ahead of an unwritten
event, every stream record in the topic exactly once and in order per key, verify 0
differences, the DLQ holding only the one poison record injected on purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ddb_bridge.services.kafka_cluster import KafkaCluster
from tests.chaos.scenario import ChaosOptions, run

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(1200),
]


def test_no_write_lost_none_duplicated_while_brokers_of_a_cluster_die(
    dynamodb_endpoint: str, cluster: KafkaCluster, tmp_path: Path
) -> None:
    opts = ChaosOptions.from_env(
        workdir=tmp_path / "cluster",
        # A minute of writes: time for the four faults, one after another (each waits for the
        # cluster to be whole again), mostly while the writer writes.
        writes=1_800,
        keys=300,
        rate=30.0,
        kills=0,
        cluster=cluster,
        broker_down_s=6.0,
        lease_ms=10_000,
    )
    report = run(opts, dynamodb_endpoint)
    text = report.text()
    print(text)
    assert not report.failures, text
