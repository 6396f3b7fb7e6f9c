"""`DDB_BRIDGE__KAFKA__EXTRA__SASL_PASSWORD`: the documented environment form reaches the
maps of dotted client properties as the dotted key the client takes (`sasl.password`)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.kafka import publisher
from bridge.runtime.settings import load_settings


class Recorded(Exception):
    pass


def test_an_env_override_of_a_dotted_librdkafka_key_reaches_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DDB_BRIDGE__KAFKA__EXTRA__SASL_PASSWORD", "from-the-env")
    monkeypatch.setenv("DDB_BRIDGE__KAFKA__EXTRA__SECURITY_PROTOCOL", "SASL_SSL")
    settings = load_settings(None)
    expected = {"sasl.password": "from-the-env", "security.protocol": "SASL_SSL"}
    assert settings.kafka.extra == expected

    seen: list[dict[str, Any]] = []

    def producer(config: dict[str, Any]) -> Any:
        seen.append(config)
        raise Recorded

    monkeypatch.setattr(publisher, "Producer", producer)
    with pytest.raises(Recorded):
        publisher.Publisher(settings.kafka)
    assert seen[0]["sasl.password"] == "from-the-env"
    assert seen[0]["security.protocol"] == "SASL_SSL"
    assert "sasl_password" not in seen[0]


def test_an_env_override_of_a_registry_option_is_dotted_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DDB_BRIDGE__KAFKA__SCHEMA_REGISTRY_EXTRA__SSL_CA_LOCATION", "/ca.pem")
    assert load_settings(None).kafka.schema_registry_extra == {"ssl.ca.location": "/ca.pem"}


def test_a_toml_key_is_taken_as_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # Only the environment's form is translated: the file writes the dotted key itself.
    path = tmp_path / "bridge.toml"
    path.write_text('[kafka.extra]\n"sasl.username" = "u"\n')
    assert load_settings(path).kafka.extra == {"sasl.username": "u"}


def test_target_names_in_the_environment_keep_their_underscores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DDB_BRIDGE__TARGETS__MY_PG__TYPE", "postgres")
    monkeypatch.setenv("DDB_BRIDGE__TARGETS__MY_PG__DSN", "postgresql://h/db")
    assert "my_pg" in load_settings(None).targets


def test_a_per_service_endpoint_is_set_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DDB_BRIDGE__AWS__ENDPOINTS__STS", "https://sts.vpce.example")
    aws = load_settings(None).aws
    assert aws.endpoint("sts") == "https://sts.vpce.example"
    assert aws.endpoint("dynamodb") is None
