"""Connection refusals that retrying cannot cure: a rejected login or a failed TLS handshake.

librdkafka does not fail a request when the broker refuses the credentials or the
certificate: it reports the error through `error_cb` and reconnects for ever, so a request
waits until its own timeout and then says only that it timed out. `RefusalWatch` is that
`error_cb`; `wait_result` waits for an admin future while watching it, so a wrong password
ends the command within a second or two, naming the authentication failure.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

from confluent_kafka import KafkaError

from bridge.model.errors import ConfigError, Unavailable

_REFUSALS = {
    KafkaError._AUTHENTICATION: "authentication failed",
    KafkaError.SASL_AUTHENTICATION_FAILED: "authentication failed",
    KafkaError._SSL: "TLS handshake failed",
}
_HINTS = {
    "authentication failed": (
        '[kafka.extra] "sasl.username", "sasl.password" and "sasl.mechanisms" '
        '(and "security.protocol")'
    ),
    "TLS handshake failed": (
        '[kafka.extra] "ssl.ca.location" (the CA that signed the broker\'s certificate) '
        'and "security.protocol"'
    ),
}


# A refused OAUTHBEARER token: what to check for each token source (`[kafka] auth`).
_TOKEN_HINTS = {
    "aws_msk_iam": (
        '[kafka] auth = "aws_msk_iam": the IAM policy of the [aws] credentials '
        "(kafka-cluster:Connect on the cluster), [kafka] msk_region, and that "
        "bootstrap_servers is the cluster's IAM listener"
    ),
    "oauthbearer_oidc": (
        '[kafka] auth = "oauthbearer_oidc": that the broker trusts the identity provider of '
        "[kafka] oauth_token_url (issuer, audience) and the scope of [kafka] oauth_scope"
    ),
}


class RefusalWatch:
    """librdkafka's `error_cb`: remembers the first refusal (login or TLS).

    `auth` is `[kafka] auth`: with a token source, a refused login is a refused OAUTHBEARER
    token, and the message says which settings made it."""

    def __init__(self, auth: str = "none") -> None:
        self._lock = threading.Lock()
        self.refusal: tuple[str, str] | None = None
        self.auth = auth

    def __call__(self, err: KafkaError) -> None:
        kind = _REFUSALS.get(err.code())
        if kind is not None:
            with self._lock:
                if self.refusal is None:
                    self.refusal = (kind, err.str())

    def raise_if_refused(self, bootstrap: str) -> None:
        found = self.refusal
        if found is not None:
            kind, detail = found
            hint = _HINTS[kind]
            if kind == "authentication failed" and self.auth in _TOKEN_HINTS:
                # librdkafka's text may say only what the broker answered ("invalid_token").
                detail, hint = f"SASL OAUTHBEARER: {detail}", _TOKEN_HINTS[self.auth]
            # librdkafka's text names the mechanism and the broker, never the password.
            raise ConfigError(
                f"Kafka at {bootstrap} refused the connection: {kind} ({detail}); check {hint}"
            )


def wait_result(
    future: concurrent.futures.Future[Any],
    client: Any,
    watch: RefusalWatch,
    bootstrap: str,
    what: str,
    timeout_s: float,
) -> Any:
    """`future.result()`, ended early by a refusal `watch` saw; a timeout names `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        client.poll(0)  # serves error_cb
        watch.raise_if_refused(bootstrap)
        try:
            return future.result(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        except concurrent.futures.TimeoutError:
            if time.monotonic() >= deadline:
                watch.raise_if_refused(bootstrap)
                raise Unavailable(
                    f"Kafka at {bootstrap} did not answer {what} within {timeout_s:g}s; "
                    "run it again once the broker is reachable"
                ) from None
