"""A three-node Apache Kafka cluster on loopback, for tests that kill brokers.

Each node is broker and controller in one JVM (KRaft, a static quorum of all three), from the
same cached jars (kafka_jars.py) as the single node of kafka_broker.py. Internal topics are
replicated three times with min.insync.replicas=2, as on a production cluster; topics are
created by whoever uses the cluster. A node can be killed (SIGKILL) and started again on the
same ports and data dir, so a test can lose the leader of a partition, or the active
controller, and get it back.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from ddb_bridge.services.kafka_broker import KafkaNode, _cluster_id
from ddb_bridge.services.kafka_jars import run_tool
from ddb_bridge.services.processes import free_port


class KafkaCluster:
    """Three KRaft nodes; `bootstrap` lists all of them."""

    def __init__(self, size: int = 3) -> None:
        ports = [(free_port(), free_port()) for _ in range(size)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
        cluster_id = _cluster_id()
        self.nodes = {
            i + 1: KafkaNode(node_id=i + 1, ports=p, voters=voters, cluster_id=cluster_id)
            for i, p in enumerate(ports)
        }
        self.bootstrap = ",".join(node.bootstrap for node in self.nodes.values())

    def start(self, timeout_s: float = 180.0) -> None:
        # The formats at once: each is a JVM that mostly waits to start up and exit.
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(KafkaNode.format, self.nodes.values()))
        # All first: a node serves only once a quorum of controllers elected a leader.
        for node in self.nodes.values():
            node.start(timeout_s, wait=False)
        for node in self.nodes.values():
            node.wait_serving(timeout_s)
        self.wait_brokers(len(self.nodes), timeout_s)

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id]

    def kill(self, node_id: int) -> None:
        self.nodes[node_id].kill()

    def restart(self, node_id: int, timeout_s: float = 120.0) -> None:
        self.nodes[node_id].start(timeout_s)

    def running(self) -> list[int]:
        return [i for i, node in self.nodes.items() if node.running]

    def wait_brokers(self, count: int, timeout_s: float = 120.0) -> None:
        """Until the cluster's metadata lists `count` live brokers."""
        from confluent_kafka.admin import AdminClient

        live = ",".join(n.bootstrap for n in self.nodes.values() if n.running)
        admin = AdminClient({"bootstrap.servers": live})
        deadline = time.monotonic() + timeout_s
        seen = -1
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # a node still starting; the deadline decides
                seen = len(admin.list_topics(timeout=2).brokers)
                if seen == count:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the cluster lists {seen} brokers, not {count}, after {timeout_s}s")

    def leader(self, topic: str, partition: int = 0) -> int:
        """The node id leading `topic`'s `partition` now (-1: none)."""
        from confluent_kafka.admin import AdminClient

        live = ",".join(n.bootstrap for n in self.nodes.values() if n.running)
        metadata = AdminClient({"bootstrap.servers": live}).list_topics(topic, timeout=10)
        return int(metadata.topics[topic].partitions[partition].leader)

    def active_controller(self) -> int:
        """The node id of the active controller, the KRaft quorum's leader (a broker's
        DescribeCluster names a random broker in KRaft, so ask the quorum itself)."""
        live = next(n.bootstrap for n in self.nodes.values() if n.running)
        out = run_tool(
            "org.apache.kafka.tools.MetadataQuorumCommand",
            "--bootstrap-server",
            live,
            "describe",
            "--status",
        )
        found = re.search(r"LeaderId:\s*(-?\d+)", out)
        if found is None:
            raise RuntimeError(f"no LeaderId in the quorum's status:\n{out}")
        return int(found.group(1))

    def destroy(self) -> None:
        for node in self.nodes.values():
            node.destroy()


@contextlib.contextmanager
def kafka_cluster(size: int = 3, start_timeout_s: float = 180.0) -> Iterator[KafkaCluster]:
    """A formatted, running cluster; killed and deleted when the context exits."""
    cluster = KafkaCluster(size)
    try:
        cluster.start(start_timeout_s)
        yield cluster
    finally:
        cluster.destroy()
