"""The launchers in ddb_bridge/services/ as the test sessions use them: throw-away services are
killed, not shut down gracefully (a worker's teardown waited ~50 s on a broker's controlled
shutdown), and the session's one Kafka node also serves the secured listener, so no test
starts a second broker for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from ddb_bridge.services.cassandra_node import CassandraNode
from ddb_bridge.services.kafka_broker import KafkaBroker, KafkaNode
from ddb_bridge.services.kafka_secured import SaslSslListener
from ddb_bridge.services.processes import free_port, logged_process

pytestmark = pytest.mark.integration

# A killed child is reaped in milliseconds; a graceful stop waited up to 30 s per node.
FAST_S = 5.0

# A child that ignores SIGTERM, as a JVM in a long controlled shutdown does for a while.
STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


# The same, serving a port: what logged_process (moto, Tansu) waits for before it yields.
STUBBORN_SERVER = (
    "import signal, socket, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "server = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
    "time.sleep(600)\n"
)


def stubborn_child() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def timed(stop: Any) -> float:
    started = time.monotonic()
    stop()
    return time.monotonic() - started


def test_destroying_a_kafka_node_kills_it_and_deletes_its_data() -> None:
    node = KafkaNode()
    child = stubborn_child()
    node.proc = child
    try:
        took = timed(node.destroy)
        assert child.poll() is not None, "the node's process still runs"
        assert took < FAST_S, f"destroying the node took {took:.1f}s"
        assert not node.root.exists(), f"{node.root} was left behind"
    finally:
        child.kill()
        child.wait()


def test_stopping_a_cassandra_node_kills_it_and_deletes_its_data(tmp_path: Path) -> None:
    node = CassandraNode(tmp_path)
    child = stubborn_child()
    node.proc = child
    try:
        took = timed(node.stop)
        assert child.poll() is not None, "the node's process still runs"
        assert took < FAST_S, f"stopping the node took {took:.1f}s"
        assert not node.root.exists(), f"{node.root} was left behind"
    finally:
        child.kill()
        child.wait()


def test_a_logged_process_is_killed_when_its_context_exits() -> None:
    port = free_port()
    argv = [sys.executable, "-c", STUBBORN_SERVER, str(port)]
    with logged_process(argv, port, "stubborn") as child:
        started = time.monotonic()
    took = time.monotonic() - started
    assert child.poll() is not None, "the process still runs"
    assert took < FAST_S, f"leaving the context took {took:.1f}s"


def test_the_session_broker_serves_the_secured_listener(
    kafka_bootstrap: str, secured_broker: KafkaBroker, unique_name: Any
) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("an external Kafka cannot serve the tests' SASL_SSL listener")
    assert secured_broker.bootstrap == kafka_bootstrap, "a second broker was started"
    listener = secured_broker.extra_listener
    assert isinstance(listener, SaslSslListener)
    topic = unique_name("secured")
    plaintext = AdminClient({"bootstrap.servers": kafka_bootstrap})
    plaintext.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    # The same broker, seen through SCRAM over TLS, lists the topic made over plaintext.
    secured = AdminClient({"bootstrap.servers": listener.bootstrap, **listener.client_options()})
    assert topic in secured.list_topics(timeout=30).topics


def test_the_moto_server_is_the_one_of_this_interpreter() -> None:
    """The moto the project pins, not the first `moto_server` on PATH (another Python's
    older moto served the tests that way)."""
    from ddb_bridge.services.moto_server import moto_server

    with moto_server() as url:
        port = url.rsplit(":", 1)[1]
        serving = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if "-p" in argv and port in argv and any("moto" in arg for arg in argv):
                serving.append(argv)
        assert serving, f"no moto process serves {url}"
        assert all(argv[0] == sys.executable for argv in serving), serving


def test_moto_grants_a_conditional_write_to_one_of_many_racing_writers() -> None:
    """DynamoDB makes a conditional write atomic; moto's threaded server did not, and two
    back-fill processes both claimed one part (the launcher now answers one request at a
    time: ddb_bridge/services/moto_server_atomic.py). Measured with moto's own server: 10 of
    150 rounds of 12 racing claims granted a lease twice."""
    import threading

    import boto3
    from botocore.config import Config

    from ddb_bridge.services.moto_server import moto_server

    with moto_server() as url:
        config = Config(max_pool_connections=32, retries={"max_attempts": 1})
        db = boto3.client(
            "dynamodb",
            endpoint_url=url,
            region_name="us-east-1",
            config=config,
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        db.create_table(
            TableName="claims",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        twice = {}
        for round_ in range(100):
            key = f"part-{round_}"
            db.put_item(
                TableName="claims",
                Item={"pk": {"S": key}, "leaseCounter": {"N": "0"}, "state": {"S": "PENDING"}},
            )
            granted: list[int] = []
            start = threading.Barrier(12)

            # A claim as the lease table writes one (connectors/dynamodb/leases.py).
            def claim(
                writer: int,
                key: str = key,
                start: threading.Barrier = start,
                granted: list[int] = granted,
            ) -> None:
                start.wait()
                try:
                    db.update_item(
                        TableName="claims",
                        Key={"pk": {"S": key}},
                        UpdateExpression="SET leaseCounter = leaseCounter + :one, leaseOwner = :me",
                        ConditionExpression="leaseCounter = :seen AND "
                        "attribute_not_exists(leaseOwner) AND #s = :pending",
                        ExpressionAttributeNames={"#s": "state"},
                        ExpressionAttributeValues={
                            ":one": {"N": "1"},
                            ":me": {"S": str(writer)},
                            ":seen": {"N": "0"},
                            ":pending": {"S": "PENDING"},
                        },
                    )
                except db.exceptions.ConditionalCheckFailedException:
                    return
                granted.append(writer)

            writers = [threading.Thread(target=claim, args=(w,)) for w in range(12)]
            for t in writers:
                t.start()
            for t in writers:
                t.join()
            if len(granted) != 1:
                twice[key] = granted
        assert not twice, f"a claim granted to other than one writer: {twice}"
