"""Confluent Schema Registry: one framing per topic, subjects by TopicNameStrategy.

When `kafka.schema_registry_url` is set, every producer of a change topic (stream, scan and
export back-fill) writes the Confluent wire format with the id the registry gave the
change-event schema under the topic's subject `<topic>-value`; the DLQ copies records' bytes
unchanged. Every decoder reads both framings (single-object records written before the
registry was configured stay readable) and resolves Confluent schema ids through the registry.

The HTTP side is confluent-kafka's own `SchemaRegistryClient` (basic auth, TLS, retries, a
cache); this module only translates its errors into the bridge's retry classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bridge.codec.avro import EventCodec, load_schema_text
from bridge.model.errors import ConfigError, DecodeError, PermanentError, TransientError
from bridge.runtime.redact import redact_text

if TYPE_CHECKING:
    from bridge.runtime.settings import KafkaSettings


def subject_for(topic: str) -> str:
    """TopicNameStrategy: the value schema of `topic` is registered under `<topic>-value`."""
    return f"{topic}-value"


class SchemaRegistry:
    """Register the change-event schema and fetch schemas by id, errors classified for retry."""

    def __init__(
        self, url: str, config: Mapping[str, Any] | None = None, client: Any = None
    ) -> None:
        # Deferred: the registry client pulls in httpx and authlib, needed only in this mode.
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.url = redact_text(url)  # for messages only
        conf = {"url": url, **(config or {})}
        try:
            self._client = client or SchemaRegistryClient(conf)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"kafka.schema_registry: {redact_text(str(exc))}") from exc

    def _failed(self, what: str, exc: Exception) -> Exception:
        """The bridge error for a failed registry call: 5xx/network retry, the rest do not."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        detail = redact_text(str(exc))
        if isinstance(exc, SchemaRegistryError):
            status = exc.http_status_code
            if status >= 500 or status in (408, 429):
                return TransientError(f"schema registry {self.url}: {what}: {detail}")
            return PermanentError(f"schema registry {self.url}: {what}: HTTP {status} {detail}")
        return TransientError(f"schema registry {self.url} unreachable ({what}): {detail}")

    def register(self, subject: str, schema_text: str) -> int:
        from confluent_kafka.schema_registry import Schema

        try:
            return int(self._client.register_schema(subject, Schema(schema_text, "AVRO")))
        except Exception as exc:  # translated, never swallowed
            raise self._failed(f"register subject {subject}", exc) from exc

    def schema_by_id(self, schema_id: int) -> str:
        """The schema text registered under `schema_id`; an unknown id is a DecodeError."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                # The record names a schema this registry does not hold: that record is bad
                # (dead-letter it), the registry is not.
                raise DecodeError(
                    f"schema id {schema_id} is not in the schema registry {self.url}"
                ) from exc
            raise self._failed(f"get schema id {schema_id}", exc) from exc
        except Exception as exc:
            raise self._failed(f"get schema id {schema_id}", exc) from exc
        if schema.schema_type not in (None, "AVRO"):
            raise DecodeError(f"schema id {schema_id} is a {schema.schema_type} schema, not Avro")
        return str(schema.schema_str)


def registry_codec(url: str, config: dict[str, Any] | None = None) -> EventCodec:
    """A codec for topics written with a Schema Registry (decodes both framings).

    `config` takes confluent-kafka's `SchemaRegistryClient` options
    (`basic.auth.user.info`, `ssl.ca.location`, ...).
    """
    return EventCodec(schema_id_lookup=SchemaRegistry(url, config).schema_by_id)


def registry_config(kafka: KafkaSettings) -> dict[str, Any]:
    """The `SchemaRegistryClient` options of the settings (TLS, timeouts, basic auth)."""
    config: dict[str, Any] = dict(kafka.schema_registry_extra)
    if kafka.schema_registry_user_info is not None:
        config["basic.auth.user.info"] = kafka.schema_registry_user_info.get_secret_value()
    return config


def registry_for(kafka: KafkaSettings) -> SchemaRegistry | None:
    if not kafka.schema_registry_url:
        return None
    return SchemaRegistry(kafka.schema_registry_url, registry_config(kafka))


def make_codec(
    kafka: KafkaSettings, tables: Iterable[str] = (), registry: SchemaRegistry | None = None
) -> EventCodec:
    """The codec every producer and consumer of the change topics uses, per the settings.

    Without a registry: single-object framing. With one: Confluent framing; the schema is
    registered under each of `tables`' subjects now (so a bad URL or credentials stop the
    command at start-up), and under any other table's subject on its first event.
    """
    registry = registry or registry_for(kafka)
    if registry is None:
        return EventCodec()
    text = load_schema_text()
    ids: dict[str, int] = {}
    active = registry

    def schema_id_for(table: str) -> int:
        schema_id = ids.get(table)
        if schema_id is None:
            schema_id = ids[table] = active.register(subject_for(kafka.changes_topic(table)), text)
        return schema_id

    for table in tables:
        schema_id_for(table)
    return EventCodec(
        "confluent", writer_schema_id_for=schema_id_for, schema_id_lookup=registry.schema_by_id
    )
