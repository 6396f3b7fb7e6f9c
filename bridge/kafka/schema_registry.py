"""Confluent Schema Registry: one framing per topic, subjects by TopicNameStrategy.

When `kafka.schema_registry_url` is set, every producer of a change topic (stream, scan and
export back-fill) writes the Confluent wire format with the id the registry gave the
change-event schema under the topic's subject `<topic>-value`; the DLQ copies records' bytes
unchanged. Every decoder reads both framings (single-object records written before the
registry was configured stay readable) and resolves Confluent schema ids through the registry.

With `kafka.schema_registry_auto_register = false` (a registry whose operators register
schemas themselves and refuse writes from clients), producers register nothing: each uses the
latest version under `<topic>-value`, once that version is the bridge's schema *on the wire*:
the same Avro Parsing Canonical Form (the spec's test for "encodes the same bytes"). Schema
resolution is not enough: a record framed with id N claims schema N as its writer's schema, so
a consumer decodes the bridge's bytes with schema N; a schema that only *reads* ours (e.g. one
more field with a default) would misread them. Anything else stops the command at start
(ConfigError, exit 2) with one line naming the subject, the registry and what to do.

The HTTP side is confluent-kafka's own `SchemaRegistryClient` (basic auth, TLS, retries, a
cache); this module only translates its errors into the bridge's retry classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from bridge.codec.avro import EventCodec, ParsedSchema, load_schema_text
from bridge.model.errors import ConfigError, DecodeError, PermanentError, TransientError
from bridge.runtime.redact import redact_text

T = TypeVar("T")

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

    def _call(
        self, what: str, call: Callable[[], T], status: int, error: Callable[[Any], Exception]
    ) -> T:
        """`call()`, its failure translated: an HTTP `status` answer into `error(exc)` (what
        that answer means to this call), any other failure by `_failed`, never swallowed."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            return call()
        except Exception as exc:
            if isinstance(exc, SchemaRegistryError) and exc.http_status_code == status:
                raise error(exc) from exc
            raise self._failed(what, exc) from exc

    def register(self, subject: str, schema_text: str) -> int:
        from confluent_kafka.schema_registry import Schema

        def denied(exc: Any) -> Exception:
            # A registry locked down (40301: denied Write on the subject, or read-only).
            return ConfigError(
                f"schema registry {self.url} refuses to register the bridge's schema "
                f"under subject {subject} (HTTP 403, error {exc.error_code}): have it "
                "registered there and set [kafka] schema_registry_auto_register = false"
            )

        return self._call(
            f"register subject {subject}",
            lambda: int(self._client.register_schema(subject, Schema(schema_text, "AVRO"))),
            403,
            denied,
        )

    def registered_id(self, subject: str, schema_text: str) -> int:
        """The id of the latest version under `subject`, when it is `schema_text` on the wire;
        ConfigError (stop, exit 2) when there is none or it differs. Registers nothing."""
        fix = (
            "register the bridge's change-event schema (schemas/change_event.avsc of this "
            f"ddb-bridge version) as the latest version of {subject}, or set [kafka] "
            "schema_registry_auto_register = true"
        )
        latest = self._call(
            f"get the latest version of subject {subject}",
            lambda: self._client.get_latest_version(subject),
            404,
            lambda _: ConfigError(
                f"no schema is registered under subject {subject} in schema registry "
                f"{self.url} (schema_registry_auto_register = false): {fix}"
            ),
        )
        schema_id, version, registered = latest.schema_id, latest.version, latest.schema.schema_str
        if schema_id is None or registered is None:
            raise PermanentError(
                f"schema registry {self.url}: the latest version of subject {subject} came "
                "without its id or schema text"
            )
        why = _differs_on_the_wire(latest.schema.schema_type, registered, schema_text)
        if why is not None:
            raise ConfigError(
                f"the latest schema under subject {subject} in schema registry {self.url} "
                f"(version {version}, id {schema_id}) cannot carry the bridge's events: {why}; "
                f"records framed with id {schema_id} would be decoded wrongly. {fix}"
            )
        return schema_id

    def schema_by_id(self, schema_id: int) -> str:
        """The schema text registered under `schema_id`; an unknown id is a DecodeError."""
        # An unknown id: the record names a schema this registry does not hold, so that
        # record is bad (dead-letter it), the registry is not.
        schema = self._call(
            f"get schema id {schema_id}",
            lambda: self._client.get_schema(schema_id),
            404,
            lambda _: DecodeError(
                f"schema id {schema_id} is not in the schema registry {self.url}"
            ),
        )
        if schema.schema_type not in (None, "AVRO"):
            raise DecodeError(f"schema id {schema_id} is a {schema.schema_type} schema, not Avro")
        return str(schema.schema_str)


def _differs_on_the_wire(schema_type: str | None, registered: str, ours: str) -> str | None:
    """Why `registered` does not encode exactly as `ours` does; None when it does."""
    if schema_type not in (None, "AVRO"):
        return f"it is a {schema_type} schema, not Avro"
    try:
        theirs = ParsedSchema.from_text(registered)
    except Exception as exc:  # fastavro's parse errors have no common base
        return f"it is not a valid Avro schema ({exc})"
    mine = ParsedSchema.from_text(ours)
    if theirs.fingerprint != mine.fingerprint:
        return (
            "its Avro Parsing Canonical Form differs from the bridge's schema (CRC-64-AVRO "
            f"{theirs.fingerprint[::-1].hex()}, the bridge's {mine.fingerprint[::-1].hex()})"
        )
    return None


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
    command at start-up), and under any other table's subject on its first event. Without
    auto-registration the latest version registered there is used instead, once checked.
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
            subject = subject_for(kafka.changes_topic(table))
            if kafka.schema_registry_auto_register:
                schema_id = active.register(subject, text)
            else:
                schema_id = active.registered_id(subject, text)
            ids[table] = schema_id
        return schema_id

    for table in tables:
        schema_id_for(table)
    return EventCodec(
        "confluent", writer_schema_id_for=schema_id_for, schema_id_lookup=registry.schema_by_id
    )
