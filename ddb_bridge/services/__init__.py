"""Launchers of the real services that the demo, the tests and the benchmarks run: one module
per service, each starting child processes on free loopback ports with throwaway data.

- `processes`: free ports, waiting for a port, stopping a child, a logged child process.
- `kafka_jars`: Apache Kafka's jars from Maven Central (cached), its Java and its tools.
- `kafka_broker`: one Apache Kafka KRaft node (broker and controller in one JVM).
- `kafka_cluster`: three such nodes in one quorum, for tests that kill brokers.
- `kafka_secured`: a SASL_SSL (SCRAM over TLS) listener that a node serves beside plaintext.
- `tansu`: the pip-installed Tansu broker, the demo's stand-in where Java cannot run.
- `moto_server`: a moto server (DynamoDB, DynamoDB Streams, S3).
- `postgres`: a throwaway PostgreSQL cluster.
- `cassandra_node`: one Apache Cassandra node, the CQL server of the tests.
- `names`: unique names for what a run creates on shared services.

Part of the composition root: it may import `bridge` (errors, settings) and nothing else of
the project; `ddb_bridge.demo` and the test and benchmark code import it.
"""
