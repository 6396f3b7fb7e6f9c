"""The one place every Kafka client of the bridge gets its configuration.

Each client is made of: the bootstrap servers, librdkafka's log routed through Python logging,
the client's own defaults (tuning a user may change), `[kafka.extra]`, and the settings the
client needs to keep its promise (a consumer's `group.id`, `isolation.level`, ...).

`[kafka.extra]` holds librdkafka properties. librdkafka scopes each property (its
CONFIGURATION.md, column C/P): `*` for every client, `P` for producers, `C` for consumers.
A producer takes the `*` and `P` keys, a consumer the `*` and `C` keys, an admin client the
`*` keys; so one `[kafka.extra]` serves all of them, producer tuning included. A key whose
value contradicts what a client needs is refused by name (`ConfigError`), never overridden
in silence. Unknown keys are handed on: librdkafka refuses them by name when the client is
made.

apply's consumer is Faust's aiokafka client, which speaks another dialect: the security
options become Faust credentials, the few properties aiokafka has a setting for are mapped to
it, and every other `*` or `C` key is refused at start-up by name (`P` keys are for apply's
dead-letter producer, a librdkafka client).

`[kafka] auth` (OAUTHBEARER: OIDC or MSK IAM) reaches both dialects from one token source
(bridge/kafka/oauth.py): librdkafka's `oauth_cb` and aiokafka's token provider.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Literal

from bridge.kafka.limits import message_max_bytes
from bridge.kafka.oauth import RefreshingToken, librdkafka_callback, token_for
from bridge.model.errors import ConfigError
from bridge.runtime.settings import KafkaSettings

Client = Literal["producer", "consumer", "admin"]

RDKAFKA_LOG = logging.getLogger("rdkafka")

# librdkafka 2.x CONFIGURATION.md, the properties scoped `P` (global and topic tables).
PRODUCER_ONLY = frozenset(
    {
        "acks",
        "batch.num.messages",
        "batch.size",
        "compression.codec",
        "compression.level",
        "compression.type",
        "delivery.report.only.error",
        "delivery.timeout.ms",
        "dr_cb",
        "dr_msg_cb",
        "enable.gapless.guarantee",
        "enable.idempotence",
        "linger.ms",
        "message.send.max.retries",
        "message.timeout.ms",
        "msg_order_cmp",
        "partitioner",
        "partitioner_cb",
        "produce.offset.report",
        "queue.buffering.backpressure.threshold",
        "queue.buffering.max.kbytes",
        "queue.buffering.max.messages",
        "queue.buffering.max.ms",
        "queuing.strategy",
        "request.required.acks",
        "request.timeout.ms",
        "retries",
        "sticky.partitioning.linger.ms",
        "transaction.timeout.ms",
        "transactional.id",
    }
)
# The same document's properties scoped `C`.
CONSUMER_ONLY = frozenset(
    {
        "auto.commit.enable",
        "auto.commit.interval.ms",
        "auto.offset.reset",
        "check.crcs",
        "consume.callback.max.messages",
        "consume_cb",
        "coordinator.query.interval.ms",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "enable.partition.eof",
        "fetch.error.backoff.ms",
        "fetch.max.bytes",
        "fetch.message.max.bytes",
        "fetch.min.bytes",
        "fetch.queue.backoff.ms",
        "fetch.wait.max.ms",
        "group.id",
        "group.instance.id",
        "group.protocol",
        "group.protocol.type",
        "group.remote.assignor",
        "heartbeat.interval.ms",
        "isolation.level",
        "max.partition.fetch.bytes",
        "max.poll.interval.ms",
        "max.poll.records",
        "offset.store.method",
        "offset.store.path",
        "offset.store.sync.interval.ms",
        "offset_commit_cb",
        "partition.assignment.strategy",
        "queued.max.messages.kbytes",
        "queued.min.messages",
        "rebalance_cb",
        "session.timeout.ms",
        "share.acknowledgement.mode",
    }
)


def takes(client: Client, key: str) -> bool:
    """Whether a `client` takes the librdkafka property `key` (by its scope)."""
    if key in PRODUCER_ONLY:
        return client == "producer"
    if key in CONSUMER_ONLY:
        return client == "consumer"
    return True


def client_config(
    kafka: KafkaSettings,
    client: Client,
    purpose: str,
    *,
    defaults: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration of one confluent-kafka client: bootstrap and log, then `defaults`,
    then the keys of `[kafka.extra]` this kind of client takes, then `fixed`.

    `purpose` names the client in a refusal ("the dlq-reader consumer"). A `[kafka.extra]`
    key that `fixed` sets to another value is refused: the client would not keep its promise.
    """
    config: dict[str, Any] = {"logger": RDKAFKA_LOG, **(defaults or {})}
    for key, value in kafka.extra.items():
        if takes(client, key):
            config[key] = value
    needs = {"bootstrap.servers": kafka.bootstrap_servers, **(fixed or {})}
    config |= _oauthbearer(kafka, purpose, client)
    for key, value in needs.items():
        # librdkafka reads true, "true" and "True" alike: so does this comparison.
        if key in kafka.extra and str(kafka.extra[key]).lower() != str(value).lower():
            raise ConfigError(
                f'[kafka.extra] "{key}" cannot be used by the {purpose} {client}: it needs '
                f"{value!r} there (remove the key from [kafka.extra])"
            )
        config[key] = value
    return config


