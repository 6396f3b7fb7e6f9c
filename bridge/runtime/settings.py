"""Settings as data: one model per concern, read from a TOML file and the environment.

Precedence (highest first): `DDB_BRIDGE__SECTION__KEY` environment variables, the TOML file
(`--config PATH`, else `$DDB_BRIDGE_CONFIG`, else `./bridge.toml` when it exists), defaults.
Nothing here reads the environment at import time: `load_settings` does, when called.
Unknown keys are errors, so a misspelled option is reported instead of silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bridge.model.errors import ConfigError
from bridge.runtime import redact

ENV_PREFIX = "DDB_BRIDGE__"
CONFIG_ENV = "DDB_BRIDGE_CONFIG"
DEFAULT_CONFIG = Path("bridge.toml")


# Marks a map of client properties whose names are dotted (librdkafka's `sasl.password`):
# an environment variable names such a key with underscores, `..._EXTRA__SASL_PASSWORD`.
DOTTED_KEYS: JsonDict = {"env_keys": "dotted"}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AwsEndpoints(Section):
    """One endpoint per AWS service (VPC interface endpoints); each falls back to
    [aws] endpoint_url, then to the region's public endpoint."""

    dynamodb: str | None = Field(
        None,
        description="DynamoDB endpoint (source table, leases, back-fill Scan)",
        examples=["https://vpce-0abc-dynamodb.us-east-1.vpce.amazonaws.com"],
    )
    dynamodbstreams: str | None = Field(
        None,
        description="DynamoDB Streams endpoint",
        examples=["https://streams.dynamodb.us-east-1.amazonaws.com"],
    )
    s3: str | None = Field(
        None,
        description="S3 endpoint (export back-fill, audit archive)",
        examples=["https://bucket.vpce-0abc-s3.s3.us-east-1.vpce.amazonaws.com"],
    )
    kinesis: str | None = Field(
        None,
        description="Kinesis Data Streams endpoint",
        examples=["https://vpce-0abc-kinesis.kinesis.us-east-1.vpce.amazonaws.com"],
    )
    sts: str | None = Field(
        None,
        description="STS endpoint, where role_arn is assumed",
        examples=["https://vpce-0abc-sts.sts.us-east-1.vpce.amazonaws.com"],
    )


AwsService = Literal["dynamodb", "dynamodbstreams", "s3", "kinesis", "sts"]

# STS's own limits on AssumeRole: RoleSessionName's characters and length, DurationSeconds.
ROLE_SESSION_NAME = r"^[\w+=,.@-]{2,64}$"


