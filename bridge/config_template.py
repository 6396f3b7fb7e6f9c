"""The commented example configuration that `ddb-bridge init` writes.

A test loads it through `load_settings`, so it cannot drift from the settings models.
"""

TEMPLATE = """\
# ddb-bridge configuration. Every key can be overridden by an environment variable
# DDB_BRIDGE__SECTION__KEY, e.g. DDB_BRIDGE__KAFKA__BOOTSTRAP_SERVERS=broker:9092.

[aws]
region = "us-east-1"
# endpoint_url = "http://127.0.0.1:8000"   # moto, DynamoDB Local, LocalStack, Alternator
# Credentials come from the standard AWS chain (env, ~/.aws, instance role).

[kafka]
bootstrap_servers = "localhost:9092"
topic_prefix = "ddb."                    # topic = <prefix><table>.changes, DLQ <prefix><table>.dlq
partitions = 12
replication_factor = 3
retention_ms = -1                        # -1 keeps every event forever: Kafka replaces the 24 h
# schema_registry_url = "http://localhost:8081"  # Confluent framing, subjects <topic>-value
# basic auth "user:password"; or env DDB_BRIDGE__KAFKA__SCHEMA_REGISTRY_USER_INFO
# schema_registry_user_info = "key:secret"
[kafka.extra]                            # passed to librdkafka as is
# "security.protocol" = "SASL_SSL"
# "sasl.password" = "..."                # secret-named options are masked by `config show`
[kafka.schema_registry_extra]            # passed to confluent-kafka's SchemaRegistryClient
# "ssl.ca.location" = "/etc/ssl/registry-ca.pem"

[[tables]]
name = "orders"                          # source table; its key schema comes from DescribeTable
# target_table = "orders"                # optional rename at the target

[stream]
lease_table = "ddb-bridge-leases"
poll_interval_ms = 250
initial_position = "TRIM_HORIZON"        # or LATEST

[backfill]
skew_margin_s = 5                        # clock-skew allowance below the back-fill start time
segments = 8
max_items_per_second = 0                 # 0 = unlimited

[apply]
target = "local"                         # default target for `apply` and `verify`
batch_size = 500
batch_window_ms = 200

[targets.local]
type = "sqlite"                          # sqlite | postgres | scylla | alternator | null
path = "bridge.db"

# [targets.pg]
# type = "postgres"
# dsn = "postgresql://localhost/migrated"

# [targets.scylla]
# type = "scylla"
# hosts = ["127.0.0.1"]
# keyspace = "migrated"

# [targets.alternator]
# type = "alternator"
# endpoint_url = "http://127.0.0.1:8000"

[metrics]
port = 9464
"""