# What `[kafka] auth` sets; the extra may name the protocol (SASL_SSL by default) but no
# other mechanism, nor librdkafka's own token method (the bridge's token source is the one).
_SASL_PROTOCOLS = ("SASL_SSL", "SASL_PLAINTEXT")
_TOKEN_KEYS = ("sasl.oauthbearer.method", "sasl.oauthbearer.token.endpoint.url")


def _oauthbearer(kafka: KafkaSettings, purpose: str, client: Client) -> dict[str, Any]:
    """SASL/OAUTHBEARER with the bridge's token (bridge/kafka/oauth.py) for `[kafka] auth`.

    The first token is fetched here, before the client exists: a refused client secret or
    missing AWS credentials stop the command with their own message at once, instead of a
    client retrying a login that cannot work.
    """
    token = token_for(kafka)
    if token is None:
        return {}
    where = f'cannot be used by the {purpose} {client} with [kafka] auth = "{kafka.auth}"'
    protocol = str(kafka.extra.get("security.protocol", "SASL_SSL")).upper()
    if protocol not in _SASL_PROTOCOLS:
        raise ConfigError(
            f'[kafka.extra] "security.protocol" = {protocol!r} {where}: it needs SASL_SSL '
            "(or SASL_PLAINTEXT)"
        )
    for key in ("sasl.mechanism", "sasl.mechanisms"):
        mechanism = kafka.extra.get(key)
        if mechanism is not None and str(mechanism).upper() != "OAUTHBEARER":
            raise ConfigError(f'[kafka.extra] "{key}" = {mechanism!r} {where} (it is OAUTHBEARER)')
    for key in _TOKEN_KEYS:
        if key in kafka.extra:
            raise ConfigError(
                f'[kafka.extra] "{key}" {where}: the bridge fetches the tokens itself '
                "(remove the key)"
            )
    token.current()
    return {
        "security.protocol": protocol,
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": librdkafka_callback(token),
    }


def producer_config(kafka: KafkaSettings, **fixed: Any) -> dict[str, Any]:
    """A producer of change events (and of dead letters, redrives): idempotent, acks=all,
    batched; `[kafka.extra]` may tune any of it, `fixed` is what a caller must have."""
    defaults: dict[str, Any] = {
        "enable.idempotence": True,
        "acks": "all",
        # One request in flight per broker: with more, a leader change answers the requests
        # behind the failed one OUT_OF_ORDER_SEQUENCE, librdkafka then bumps the producer
        # epoch and re-sends them under it, and the new leader cannot tell them from new
        # records: duplicates in the topic (librdkafka issue #4953, open). Harmless to the
        # target (same versions) but noise for audit consumers. One request carries every
        # partition's batch for that broker, so the cost is latency, not width (A/B on a
        # three-node cluster here: no measurable difference in produce rate).
        "max.in.flight.requests.per.connection": 1,
        # The Java client's partitioner, so other Kafka tools co-partition with us.
        "partitioner": "murmur2_random",
        "linger.ms": kafka.linger_ms,
        "compression.type": kafka.compression,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 200_000,
        "queue.buffering.max.kbytes": 256 * 1024,
        # The largest change event DynamoDB can cause (bridge/kafka/limits.py); librdkafka
        # refuses anything over its 1 MB default before compressing it.
        "message.max.bytes": message_max_bytes(kafka),
    }
    return client_config(kafka, "producer", "publisher", defaults=defaults, fixed=fixed)


