"""`[kafka] auth`: the settings, the OIDC client-credentials token source, the refresh before
expiry, and how every Kafka client gets the token (librdkafka's `oauth_cb`, aiokafka's token
provider through Faust's OAuthCredentials). The token endpoint is the tests' real one
(ddb_bridge/services/kafka_oauth.py), on a local port."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest
from faust.types.auth import AuthProtocol, SASLMechanism

from bridge.kafka import oauth
from bridge.kafka.client_config import (
    admin_config,
    consumer_config,
    faust_credentials,
    faust_settings,
    producer_config,
)
from bridge.kafka.oidc import ClientCredentials
from bridge.model.errors import ConfigError, Unavailable
from bridge.runtime.config_file import write_config
from bridge.runtime.settings import KafkaSettings, Settings, load_settings
from ddb_bridge.services.kafka_oauth import TokenEndpoint


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(lifetime_s=600) as served:
        yield served


def oidc_kafka(endpoint: TokenEndpoint, secret: str | None = None, **extra: str) -> KafkaSettings:
    return KafkaSettings(
        auth="oauthbearer_oidc",
        oauth_token_url=endpoint.url,
        oauth_client_id=endpoint.client_id,
        oauth_client_secret=secret or endpoint.client_secret,
        oauth_scope="kafka.write",
        extra=extra,
    )


def claims(jwt: str) -> dict[str, object]:
    payload = jwt.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


# -- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["oauth_token_url", "oauth_client_id", "oauth_client_secret"])
def test_oidc_without_its_settings_is_a_config_error_naming_the_key(
    missing: str, tmp_path: Path
) -> None:
    kafka = {
        "auth": "oauthbearer_oidc",
        "oauth_token_url": "https://idp.example/token",
        "oauth_client_id": "bridge",
        "oauth_client_secret": "s3cret",
    }
    del kafka[missing]
    path = tmp_path / "bridge.toml"
    path.write_text(
        "[kafka]\n" + "".join(f'{k} = "{v}"\n' for k, v in kafka.items()), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=rf"kafka\.{missing}") as caught:
        load_settings(path)
    assert "s3cret" not in str(caught.value)


def test_an_unknown_auth_is_refused_naming_the_choices(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text('[kafka]\nauth = "kerberos"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"kafka\.auth.*aws_msk_iam"):
        load_settings(path)


def test_the_msk_region_defaults_to_the_aws_region() -> None:
    settings = Settings(aws={"region": "eu-central-1"}, kafka={"auth": "aws_msk_iam"})
    assert settings.kafka.msk_region == "eu-central-1"
    own = Settings(
        aws={"region": "eu-central-1"}, kafka={"auth": "aws_msk_iam", "msk_region": "us-west-2"}
    )
    assert own.kafka.msk_region == "us-west-2"


def test_the_config_writer_takes_the_oauth_settings(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "bridge.toml",
        kafka={"auth": "oauthbearer_oidc", "oauth_token_url": "https://idp.example/token",
               "oauth_client_id": "bridge", "oauth_client_secret": "s3cret"},
    )  # fmt: skip
    assert load_settings(path).kafka.oauth_client_secret.get_secret_value() == "s3cret"  # type: ignore[union-attr]


# -- the OIDC token source ------------------------------------------------------------------


def test_client_credentials_fetches_an_unexpired_token_with_its_subject(
    endpoint: TokenEndpoint,
) -> None:
    source = ClientCredentials(endpoint.url, endpoint.client_id, endpoint.client_secret, "s1")
    token = source.fetch()
    assert claims(token.value)["scope"] == "s1"
    assert token.principal == endpoint.client_id
    assert token.expires_at == claims(token.value)["exp"]
    assert endpoint.granted == 1


def test_a_refused_secret_is_a_config_error_naming_endpoint_and_setting(
    endpoint: TokenEndpoint,
) -> None:
    source = ClientCredentials(endpoint.url, endpoint.client_id, "wrong-secret", None)
    with pytest.raises(ConfigError) as caught:
        source.fetch()
    message = str(caught.value)
    assert endpoint.url in message and "HTTP 401" in message and "invalid_client" in message
    assert "[kafka] oauth_client_secret" in message
    assert "wrong-secret" not in message


def test_an_unreachable_endpoint_is_unavailable_naming_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/token"
    with pytest.raises(Unavailable, match=f"OAuth token endpoint {url}"):
        ClientCredentials(url, "bridge", "s3cret", None, timeout_s=2).fetch()


# -- refresh before expiry ------------------------------------------------------------------


class Counting:
    def __init__(self, lifetime_s: float, clock: list[float]) -> None:
        self.lifetime_s, self.clock, self.fetched = lifetime_s, clock, 0

    def fetch(self) -> oauth.Token:
        self.fetched += 1
        return oauth.Token(f"t{self.fetched}", self.clock[0] + self.lifetime_s, "me")


def test_a_token_is_reused_until_most_of_its_life_is_gone_then_refreshed() -> None:
    clock = [1000.0]
    source = Counting(100, clock)
    cached = oauth.RefreshingToken(source, clock=lambda: clock[0])
    assert cached.current().value == "t1"
    clock[0] = 1079.0
    assert cached.current().value == "t1"  # 79% of its life
    clock[0] = 1081.0
    assert cached.current().value == "t2"  # past 80%: a new one, before the old expires
    assert source.fetched == 2


# -- every client ---------------------------------------------------------------------------


def test_every_librdkafka_client_gets_sasl_oauthbearer_and_a_working_oauth_cb(
    endpoint: TokenEndpoint,
) -> None:
    kafka = oidc_kafka(endpoint, **{"ssl.ca.location": "/tmp/ca.pem"})
    configs = [
        producer_config(kafka),
        consumer_config(kafka, "test", fixed={"group.id": "g"}),
        admin_config(kafka),
    ]
    for config in configs:
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "OAUTHBEARER"
        value, expiry, principal, extensions = config["oauth_cb"]("")
        assert claims(value)["sub"] == endpoint.client_id
        assert expiry == claims(value)["exp"] and principal == endpoint.client_id
        assert extensions == {}
    # One token serves the process's clients until it needs refreshing.
    assert endpoint.granted == 1


def test_a_protocol_set_in_the_extra_is_kept(endpoint: TokenEndpoint) -> None:
    config = admin_config(oidc_kafka(endpoint, **{"security.protocol": "SASL_PLAINTEXT"}))
    assert config["security.protocol"] == "SASL_PLAINTEXT"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sasl.mechanism", "PLAIN"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("security.protocol", "SSL"),
        ("sasl.oauthbearer.method", "oidc"),
    ],
)
def test_an_extra_contradicting_the_auth_is_refused_by_name(
    key: str, value: str, endpoint: TokenEndpoint
) -> None:
    with pytest.raises(ConfigError, match=rf'"{key}".*\[kafka\] auth'):
        admin_config(oidc_kafka(endpoint, **{key: value}))


def test_a_refused_secret_stops_the_client_before_it_is_made(endpoint: TokenEndpoint) -> None:
    with pytest.raises(ConfigError, match="invalid_client"):
        producer_config(oidc_kafka(endpoint, secret="nope"))


def test_apply_gets_oauth_credentials_with_a_token_provider(endpoint: TokenEndpoint) -> None:
    settings = faust_settings(oidc_kafka(endpoint, **{"security.protocol": "SASL_SSL"}))
    creds = settings["broker_credentials"]
    assert isinstance(creds, faust.OAuthCredentials)
    assert creds.protocol is AuthProtocol.SASL_SSL
    assert creds.mechanism is SASLMechanism.OAUTHBEARER
    assert creds.ssl_context is not None
    value = asyncio.run(creds.oauth_cb.token())
    assert claims(value)["sub"] == endpoint.client_id


def test_oauthbearer_in_the_extra_alone_says_to_set_kafka_auth() -> None:
    with pytest.raises(ConfigError, match=r"\[kafka\] auth"):
        faust_credentials({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"})


def test_msk_iam_is_found_through_the_registered_token_source() -> None:
    kafka = Settings(
        aws={"region": "eu-west-1", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "x" * 40},
        kafka={"auth": "aws_msk_iam"},
    ).kafka
    value, expiry, *_ = admin_config(kafka)["oauth_cb"]("")
    url = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    assert url.startswith("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect")
    assert expiry > 0


class FailingAfterFirst(Counting):
    def fetch(self) -> oauth.Token:
        if self.fetched:
            raise Unavailable("the OAuth token endpoint http://idp/token did not answer")
        return super().fetch()


def test_a_failed_renewal_in_librdkafkas_callback_is_logged_then_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [0.0]
    cached = oauth.RefreshingToken(FailingAfterFirst(100, clock), clock=lambda: clock[0])
    callback = oauth.librdkafka_callback(cached)
    assert callback("")[0] == "t1"
    clock[0] = 90.0
    with caplog.at_level("WARNING"), pytest.raises(Unavailable):
        callback("")  # librdkafka turns the exception into a token failure and retries
    assert "Kafka token renewal failed" in caplog.text
    assert "http://idp/token did not answer" in caplog.text
