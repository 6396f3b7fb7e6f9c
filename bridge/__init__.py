"""ddb-bridge: move a live DynamoDB table to another database through Kafka.

The core package: change events, the DynamoDB type codec, versions, the Avro codec, the
Kafka publisher, settings, the sink and source protocols, and the apply and verify engines.
It knows nothing of boto3, SQL or CQL drivers: those live in `connectors`, and the two are
wired together by the composition root, `ddb_bridge` (the command line and the demo).
"""

__version__ = "0.1.0"
