"""ddb-bridge: move a live DynamoDB table to another database through Kafka.

The core package: change events, the DynamoDB type codec, versions, the Avro codec, the
Kafka publisher, settings and the command line. It knows nothing of boto3 or CQL details;
those live in `connectors`, reached through `bridge.registry`.
"""

__version__ = "0.1.0"
