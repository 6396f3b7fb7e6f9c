"""`[kafka.extra]` security options reach Faust's consumer as the matching credentials."""

from __future__ import annotations

import faust
import pytest
from faust.types.auth import AuthProtocol, SASLMechanism

from bridge.apply.kafka_auth import faust_credentials
from bridge.model.errors import ConfigError


def test_plaintext_has_no_credentials() -> None:
    assert faust_credentials({}) is None
    assert faust_credentials({"security.protocol": "plaintext"}) is None


def test_sasl_ssl_scram() -> None:
    creds = faust_credentials(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "bridge",
            "sasl.password": "s3cret",
        }
    )
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol is AuthProtocol.SASL_SSL
    assert creds.mechanism is SASLMechanism.SCRAM_SHA_512
    assert (creds.username, creds.password) == ("bridge", "s3cret")
    assert creds.ssl_context is not None


def test_sasl_plaintext_defaults_to_plain() -> None:
    creds = faust_credentials(
        {"security.protocol": "SASL_PLAINTEXT", "sasl.username": "u", "sasl.password": "p"}
    )
    assert creds.protocol is AuthProtocol.SASL_PLAINTEXT
    assert creds.mechanism is SASLMechanism.PLAIN
    assert creds.ssl_context is None


def test_ssl_without_hostname_check() -> None:
    creds = faust_credentials(
        {"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "none"}
    )
    assert isinstance(creds, faust.SSLCredentials)
    assert creds.context.check_hostname is False


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"security.protocol": "KERBEROS"}, "security.protocol"),
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI"}, "sasl.mechanism"),
    ],
)
def test_unsupported_options_are_config_errors(extra: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        faust_credentials(extra)
