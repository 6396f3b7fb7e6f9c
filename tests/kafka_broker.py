"""The tests' Apache Kafka: the demo's launcher (ddb_bridge/demo/kafka_broker.py), shared.

Kept as a module of its own so test code imports the broker from one place in tests/.
"""

from ddb_bridge.demo.kafka_broker import (
    CONSUMER_GROUP_COMMAND,
    FETCHED,
    KAFKA_VERSION,
    POM,
    KafkaBroker,
    KafkaNode,
    MissingTool,
    apache_kafka,
    check_tools,
    ensure_jars,
    jars_cached,
    jars_dir,
    jars_stamp,
    java_argv,
    run_tool,
)

__all__ = [
    "CONSUMER_GROUP_COMMAND",
    "FETCHED",
    "KAFKA_VERSION",
    "POM",
    "KafkaBroker",
    "KafkaNode",
    "MissingTool",
    "apache_kafka",
    "check_tools",
    "ensure_jars",
    "jars_cached",
    "jars_dir",
    "jars_stamp",
    "java_argv",
    "run_tool",
]
