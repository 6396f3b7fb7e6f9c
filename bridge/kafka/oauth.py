"""SASL/OAUTHBEARER tokens for every Kafka client: where they come from, and when to renew.

`[kafka] auth` names the source: "oauthbearer_oidc" (an OAuth client-credentials endpoint,
bridge/kafka/oidc.py) or "aws_msk_iam" (Amazon MSK's IAM tokens, signed with the AWS
credential chain). The core must not import boto3 or botocore, so the MSK source lives in
connectors/ and reaches the core through `TokenSource`, registered as an entry point of the
group `ddb_bridge.kafka_token_sources` (pyproject.toml). An entry point rather than a call at
start-up: every process that builds a Kafka client finds it by itself — the CLI's commands,
back-fill's spawned helper processes, the KCL record processor the Java daemon starts.

One `RefreshingToken` per process and source is shared by every client: librdkafka's
`oauth_cb` (called again by librdkafka itself at 80% of a token's life) and aiokafka's token
provider (asked on each new connection) both get the cached token until 80% of its life has
gone, then a new one — before the old one expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from bridge.kafka.oidc import ClientCredentials
from bridge.kafka.token import Token, TokenSource
from bridge.model.errors import ConfigError
from bridge.runtime.settings import KafkaSettings

log = logging.getLogger(__name__)

ENTRY_POINTS = "ddb_bridge.kafka_token_sources"
# The share of a token's life after which the next one is fetched (librdkafka's own choice).
REFRESH_AT = 0.8


__all__ = ["RefreshingToken", "Token", "TokenSource", "token_for"]


class RefreshingToken:
    """A source's token, reused until `REFRESH_AT` of its life has gone."""

    def __init__(self, source: TokenSource, clock: Callable[[], float] = time.time) -> None:
        self._source = source
        self._clock = clock
        self._lock = threading.Lock()  # librdkafka's threads and aiokafka's executor
        self._token: Token | None = None
        self._renew_at = 0.0

    def current(self) -> Token:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._renew_at:
                token = self._source.fetch()
                self._token = token
                self._renew_at = now + max(0.0, token.expires_at - now) * REFRESH_AT
            return self._token


_CACHE: dict[tuple[Any, ...], RefreshingToken] = {}
_CACHE_LOCK = threading.Lock()


def _identity(kafka: KafkaSettings) -> tuple[Any, ...]:
    secret = kafka.oauth_client_secret
    return (
        kafka.auth,
        kafka.oauth_token_url,
        kafka.oauth_client_id,
        secret.get_secret_value() if secret else None,
        kafka.oauth_scope,
        kafka.msk_region,
        kafka.signing_aws().model_dump_json(),
    )


def _source(kafka: KafkaSettings) -> TokenSource:
    if kafka.auth == "oauthbearer_oidc":
        secret = kafka.oauth_client_secret
        # The settings check these are set (KafkaSettings._oidc_complete).
        assert kafka.oauth_token_url and kafka.oauth_client_id and secret
        return ClientCredentials(
            kafka.oauth_token_url,
            kafka.oauth_client_id,
            secret.get_secret_value(),
            kafka.oauth_scope,
        )
    found = entry_points(group=ENTRY_POINTS, name=kafka.auth)
    if not found:
        raise ConfigError(
            f'[kafka] auth = "{kafka.auth}": no token source is installed for it (entry point '
            f'group "{ENTRY_POINTS}"); reinstall ddb-bridge with its dependencies'
        )
    factory: Callable[[KafkaSettings], TokenSource] = next(iter(found)).load()
    return factory(kafka)


def token_for(kafka: KafkaSettings) -> RefreshingToken | None:
    """The process's shared token for `kafka`'s auth, or None when `auth = "none"`."""
    if kafka.auth == "none":
        return None
    key = _identity(kafka)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            cached = _CACHE[key] = RefreshingToken(_source(kafka))
    return cached


def librdkafka_callback(
    token: RefreshingToken,
) -> Callable[[str], tuple[str, float, str, dict[str, str]]]:
    """confluent-kafka's `oauth_cb`: (token, expiry in epoch seconds, principal, extensions).
    An exception it raises becomes librdkafka's token failure: it retries and reports it."""

    def oauth_cb(_config: str) -> tuple[str, float, str, dict[str, str]]:
        try:
            current = token.current()
        except Exception as exc:
            # librdkafka keeps the last token until it expires and asks again: say why the
            # renewal failed, or nobody learns of it before the broker refuses the old token.
            log.warning("Kafka token renewal failed, librdkafka will retry: %s", exc)
            raise
        return current.value, current.expires_at, current.principal, {}

    return oauth_cb