class AwsSettings(Section):
    region: str = Field("us-east-1", description="AWS region of the source table")
    endpoint_url: str | None = Field(
        None,
        description="endpoint of every AWS service the bridge calls unless [aws.endpoints] "
        "names one for it: moto, DynamoDB Local, LocalStack, Alternator; unset, the region's "
        "AWS endpoints",
        examples=["http://127.0.0.1:8000"],
    )
    endpoints: AwsEndpoints = Field(
        default_factory=AwsEndpoints,
        description="per-service endpoints (VPC endpoints), each overriding endpoint_url",
    )
    access_key_id: SecretStr | None = Field(
        None,
        description="access key id; with secret_access_key, overrides the standard AWS "
        "credential chain (environment, ~/.aws, instance role), which is used when unset",
    )
    secret_access_key: SecretStr | None = Field(
        None, description="secret access key, used only together with access_key_id"
    )
    session_token: SecretStr | None = Field(
        None,
        description="session token of temporary keys, used only together with access_key_id "
        "and secret_access_key",
    )
    profile: str | None = Field(
        None,
        description="named profile of ~/.aws/config to take credentials from",
        examples=["migration"],
    )
    role_arn: str | None = Field(
        None,
        pattern=r"^arn:[\w-]+:iam::\d{12}:role/.+$",
        description="IAM role every AWS client (and MSK IAM auth) assumes with the credentials "
        "above (static keys, else profile, else the default chain); refreshed before it expires",
        examples=["arn:aws:iam::123456789012:role/ddb-bridge"],
    )
    external_id: str | None = Field(
        None,
        description="ExternalId the role's trust policy requires, with role_arn",
        examples=["migration-2026"],
    )
    role_session_name: str | None = Field(
        None,
        pattern=ROLE_SESSION_NAME,
        description="RoleSessionName of the assumed role (CloudTrail shows it); unset, "
        "ddb-bridge-<command>",
        examples=["ddb-bridge-orders"],
    )
    role_duration_s: int = Field(
        3600,
        ge=900,
        le=43200,
        description="lifetime asked for the assumed role's credentials (at most the role's "
        "maximum session duration); renewed 15 minutes before they expire (a third of a "
        "shorter session)",
    )

    @model_validator(mode="after")
    def _parts_that_need_another(self) -> AwsSettings:
        if self.session_token is not None and not (self.access_key_id and self.secret_access_key):
            raise ValueError(
                "aws.session_token is used only with aws.access_key_id and "
                "aws.secret_access_key: set them too, or remove it"
            )
        for name in ("external_id", "role_session_name"):
            if getattr(self, name) is not None and self.role_arn is None:
                raise ValueError(f"aws.{name} is used only with aws.role_arn: set it, or remove it")
        return self

    def endpoint(self, service: AwsService) -> str | None:
        """Where `service` is called: its own endpoint, else endpoint_url, else AWS's."""
        own: str | None = getattr(self.endpoints, service)
        return own or self.endpoint_url

    def session_name(self) -> str:
        """The role's session name: as set, else "ddb-bridge-<command>"."""
        return self.role_session_name or f"ddb-bridge-{_PROCESS['command']}"


_PROCESS = {"command": "process"}


def name_the_command(command: str) -> None:
    """Which command this process runs, for names that show it (the role's session name)."""
    _PROCESS["command"] = command


