"""Reading a group's committed offsets from a broker whose group coordinator is not ready yet
(a fresh cluster, or a coordinator moving after a broker restart) answers NOT_COORDINATOR.
librdkafka's admin OffsetFetch path dereferenced a missing consumer group on that answer and
killed the process with SIGSEGV (confluent-kafka 2.16 / librdkafka 2.16): `status`, lag and
apply's own offset ledger read offsets this way. The read runs in a child process here, so a
crash fails this test instead of killing the session."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests import kafka_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READ = textwrap.dedent(
    """
    import sys
    from bridge.runtime.settings import KafkaSettings
    from bridge.kafka.publisher import ensure_topics
    from bridge.kafka.reads import OffsetFetcher

    kafka = KafkaSettings(bootstrap_servers=sys.argv[1], partitions=3, replication_factor=1)
    ensure_topics(kafka, ["fresh"])
    tps = [(kafka.changes_topic("fresh"), p) for p in range(3)]
    with OffsetFetcher(kafka) as offsets:
        for group in ("ddb-bridge.apply.a", "ddb-bridge.apply.b", "ddb-bridge.apply.a"):
            print(sorted(offsets.committed(group, tps, timeout_s=10).items()), flush=True)
    """
)


def test_committed_offsets_on_a_fresh_broker_are_read_not_a_crash() -> None:
    with kafka_broker.apache_kafka() as broker:
        done = subprocess.run(
            [sys.executable, "-c", READ, broker.bootstrap],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    lines = done.stdout.splitlines()
    # Never committed: every partition is read and has no offset, for each group.
    expected = str([(("ddb.fresh.changes", p), None) for p in range(3)])
    assert lines == [expected] * 3