def consumer_config(
    kafka: KafkaSettings,
    purpose: str,
    *,
    fixed: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A consumer: `fixed` holds what it needs (group, commits, isolation), `defaults` what
    `[kafka.extra]` may change (fetch sizes, client.id)."""
    return client_config(kafka, "consumer", purpose, defaults=defaults, fixed=fixed)


def admin_config(kafka: KafkaSettings) -> dict[str, Any]:
    """An admin client (topics, metadata, the health probe): the global keys of the extra."""
    return client_config(kafka, "admin", "admin")


# -- apply's consumer: Faust over aiokafka --------------------------------------------------

_SASL_MECHANISMS = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
# The security keys `faust_credentials` reads.
_SECURITY = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "sasl.mechanisms",
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
    }
)
# librdkafka properties aiokafka has a Faust setting for: (setting, conversion).
_FAUST_SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "client.id": ("broker_client_id", str),
    "check.crcs": ("broker_check_crcs", bool),
    "max.poll.interval.ms": ("broker_max_poll_interval", lambda ms: float(ms) / 1000),
    "metadata.max.age.ms": ("consumer_metadata_max_age_ms", int),
    "connections.max.idle.ms": ("consumer_connections_max_idle_ms", int),
    "group.instance.id": ("consumer_group_instance_id", str),
}
# Properties apply sets from its own settings: where to set them instead.
_APPLY_OWNS = {
    "session.timeout.ms": "[apply] session_timeout_ms",
    "heartbeat.interval.ms": "[apply] heartbeat_interval_ms",
    "auto.commit.interval.ms": "[apply] commit_interval_ms",
}
# Properties apply's consumer already follows another way.
_FOLLOWED = frozenset({"message.max.bytes"})  # consumer_max_fetch_size follows it


def faust_settings(kafka: KafkaSettings) -> dict[str, Any]:
    """Faust App settings for apply's consumer from `[kafka.extra]`: credentials and the
    properties aiokafka can express; any other consumer or global key is a ConfigError."""
    token = token_for(kafka)
    if token is None:
        credentials = faust_credentials(kafka.extra)
    else:
        # The same checks, protocol and first token as the librdkafka clients'.
        protocol = _oauthbearer(kafka, "apply", "consumer")["security.protocol"]
        credentials = _faust_oauth(token, kafka.extra, protocol)
    settings: dict[str, Any] = {"broker_credentials": credentials}
    for key, value in kafka.extra.items():
        if key in _SECURITY or key in PRODUCER_ONLY or key in _FOLLOWED:
            continue  # credentials above; producer keys are the dead-letter producer's
        if key in _FAUST_SETTINGS:
            name, convert = _FAUST_SETTINGS[key]
            settings[name] = convert(value)
            continue
        hint = _APPLY_OWNS.get(key)
        raise ConfigError(
            f'[kafka.extra] "{key}" cannot be used by apply\'s consumer (aiokafka, through '
            + (f"Faust): set {hint} instead" if hint else "Faust) has no such setting")
            + f"; it takes {', '.join(sorted(_FAUST_SETTINGS))} and the security options "
            "(remove the key from [kafka.extra] to run apply)"
        )
    return settings


def _ssl_context(extra: Mapping[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=extra.get("ssl.ca.location") or None)
    cert = extra.get("ssl.certificate.location")
    if cert:
        context.load_cert_chain(
            cert,
            keyfile=extra.get("ssl.key.location") or None,
            password=extra.get("ssl.key.password") or None,
        )
    if str(extra.get("ssl.endpoint.identification.algorithm", "https")).lower() == "none":
        context.check_hostname = False
    return context


def _faust_oauth(token: RefreshingToken, extra: Mapping[str, Any], protocol: str) -> Any:
    import faust

    from bridge.kafka.oauth_aiokafka import AiokafkaTokenProvider

    return faust.OAuthCredentials(
        oauth_cb=AiokafkaTokenProvider(token),
        ssl_context=_ssl_context(extra) if protocol == "SASL_SSL" else None,
    )


def faust_credentials(extra: Mapping[str, Any]) -> Any | None:
    """Faust credentials for the security options of `extra`, or None for plaintext.

    Supported: PLAINTEXT, SSL (CA, client certificate), SASL_PLAINTEXT and SASL_SSL with
    PLAIN or SCRAM. Anything else is a ConfigError naming the option, not a silent plaintext
    connection.
    """
    import faust  # deferred, as in the worker: importing faust is slow

    protocol = str(extra.get("security.protocol", "PLAINTEXT")).upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(_ssl_context(extra))
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        mechanism = str(extra.get("sasl.mechanism") or extra.get("sasl.mechanisms") or "PLAIN")
        if mechanism.upper() == "OAUTHBEARER":
            raise ConfigError(
                f'kafka.extra."sasl.mechanism": {mechanism} needs a token source: set [kafka] '
                'auth = "oauthbearer_oidc" or "aws_msk_iam" (and remove the mechanism from '
                "[kafka.extra])"
            )
        if mechanism.upper() not in _SASL_MECHANISMS:
            raise ConfigError(
                f'kafka.extra."sasl.mechanism": {mechanism} is not supported by apply '
                f"(supported: {', '.join(sorted(_SASL_MECHANISMS))})"
            )
        return faust.SASLCredentials(
            username=extra.get("sasl.username"),
            password=extra.get("sasl.password"),
            mechanism=mechanism.upper(),
            ssl_context=_ssl_context(extra) if protocol == "SASL_SSL" else None,
        )
    raise ConfigError(f'kafka.extra."security.protocol": unknown protocol {protocol!r}')
