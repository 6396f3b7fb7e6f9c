"""A refused login or TLS handshake ends an admin request at once (librdkafka only reports it
through error_cb and keeps reconnecting); a request that gets no answer names itself."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from confluent_kafka import KafkaError

from bridge.kafka.refusals import RefusalWatch, wait_result
from bridge.model.errors import ConfigError, TransientError, Unavailable


class PollingClient:
    """Calls error_cb with `errors` on its first poll, as librdkafka does from poll()."""

    def __init__(self, watch: RefusalWatch, *errors: KafkaError) -> None:
        self.watch, self.errors, self.polls = watch, list(errors), 0

    def poll(self, _timeout: float) -> int:
        self.polls += 1
        for err in self.errors:
            self.watch(err)
        self.errors.clear()
        return 0


def test_a_refused_login_ends_the_wait_as_a_configuration_error() -> None:
    watch = RefusalWatch()
    detail = "SASL authentication error: invalid credentials with SASL mechanism SCRAM-SHA-512"
    client = PollingClient(
        watch,
        KafkaError(KafkaError._TRANSPORT, "connection reset"),  # ordinary: retried
        KafkaError(KafkaError._AUTHENTICATION, detail),
    )
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        wait_result(concurrent.futures.Future(), client, watch, "b:9096", "creating t", 30.0)
    assert time.monotonic() - started < 1.0
    message = str(raised.value)
    assert message.startswith("Kafka at b:9096 refused the connection: authentication failed")
    assert detail in message and '"sasl.password"' in message


def test_a_failed_tls_handshake_names_the_ca_setting() -> None:
    watch = RefusalWatch()
    client = PollingClient(watch, KafkaError(KafkaError._SSL, "certificate verify failed"))
    with pytest.raises(ConfigError, match=r'TLS handshake failed .*"ssl.ca.location"'):
        wait_result(concurrent.futures.Future(), client, watch, "b:9096", "creating t", 30.0)


def test_no_answer_is_a_transient_error_naming_the_request() -> None:
    watch = RefusalWatch()
    client = PollingClient(watch, KafkaError(KafkaError._TRANSPORT, "connection refused"))
    with pytest.raises(TransientError, match=r"b:9096 did not answer creating t within 0.3s") as e:
        wait_result(concurrent.futures.Future(), client, watch, "b:9096", "creating t", 0.3)
    assert client.polls >= 2
    # Unavailable: the command exits 75, "run me again", not 1.
    assert isinstance(e.value, Unavailable)


def test_an_answer_is_returned() -> None:
    watch = RefusalWatch()
    future: concurrent.futures.Future[str] = concurrent.futures.Future()
    future.set_result("created")
    assert wait_result(future, PollingClient(watch), watch, "b:9096", "x", 5.0) == "created"


@pytest.mark.parametrize(
    ("auth", "names"),
    [("aws_msk_iam", "[kafka] msk_region"), ("oauthbearer_oidc", "oauth_token_url")],
)
def test_a_refused_token_names_oauthbearer_and_the_auth_settings(auth: str, names: str) -> None:
    watch = RefusalWatch(auth)
    # What Kafka's validator answers a token it cannot use: no mechanism in librdkafka's text.
    detail = 'SASL authentication error: {"status":"invalid_token"}'
    client = PollingClient(watch, KafkaError(KafkaError._AUTHENTICATION, detail))
    with pytest.raises(ConfigError) as raised:
        wait_result(concurrent.futures.Future(), client, watch, "b:9098", "creating t", 30.0)
    message = str(raised.value)
    assert "authentication failed (SASL OAUTHBEARER: " + detail in message
    assert f'[kafka] auth = "{auth}"' in message and names in message
    assert "sasl.password" not in message
