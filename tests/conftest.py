"""Real services and per-test unique names. The launchers live in ddb_bridge/services/ (shared
with the demo and the benchmarks); each service starts the first time a test on this worker
asks for it, and is killed and deleted when the worker ends, or, for the heavy services a group
of tests shares (Cassandra, the three-broker cluster), when the group's tests are done
(tests/support/service_groups.py)."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from ddb_bridge.services import kafka_jars, names
from ddb_bridge.services.kafka_broker import KafkaBroker, apache_kafka
from ddb_bridge.services.kafka_cluster import KafkaCluster
from ddb_bridge.services.kafka_cluster import kafka_cluster as kafka_cluster_of
from ddb_bridge.services.kafka_secured import SaslSslListener, make_listener
from ddb_bridge.services.moto_server import moto_server
from ddb_bridge.services.postgres import PostgresCluster, postgres_bindir
from ddb_bridge.services.processes import free_port

# Fixtures some test files share (`serve`: the dashboard server on a free port); the marks by
# folder and the services a group of tests shares (tests/support/service_groups.py); pytester,
# which the test of those groups runs pytest with.
pytest_plugins = ["tests.support.dashboard", "tests.support.service_groups", "pytester"]

# The daemons serve /metrics on fixed ports by default; tests run many daemons at once (and
# several test sessions share a host), so they are off unless a test asks for a port.
os.environ.setdefault("DDB_BRIDGE__METRICS__PORT", "0")

# What each session-scoped service turned out to be, for the run's closing summary.
STARTED: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, what in STARTED.items():
        terminalreporter.write_line(f"{name}: {what}")


def _require_kafka_jars() -> None:
    missing = None
    try:
        kafka_jars.ensure_jars()
    except kafka_jars.MissingTool as exc:
        missing = f"{exc}; or point KAFKA_BOOTSTRAP_SERVERS at a running Kafka"
    if missing:  # outside the except: the message alone, not a chained traceback
        pytest.fail(missing, pytrace=False)


def _secured_listener(tmp_path_factory: pytest.TempPathFactory) -> SaslSslListener:
    return make_listener(tmp_path_factory.mktemp("tls"), free_port())


@pytest.fixture(scope="session")
def session_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker | None]:
    """The session's Apache Kafka node, serving a SASL_SSL listener (kafka_secured.py) beside
    its plaintext one, so the secured tests need no broker of their own; None when
    KAFKA_BOOTSTRAP_SERVERS names an existing Kafka."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        STARTED["kafka"] = f"KAFKA_BOOTSTRAP_SERVERS={external} (not started by the tests)"
        yield None
        return
    # Apache Kafka, never the Tansu stand-in: tests check the bridge against the real broker.
    _require_kafka_jars()
    with apache_kafka(extra_listener=_secured_listener(tmp_path_factory)) as broker:
        STARTED["kafka"] = broker.describe()
        yield broker
        # Clients no test holds any more are destroyed now, while the broker still answers;
        # left to the interpreter's exit they log "Connection refused" after the summary.
        gc.collect()


@pytest.fixture(scope="session")
def kafka_bootstrap(session_broker: KafkaBroker | None) -> str:
    if session_broker is None:
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    return session_broker.bootstrap


@pytest.fixture(scope="session")
def secured_broker(
    session_broker: KafkaBroker | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    """A broker with a SASL_SSL listener (`extra_listener`) and a plaintext one (`bootstrap`):
    the session broker, or, when the session's Kafka is an external one we cannot add a
    listener to, an Apache Kafka node of its own."""
    if session_broker is not None:
        yield session_broker
        return
    _require_kafka_jars()
    with apache_kafka(extra_listener=_secured_listener(tmp_path_factory)) as broker:
        yield broker
        gc.collect()


@contextmanager
def _three_brokers() -> Iterator[KafkaCluster]:
    try:
        kafka_jars.ensure_jars()
    except kafka_jars.MissingTool as exc:
        pytest.fail(str(exc), pytrace=False)
    started = time.monotonic()
    with kafka_cluster_of(3) as cluster:
        STARTED["kafka cluster"] = (
            f"Apache Kafka {kafka_jars.KAFKA_VERSION}, 3 KRaft nodes on {cluster.bootstrap}, "
            f"started in {time.monotonic() - started:.1f}s"
        )
        yield cluster
        gc.collect()


@pytest.fixture
def kafka_cluster() -> KafkaCluster:
    """Three Apache Kafka nodes (KRaft) on loopback, started the first time a test asks for
    them and kept for the tests of its group (service_groups.py); a test may kill and restart
    nodes, and leaves every node running when it ends."""
    from tests.support.service_groups import GROUP_SERVICES  # registered as a plugin above

    return GROUP_SERVICES.get("kafka-cluster", _three_brokers)


@pytest.fixture
def cluster(kafka_cluster: KafkaCluster) -> Iterator[KafkaCluster]:
    """The three-node cluster, with every node running again after the test."""
    yield kafka_cluster
    for node_id in kafka_cluster.nodes:
        if node_id not in kafka_cluster.running():
            kafka_cluster.restart(node_id)
    kafka_cluster.wait_brokers(len(kafka_cluster.nodes))


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    external = os.environ.get("DYNAMODB_ENDPOINT_URL")
    if external:
        yield external
        return
    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster | None]:
    """A restartable local cluster (None when PG_DSN points at an external server)."""
    if os.environ.get("PG_DSN"):
        yield None
        return
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found and PG_DSN not set")
    cluster = PostgresCluster(bindir)
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def pg_dsn(pg_cluster: PostgresCluster | None) -> str:
    return os.environ.get("PG_DSN") or pg_cluster.dsn  # type: ignore[union-attr]


@pytest.fixture
def unique_name() -> Any:
    return names.unique


@pytest.fixture
def ddb_client(dynamodb_endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")


@pytest.fixture
def streams_client(dynamodb_endpoint: str) -> Any:
    return boto3.client("dynamodbstreams", endpoint_url=dynamodb_endpoint, region_name="us-east-1")


@pytest.fixture
def s3_client(dynamodb_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=dynamodb_endpoint, region_name="us-east-1")


@contextmanager
def _cql_node() -> Iterator[Any]:
    from ddb_bridge.services import cassandra_node

    external = os.environ.get("SCYLLA_HOSTS")
    if external:
        port = int(os.environ.get("SCYLLA_PORT", "9042"))
        STARTED["cql"] = f"SCYLLA_HOSTS={external} port {port} (not started by the tests)"
        yield cassandra_node.CqlEndpoint(external.split(","), port, STARTED["cql"])
        return
    missing = cassandra_node.missing_tools()
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: needed to fetch and run Cassandra for the CQL "
            "tests (.ci/run installs them), or set SCYLLA_HOSTS",
            pytrace=False,
        )
    with cassandra_node.running_node() as endpoint:
        STARTED["cql"] = endpoint.describe()
        yield endpoint


@pytest.fixture
def cql_endpoint() -> Any:
    """A CQL server for the CQL sink tests: ScyllaDB at SCYLLA_HOSTS (port SCYLLA_PORT) when
    set, else one Apache Cassandra node (ddb_bridge/services/cassandra_node.py), started the
    first time a test asks and kept for the tests of its group (service_groups.py)."""
    from tests.support.service_groups import GROUP_SERVICES  # registered as a plugin above

    return GROUP_SERVICES.get("cql", _cql_node)
