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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bridge import redact
from bridge.errors import ConfigError

ENV_PREFIX = "DDB_BRIDGE__"
CONFIG_ENV = "DDB_BRIDGE_CONFIG"
DEFAULT_CONFIG = Path("bridge.toml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AwsSettings(Section):
    region: str = "us-east-1"
    endpoint_url: str | None = Field(
        None, description="DynamoDB/S3 endpoint: moto, DynamoDB Local, LocalStack, Alternator"
    )
    # Credentials normally come from the standard AWS chain; these override it when set.
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    profile: str | None = None


class KafkaSettings(Section):
    bootstrap_servers: str = "localhost:9092"
    topic_prefix: str = "ddb."
    partitions: int = Field(12, ge=1)
    replication_factor: int = Field(3, ge=1)
    retention_ms: int = Field(-1, description="topic retention; -1 keeps events forever")
    schema_registry_url: str | None = Field(
        None, description="Confluent wire format, schemas registered under <topic>-value"
    )
    # Basic auth for the registry, "user:password" (a Confluent Cloud API key:secret).
    schema_registry_user_info: SecretStr | None = None
    schema_registry_extra: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="passed to confluent-kafka's SchemaRegistryClient as is (ssl.*, timeout)",
    )
    linger_ms: int = Field(20, ge=0)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    extra: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="passed to librdkafka as is"
    )

    def changes_topic(self, table: str) -> str:
        return f"{self.topic_prefix}{table}.changes"

    def dlq_topic(self, table: str) -> str:
        return f"{self.topic_prefix}{table}.dlq"


class TableSettings(Section):
    name: str
    target_table: str | None = None
    # The key schema and TTL attribute normally come from DescribeTable; declaring them lets
    # `apply` and `schema` run without access to the source account.
    hash_key: str | None = None
    hash_key_type: Literal["S", "N", "B"] = "S"
    range_key: str | None = None
    range_key_type: Literal["S", "N", "B"] = "S"
    ttl_attribute: str | None = None
    # Typed CQL columns for non-key attributes: attribute name -> CQL type.
    columns: dict[str, str] = Field(default_factory=dict)

    @property
    def target_name(self) -> str:
        return self.target_table or self.name


class StreamSettings(Section):
    lease_table: str = "ddb-bridge-leases"
    poll_interval_ms: int = Field(250, ge=0)
    initial_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    lease_duration_ms: int = Field(10_000, ge=1000)
    worker_id: str | None = None
    continue_on_data_loss: bool = False


class BackfillSettings(Section):
    skew_margin_s: int = Field(5, ge=0)
    segments: int = Field(8, ge=1)
    max_items_per_second: float = Field(0, ge=0, description="0 = unlimited")
    max_rcu_per_second: float = Field(0, ge=0, description="0 = unlimited")
    skip_expired_ttl: bool = True


class ApplySettings(Section):
    target: str = "local"
    batch_size: int = Field(500, ge=1)
    batch_window_ms: int = Field(200, ge=1)
    max_retries: int = Field(0, ge=0, description="0 = retry transient errors forever")
    retry_backoff_ms: int = Field(200, ge=1)
    retry_backoff_max_ms: int = Field(30_000, ge=1)
    # Consumer-group liveness: a crashed worker's partitions move after the session timeout.
    session_timeout_ms: int = Field(30_000, ge=1000)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    commit_interval_ms: int = Field(1_000, ge=100)
    data_dir: str | None = Field(None, description="Faust's data directory; default a temp dir")


class SqliteTarget(Section):
    type: Literal["sqlite"]
    path: str = "bridge.db"


class PostgresTarget(Section):
    type: Literal["postgres"]
    dsn: SecretStr = SecretStr("postgresql://localhost/migrated")
    schema_name: str = "public"


class ScyllaTarget(Section):
    type: Literal["scylla"]
    hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    port: int = 9042
    keyspace: str = "migrated"
    replication: str = "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
    consistency: str = "LOCAL_QUORUM"
    username: str | None = None
    password: SecretStr | None = None
    tls_ca_file: str | None = None
    # Client certificate and key for mutual TLS; hostname checking on unless disabled.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_check_hostname: bool = True
    concurrency: int = Field(64, ge=1)
    local_dc: str | None = None
    # The catch-all map<text, text> column holding every attribute without a typed column.
    map_column: str = "attrs"
    request_timeout_s: float = Field(10.0, gt=0)


class AlternatorTarget(Section):
    type: Literal["alternator"]
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    version_attribute: str = "_ddb_bridge_version"
    tombstone_attribute: str = "_ddb_bridge_deleted"
    # Conditional PutItems in flight per batch (BatchWriteItem cannot carry conditions).
    concurrency: int = Field(16, ge=1)


class NullTarget(Section):
    """Discards everything: for benchmarks and for trying the pipeline."""

    type: Literal["null"]


TargetSettings = Annotated[
    SqliteTarget | PostgresTarget | ScyllaTarget | AlternatorTarget | NullTarget,
    Field(discriminator="type"),
]


_DEFAULT_TARGETS: dict[str, TargetSettings] = {"local": SqliteTarget(type="sqlite")}


class MetricsSettings(Section):
    port: int = 9464
    host: str = "127.0.0.1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    aws: AwsSettings = Field(default_factory=AwsSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    tables: list[TableSettings] = Field(default_factory=list)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    backfill: BackfillSettings = Field(default_factory=BackfillSettings)
    apply: ApplySettings = Field(default_factory=ApplySettings)
    targets: dict[str, TargetSettings] = Field(default_factory=lambda: dict(_DEFAULT_TARGETS))
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _LOADING.get("path")
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

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
            raise ConfigError(f"targets.{name}: no such target (configured: {known})") from exc


_LOADING: dict[str, Path | None] = {}


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

    The secrets they hold are handed to `bridge.redact`, so that no later log line or error
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