class KafkaSettings(Section):
    bootstrap_servers: str = Field(
        "localhost:9092", description="Kafka brokers, host:port[,host:port...]"
    )
    topic_prefix: str = Field(
        "ddb.",
        description="change topic <prefix><table>.changes, dead letters <prefix><table>.dlq",
    )
    partitions: int = Field(12, ge=1, description="partitions of the topics the bridge creates")
    connect_timeout_s: float = Field(
        10.0,
        gt=0,
        description="how long a command tries the bootstrap servers at start before it stops "
        "with exit 75 (Kafka unreachable)",
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        description="replication factor of the topics the bridge creates; unset, "
        "min(3, brokers in the cluster)",
        examples=[3],
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of the topics the bridge creates: how many replicas "
        "must hold an event before Kafka acknowledges it (producers use acks=all); unset, "
        "min(2, replication factor)",
        examples=[2],
    )
    retention_ms: int = Field(
        -1,
        description="retention of the topics the bridge creates; -1 keeps events forever "
        "(Kafka, not the stream's 24 hours, then holds the full history)",
    )
    schema_registry_url: str | None = Field(
        None,
        description="Schema Registry: Confluent wire format for every producer, schema "
        "registered under <topic>-value; unset, Avro single-object framing",
        examples=["http://localhost:8081"],
    )
    schema_registry_user_info: SecretStr | None = Field(
        None,
        description='basic auth for the registry, "user:password" (a Confluent Cloud '
        "API key:secret)",
    )
    schema_registry_auto_register: bool = Field(
        True,
        description="register the bridge's change-event schema under <topic>-value at start; "
        "false for a registry that refuses registration: producers then use the latest "
        "version registered there and stop at start (exit 2) when there is none, or when it "
        "differs from the bridge's schema on the wire (Avro Parsing Canonical Form)",
    )
    schema_registry_extra: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        json_schema_extra=DOTTED_KEYS,
        description="passed to confluent-kafka's SchemaRegistryClient as is (ssl.*, timeout)",
        examples=[{"ssl.ca.location": "/etc/ssl/registry-ca.pem"}],
    )
    linger_ms: int = Field(
        20, ge=0, description="producer linger.ms: how long to wait to fill a batch"
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "lz4", description="producer compression.type"
    )
    extra: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        json_schema_extra=DOTTED_KEYS,
        description="passed to librdkafka as is (security.protocol, SASL, TLS); options "
        "whose name says they hold a secret are masked by `ddb-bridge config show`",
        examples=[{"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}],
    )
    auth: Literal["none", "oauthbearer_oidc", "aws_msk_iam"] = Field(
        "none",
        description="how every Kafka client authenticates beyond [kafka.extra]: "
        '"oauthbearer_oidc" (SASL/OAUTHBEARER, tokens from an OAuth client-credentials '
        'endpoint: Confluent Cloud, Strimzi, Keycloak ...), "aws_msk_iam" (Amazon MSK with '
        "IAM, tokens signed with the [aws] credentials); both use SASL_SSL unless "
        "[kafka.extra] sets security.protocol",
    )
    oauth_token_url: str | None = Field(
        None,
        description='auth = "oauthbearer_oidc": the token endpoint of the identity provider',
        examples=["https://idp.example.com/oauth2/token"],
    )
    oauth_client_id: str | None = Field(
        None, description='auth = "oauthbearer_oidc": the client id', examples=["ddb-bridge"]
    )
    oauth_client_secret: SecretStr | None = Field(
        None, description='auth = "oauthbearer_oidc": the client secret'
    )
    oauth_scope: str | None = Field(
        None,
        description='auth = "oauthbearer_oidc": the scope asked for, if the IdP wants one',
        examples=["kafka"],
    )
    msk_region: str | None = Field(
        None,
        description='auth = "aws_msk_iam": the region of the MSK cluster; unset, [aws] region',
        examples=["eu-west-1"],
    )
    # The [aws] section whose credential chain signs MSK IAM tokens: handed over by Settings
    # (below), so the Kafka clients, built from this section alone, can reach it.
    _aws: AwsSettings | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _oidc_complete(self) -> KafkaSettings:
        if self.auth == "oauthbearer_oidc":
            needed = ("oauth_token_url", "oauth_client_id", "oauth_client_secret")
            missing = [f"kafka.{name}" for name in needed if not getattr(self, name)]
            if missing:
                raise ValueError(
                    f'kafka.auth = "oauthbearer_oidc" needs {", ".join(missing)} '
                    "(the identity provider's token endpoint and this client's credentials)"
                )
        return self

    def signing_aws(self) -> AwsSettings:
        """The [aws] section whose credentials sign MSK IAM tokens (defaults when this
        section was made on its own)."""
        return self._aws if self._aws is not None else AwsSettings()

    @model_validator(mode="after")
    def _min_isr_within_replicas(self) -> KafkaSettings:
        rf, min_isr = self.replication_factor, self.min_insync_replicas
        if rf is not None and min_isr is not None and min_isr > rf:
            raise ValueError(
                f"kafka.min_insync_replicas ({min_isr}) is above kafka.replication_factor "
                f"({rf}): no write could ever be acknowledged"
            )
        return self

    def changes_topic(self, table: str) -> str:
        return f"{self.topic_prefix}{table}.changes"

    def dlq_topic(self, table: str) -> str:
        return f"{self.topic_prefix}{table}.dlq"


class TableSettings(Section):
    name: str = Field(description="source DynamoDB table", examples=["orders"])
    target_table: str | None = Field(
        None,
        description="table name at the target; unset, the source name",
        examples=["orders_v2"],
    )
    hash_key: str | None = Field(
        None,
        description="partition key attribute; declare the key schema to run `apply` and "
        "`schema` without access to the source account (unset: from DescribeTable)",
        examples=["id"],
    )
    hash_key_type: Literal["S", "N", "B"] = Field("S", description="type of hash_key")
    range_key: str | None = Field(
        None, description="sort key attribute, if the table has one", examples=["created_at"]
    )
    range_key_type: Literal["S", "N", "B"] = Field("S", description="type of range_key")
    ttl_attribute: str | None = Field(
        None,
        description="TTL attribute (epoch seconds), used with a declared hash_key; otherwise "
        "read with DescribeTimeToLive",
        examples=["expires_at"],
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="typed CQL columns for non-key attributes: attribute name -> CQL type",
        examples=[{"total": "decimal", "status": "text"}],
    )
    stream_only: bool = Field(
        False,
        description="a stream-only migration (no back-fill): every item expires within "
        "item_lifetime_s of its last write, so once capture has run that long the target "
        "holds every live item; `status` judges cut-over readiness by that instead of a "
        "finished back-fill",
    )
    item_lifetime_s: int | None = Field(
        None,
        ge=1,
        description="for stream_only: the longest an item lives after its last write (its "
        "TTL horizon), in seconds",
        examples=[604800],
    )
    kinesis_stream: str | None = Field(
        None,
        description='with [stream] transport = "kinesis": the Kinesis data stream this '
        "table's changes are streamed to (Kinesis Data Streams for DynamoDB); unset, "
        "[stream] stream_name",
        examples=["orders-changes"],
    )

    @model_validator(mode="after")
    def _stream_only_has_a_lifetime(self) -> TableSettings:
        # Checked at load, by every command: `status` alone would find it, maybe days in.
        if self.stream_only and self.item_lifetime_s is None:
            raise ValueError(
                f"table {self.name}: stream_only = true needs item_lifetime_s (how long an "
                "item lives after its last write), or capture can never be known complete"
            )
        return self

    @property
    def target_name(self) -> str:
        return self.target_table or self.name


class StreamSettings(Section):
    transport: Literal["dynamodb", "kinesis"] = Field(
        "dynamodb",
        description="where `ddb-bridge stream` reads the changes: the table's DynamoDB "
        "stream (24 h retention), or the Kinesis data stream the table streams to (Kinesis "
        "Data Streams for DynamoDB, retention up to a year; set stream_name)",
    )
    stream_name: str | None = Field(
        None,
        description='with transport = "kinesis": the Kinesis data stream (name or ARN) of '
        "the tables that set no [[tables]] kinesis_stream",
        examples=["orders-changes"],
    )
    lease_table: str = Field(
        "ddb-bridge-leases",
        description="DynamoDB table holding shard leases, checkpoints and back-fill runs "
        "(created when missing)",
    )
    poll_interval_ms: int = Field(
        250,
        ge=0,
        description="pause before the next GetRecords call on a shard whose last page was "
        "empty after records (the idle backoff's first step; a page with records resets it)",
    )
    idle_poll_max_ms: int = Field(
        5_000,
        ge=0,
        description="longest pause between GetRecords calls on an idle shard: the pause "
        "doubles from poll_interval_ms on each empty page up to this (DynamoDB Streams bills "
        "every call); also the longest extra delay before an idle table's next change is read",
    )
    max_concurrent_requests: int = Field(
        8,
        ge=1,
        le=32,
        description="reader threads shared by every shard of every table: at most this many "
        "GetRecords/GetShardIterator calls (and pages of records) at once (at most 32, the "
        "AWS client's connection pool)",
    )
    max_in_flight_mb: int = Field(
        64,
        ge=16,
        description="producer memory for records read but not yet acknowledged by Kafka, "
        "across all tables; reading pauses while it is full (unless [kafka.extra] sets "
        "queue.buffering.max.kbytes)",
    )
    shard_sync_interval_s: float = Field(
        300,
        gt=0,
        description="every stream is listed in full (DescribeStream) once per this period, "
        "spread evenly over it, to find shards not met as a child of an ended one and to "
        "clean up finished leases; children of ended shards are found at once",
    )
    initial_position: Literal["TRIM_HORIZON", "LATEST"] = Field(
        "TRIM_HORIZON",
        description="where a shard without a checkpoint starts: its oldest record or new ones",
    )
    lease_duration_ms: int = Field(
        10_000,
        ge=1000,
        description="a lease not renewed for this long can be taken by another worker",
    )
    worker_id: str | None = Field(
        None,
        description="lease owner name, unique per process; unset, host-pid-random",
        examples=["stream-1"],
    )
    continue_on_data_loss: bool = Field(
        False,
        description="when records of a shard were trimmed before being read, record the gap "
        "and stream the other shards instead of stopping",
    )

    @model_validator(mode="after")
    def _idle_backoff_grows(self) -> StreamSettings:
        if self.idle_poll_max_ms < self.poll_interval_ms:
            raise ValueError(
                f"stream.idle_poll_max_ms ({self.idle_poll_max_ms}) is below "
                f"stream.poll_interval_ms ({self.poll_interval_ms}): the idle backoff starts "
                "at poll_interval_ms and grows to idle_poll_max_ms"
            )
        return self


class BackfillSettings(Section):
    skew_margin_s: int = Field(
        5, ge=0, description="clock-skew allowance below the back-fill start time, in seconds"
    )
    segments: int = Field(8, ge=1, description="parallel Scan segments of a new run")
    max_items_per_second: float = Field(
        0, ge=0, description="read budget per process, items per second; 0 = unlimited"
    )
    max_rcu_per_second: float = Field(
        0, ge=0, description="read-capacity budget per process; 0 = unlimited"
    )
    skip_expired_ttl: bool = Field(True, description="skip (and count) items whose TTL has passed")
    processes: int = Field(
        0,
        ge=0,
        description="processes of one `backfill` command on this machine, sharing the run's "
        "parts (each reads, parses and publishes its own); 0 = one per CPU (the cgroup CPU "
        "quota, else the cores)",
    )


class ApplySettings(Section):
    target: str = Field(
        "local",
        description="the [targets.NAME] that `apply` and `verify` use by default; unset "
        "with a single target configured, that target",
    )
    batch_size: int = Field(500, ge=1, description="events per batch written to the target")
    batch_window_ms: int = Field(
        50,
        ge=1,
        description="longest wait to fill a batch; a trickle of records (fewer than "
        "batch_size) waits this long before its write, so it adds to end-to-end latency",
    )
    max_retries: int = Field(
        0, ge=0, description="retries of a batch after a transient error; 0 = forever"
    )
    retry_backoff_ms: int = Field(200, ge=1, description="first pause between retries")
    retry_backoff_max_ms: int = Field(
        30_000, ge=1, description="longest pause between retries (the pause doubles)"
    )
    session_timeout_ms: int = Field(
        30_000,
        ge=1000,
        description="consumer-group liveness: a crashed worker's partitions move to the "
        "others after this long",
    )
    heartbeat_interval_ms: int = Field(
        3_000, ge=100, description="consumer-group heartbeat interval"
    )
    commit_interval_ms: int = Field(
        1_000, ge=100, description="how often offsets of written batches are committed"
    )
    data_dir: str | None = Field(
        None,
        description="Faust's data directory; unset, a temporary directory removed on exit",
        examples=["/var/lib/ddb-bridge/apply"],
    )


class SqliteTarget(Section):
    type: Literal["sqlite"] = Field(description="a SQLite database file")
    path: str = Field("bridge.db", description="database file (created when missing)")


class PostgresTarget(Section):
    type: Literal["postgres"] = Field(description="a PostgreSQL database")
    dsn: SecretStr = Field(
        SecretStr("postgresql://localhost/migrated"),
        description="libpq connection string; default: database migrated on the local server",
        examples=["postgresql://USER:<secret>@HOST:5432/DB"],
    )
    schema_name: str = Field("public", description="PostgreSQL schema of the target tables")


class ScyllaTarget(Section):
    type: Literal["scylla"] = Field(description="ScyllaDB or Cassandra, through CQL")
    hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1"], description="contact points")
    port: int = Field(9042, description="CQL native protocol port")
    keyspace: str = Field("migrated", description="keyspace of the target tables")
    replication: str = Field(
        "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}",
        description="replication map for a keyspace `--create-schema` creates",
    )
    consistency: str = Field("LOCAL_QUORUM", description="consistency level of every write")
    username: str | None = Field(None, description="CQL user", examples=["bridge"])
    password: SecretStr | None = Field(None, description="password of username")
    tls_ca_file: str | None = Field(
        None,
        description="CA certificate (PEM); setting it or tls_cert_file turns TLS on",
        examples=["/etc/ssl/scylla-ca.pem"],
    )
    tls_cert_file: str | None = Field(
        None,
        description="client certificate (PEM) for mutual TLS",
        examples=["/etc/ssl/bridge.pem"],
    )
    tls_key_file: str | None = Field(
        None, description="key of tls_cert_file (PEM)", examples=["/etc/ssl/bridge.key"]
    )
    tls_check_hostname: bool = Field(True, description="check the server certificate's host name")
    concurrency: int = Field(64, ge=1, description="write requests in flight per batch")
    batch_rows: int = Field(
        10,
        ge=1,
        le=65535,
        description="rows per CQL request: rows owned by the same replicas go in one "
        "UNLOGGED batch of at most this many (each row keeps its own USING TIMESTAMP); 1 "
        "sends a request per row. Cassandra warns above 10 partitions in an unlogged batch "
        "(unlogged_batch_across_partitions_warn_threshold)",
    )
    batch_bytes: int = Field(
        4096,
        ge=1,
        description="bound value bytes per UNLOGGED batch: a batch closes before it passes "
        "this; a larger row goes alone. Keep it under the server's batch_size_warn_threshold "
        "(Cassandra: 5 KiB, refusing at 50 KiB; ScyllaDB: 128 KiB), which also counts a few "
        "bytes per cell",
    )
    local_dc: str | None = Field(
        None,
        description="data centre to route requests to; unset, the driver's default",
        examples=["dc1"],
    )
    map_column: str = Field(
        "attrs",
        description="the catch-all map<text, text> column holding every attribute without "
        "a typed column",
    )
    request_timeout_s: float = Field(10.0, gt=0, description="timeout of one CQL request")


class AlternatorTarget(Section):
    type: Literal["alternator"] = Field(
        description="a DynamoDB API: ScyllaDB Alternator, or another DynamoDB account/region"
    )
    endpoint_url: str | None = Field(
        None,
        description="DynamoDB API endpoint; unset, the region's AWS endpoint",
        examples=["http://127.0.0.1:8000"],
    )
    region: str = Field("us-east-1", description="region of the target")
    access_key_id: SecretStr | None = Field(
        None,
        description="access key id; unset, the standard AWS credential chain",
    )
    secret_access_key: SecretStr | None = Field(
        None, description="secret access key, used only together with access_key_id"
    )
    version_attribute: str = Field(
        "_ddb_bridge_version",
        description="attribute holding each item's version (writes are conditional on it)",
    )
    tombstone_attribute: str = Field(
        "_ddb_bridge_deleted",
        description="attribute marking a deleted item kept as a tombstone",
    )
    concurrency: int = Field(
        16,
        ge=1,
        description="conditional PutItems in flight per batch (BatchWriteItem cannot carry "
        "conditions)",
    )


class NullTarget(Section):
    """Discards everything: for benchmarks and for trying the pipeline."""

    type: Literal["null"] = Field(
        description="discards everything: for benchmarks and for trying the pipeline"
    )


TargetSettings = Annotated[
    SqliteTarget | PostgresTarget | ScyllaTarget | AlternatorTarget | NullTarget,
    Field(discriminator="type"),
]


_DEFAULT_TARGETS: dict[str, TargetSettings] = {"local": SqliteTarget(type="sqlite")}


class MetricsSettings(Section):
    port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="base port of /metrics and the probes: `stream` serves on it, `apply` on "
        "port+1, `audit` on port+2 (a second worker of one daemon on a host: --metrics-port); "
        "0 turns the endpoint off",
    )
    host: str = Field(
        "127.0.0.1",
        description="address /metrics and /healthz listen on (0.0.0.0 for a Prometheus "
        "on another host or container)",
    )
    stall_s: float = Field(
        60.0,
        gt=0,
        description="/livez answers 503 when the daemon's main loop made no progress for "
        "this many seconds while waiting for nothing (a broker outage is a wait); /readyz "
        "and /healthz then too",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    aws: AwsSettings = Field(
        default_factory=AwsSettings, description="the source account (DynamoDB, Streams, S3)"
    )
    kafka: KafkaSettings = Field(
        default_factory=KafkaSettings, description="the Kafka cluster holding the change topics"
    )
    tables: list[TableSettings] = Field(
        default_factory=list,
        description="the source tables to migrate, one [[tables]] entry each",
    )
    stream: StreamSettings = Field(
        default_factory=StreamSettings, description="`ddb-bridge stream`: the change capture"
    )
    backfill: BackfillSettings = Field(
        default_factory=BackfillSettings,
        description="`ddb-bridge backfill`: copying the existing items",
    )
    apply: ApplySettings = Field(
        default_factory=ApplySettings,
        description="`ddb-bridge apply`: writing the change topics to a target",
    )
    targets: dict[str, TargetSettings] = Field(
        default_factory=lambda: dict(_DEFAULT_TARGETS),
        description="target databases, each a [targets.NAME] section with a type",
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings,
        description="the /metrics and /healthz endpoint of the daemons (stream, apply)",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, DottedKeysEnv(settings_cls)]
        path = _LOADING.get("path")
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @model_validator(mode="after")
    def _msk_signs_with_aws(self) -> Settings:
        # MSK IAM tokens are signed with the same credential chain as every AWS client; the
        # cluster is in [aws] region unless [kafka] msk_region says otherwise.
        self.kafka._aws = self.aws
        if self.kafka.auth == "aws_msk_iam" and self.kafka.msk_region is None:
            self.kafka.msk_region = self.aws.region
        return self

    @model_validator(mode="after")
    def _apply_target_is_defined(self) -> Settings:
        chosen = "target" in self.apply.model_fields_set
        if chosen and self.apply.target not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none"
            raise ValueError(
                f"apply.target = {self.apply.target!r} names no [targets.NAME] section "
                f"(configured: {known})"
            )
        if not chosen and self.apply.target not in self.targets and len(self.targets) == 1:
            # Only [targets.pg] written: that is the target, not the absent default `local`.
            self.apply.target = next(iter(self.targets))
        return self

    def table(self, name: str) -> TableSettings:
        for t in self.tables:
            if t.name == name:
                return t
        # A table not listed in the config still works with default mapping.
        return TableSettings(name=name)

    def target(self, name: str | None = None) -> TargetSettings:
        name = name or self.apply.target
        try:
            return self.targets[name]
        except KeyError as exc:
            known = ", ".join(sorted(self.targets)) or "none"
            raise ConfigError(
                f"targets.{name}: no such target (configured: {known}); choose one with "
                "--target NAME or [apply] target"
            ) from exc


_LOADING: dict[str, Path | None] = {}


class DottedKeysEnv(EnvSettingsSource):
    """pydantic-settings' environment source, with the keys of DOTTED_KEYS maps given back
    their dots: an environment variable's name cannot hold one, and no librdkafka or
    registry property we pass on has an underscore (only callbacks, which no variable sets)."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        for section_name, section in data.items():
            field = Settings.model_fields.get(section_name)
            model = field.annotation if field is not None else None
            if not (isinstance(section, dict) and isinstance(model, type)):
                continue
            if not issubclass(model, BaseModel):
                continue
            for name, value in section.items():
                inner = model.model_fields.get(name)
                dotted = inner is not None and inner.json_schema_extra == DOTTED_KEYS
                if dotted and isinstance(value, dict):
                    section[name] = {k.replace("_", "."): v for k, v in value.items()}
        return data


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Which TOML file to read: explicit, else $DDB_BRIDGE_CONFIG, else ./bridge.toml if present."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def _known_path(model: type[BaseModel], parts: list[str]) -> bool:
    """Whether `parts` (lower-case) name a setting of `model`; free-form maps accept any key."""
    if not parts:
        return True
    field = model.model_fields.get(parts[0])
    if field is None:
        return False
    rest = parts[1:]
    if not rest:
        return True
    for candidate in _member_types(field.annotation):
        origin = get_origin(candidate)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if _known_path(candidate, rest):
                return True
        elif origin is dict:
            value_types = _member_types(get_args(candidate)[1])
            models = [t for t in value_types if isinstance(t, type) and issubclass(t, BaseModel)]
            # dict[str, Model] (targets): the key is free, what follows must be a setting.
            if not models or len(rest) == 1 or any(_known_path(m, rest[1:]) for m in models):
                return True
    return False


def _member_types(annotation: Any) -> list[Any]:
    """The types an annotation allows: Optional, unions and Annotated unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _member_types(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return [t for arg in get_args(annotation) for t in _member_types(arg)]
    return [annotation]


def check_environment(environ: Mapping[str, str]) -> None:
    """Unknown `DDB_BRIDGE__...` variables are errors, like unknown keys in the TOML file.

    pydantic-settings ignores a variable that matches no top-level section, and names only
    the key (not the variable) for an unknown key inside one.
    """
    unknown = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if not all(parts) or not _known_path(Settings, parts):
            unknown.append(f"{name} (no setting {'.'.join(parts)})")
    if unknown:
        raise ConfigError(
            "unknown environment variable(s): "
            + "; ".join(unknown)
            + f" — variables named {ENV_PREFIX}SECTION__KEY must name a setting"
        )


def _secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold: SecretStr fields and secret-named pass-through options."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict | list):
            for item in value.values() if isinstance(value, dict) else value:
                walk(item)

    walk(settings)
    for options in (settings.kafka.extra, settings.kafka.schema_registry_extra):
        found += [str(v) for k, v in options.items() if redact.is_secret_name(k)]
    return found


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the effective settings; any problem is a ConfigError naming the offending key.

    The secrets they hold are handed to `bridge.runtime.redact`, so that no later log line or error
    message prints them, whoever formats it.
    """
    resolved = config_path(path)
    if resolved is not None and not resolved.exists():
        raise ConfigError(f"config file {resolved} does not exist (run `ddb-bridge init`)")
    check_environment(os.environ)
    _LOADING["path"] = resolved
    try:
        settings = Settings(**overrides)
        redact.remember(_secret_values(settings))
        return settings
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"{key}: {err['msg']}")
        where = f" in {resolved}" if resolved else ""
        raise ConfigError(f"invalid configuration{where}: " + "; ".join(problems)) from exc
    except ValueError as exc:  # e.g. TOML syntax errors
        raise ConfigError(f"cannot read configuration {resolved}: {exc}") from exc
    finally:
        _LOADING.pop("path", None)


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret shown as '**********'.

    SecretStr fields dump masked; pass-through client options are masked by name; URL
    passwords (`user:password@`) anywhere are masked by form.
    """
    data: dict[str, Any] = settings.model_dump(mode="json")
    kafka = data["kafka"]
    kafka["extra"] = redact.redact_options(kafka["extra"])
    kafka["schema_registry_extra"] = redact.redact_options(kafka["schema_registry_extra"])
    result: dict[str, Any] = redact.redact_data(data)
    return result
