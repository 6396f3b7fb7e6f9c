"""Secrets never printed: `config show`, log lines and error messages, through the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from bridge.runtime.config_file import write_config
from tests.backfill_helpers import create_table
from tests.support.daemon import run_bridge

pytestmark = pytest.mark.e2e

# (the config sections holding one secret, the secret). Each is checked on its own, so a case
# that leaks is named by its id.
SECRET_SETTINGS: dict[str, tuple[dict[str, Any], str]] = {
    "aws.access_key_id": ({"aws": {"access_key_id": "AKIA-S3cret-01"}}, "AKIA-S3cret-01"),
    "aws.secret_access_key": ({"aws": {"secret_access_key": "Aws-S3cret-02"}}, "Aws-S3cret-02"),
    "aws.endpoint_url userinfo": (
        {"aws": {"endpoint_url": "https://me:Url-S3cret-03@dynamo.example:8000"}},
        "Url-S3cret-03",
    ),
    "aws.session_token": (
        {"aws": {"access_key_id": "k", "secret_access_key": "s", "session_token": "Tok-S3cret-21"}},
        "Tok-S3cret-21",
    ),
    "aws.endpoints userinfo": (
        {"aws": {"endpoints": {"sts": "https://me:Url-S3cret-22@sts.example"}}},
        "Url-S3cret-22",
    ),
    "kafka.extra sasl.password": (
        {"kafka": {"extra": {"sasl.password": "Sasl-S3cret-04"}}},
        "Sasl-S3cret-04",
    ),
    "kafka.extra ssl.key.password": (
        {"kafka": {"extra": {"ssl.key.password": "Key-S3cret-05"}}},
        "Key-S3cret-05",
    ),
    "kafka.extra sasl.oauthbearer.client.secret": (
        {"kafka": {"extra": {"sasl.oauthbearer.client.secret": "Oauth-S3cret-06"}}},
        "Oauth-S3cret-06",
    ),
    "kafka.extra ssl.keystore.password": (
        {"kafka": {"extra": {"ssl.keystore.password": "Store-S3cret-07"}}},
        "Store-S3cret-07",
    ),
    "kafka.extra ssl.key.pem": (
        {"kafka": {"extra": {"ssl.key.pem": "-----BEGIN PRIVATE KEY-----Pem-S3cret-08"}}},
        "Pem-S3cret-08",
    ),
    "kafka.extra sasl.kerberos.keytab": (
        {"kafka": {"extra": {"sasl.kerberos.keytab": "/etc/Keytab-S3cret-09.keytab"}}},
        "Keytab-S3cret-09",
    ),
    "kafka.extra sasl.oauthbearer.config": (
        {"kafka": {"extra": {"sasl.oauthbearer.config": "principal=me secret=Cfg-S3cret-10"}}},
        "Cfg-S3cret-10",
    ),
    "kafka.schema_registry_url userinfo": (
        {"kafka": {"schema_registry_url": "https://key:Reg-S3cret-11@registry.example"}},
        "Reg-S3cret-11",
    ),
    "kafka.schema_registry_user_info": (
        {"kafka": {"schema_registry_user_info": "key:Reg-S3cret-12"}},
        "Reg-S3cret-12",
    ),
    "kafka.schema_registry_extra basic.auth.user.info": (
        {"kafka": {"schema_registry_extra": {"basic.auth.user.info": "key:Reg-S3cret-13"}}},
        "Reg-S3cret-13",
    ),
    "kafka.schema_registry_extra ssl.key.password": (
        {"kafka": {"schema_registry_extra": {"ssl.key.password": "Reg-S3cret-14"}}},
        "Reg-S3cret-14",
    ),
    "kafka.oauth_client_secret": (
        {
            "kafka": {
                "auth": "oauthbearer_oidc",
                "oauth_token_url": "https://idp.example/token",
                "oauth_client_id": "bridge",
                "oauth_client_secret": "Oidc-S3cret-21",
            }
        },
        "Oidc-S3cret-21",
    ),
    "postgres dsn url": (
        {"targets": {"pg": {"type": "postgres", "dsn": "postgresql://u:Pg-S3cret-15@db/x"}}},
        "Pg-S3cret-15",
    ),
    "postgres dsn key=value": (
        {"targets": {"pg": {"type": "postgres", "dsn": "host=db user=u password=Pg-S3cret-16"}}},
        "Pg-S3cret-16",
    ),
    "scylla password": (
        {"targets": {"cql": {"type": "scylla", "username": "u", "password": "Cql-S3cret-17"}}},
        "Cql-S3cret-17",
    ),
    "alternator keys and url": (
        {
            "targets": {
                "alt": {
                    "type": "alternator",
                    "endpoint_url": "http://u:Alt-S3cret-18@alt:8000",
                    "access_key_id": "Alt-S3cret-19",
                    "secret_access_key": "Alt-S3cret-20",
                }
            }
        },
        "Alt-S3cret-",
    ),
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DDB_BRIDGE")}
    env.update(extra)
    return env


def cli(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Metrics off unless a test asks: the daemons' default port is fixed, and another
    # pytest worker's daemon may hold it.
    env = clean_env(**{"DDB_BRIDGE__METRICS__PORT": "0", **env})
    return run_bridge(args, config, env=env, timeout_s=120)


@pytest.mark.parametrize("setting", sorted(SECRET_SETTINGS))
def test_config_show_masks_every_secret_bearing_setting(setting: str, tmp_path: Path) -> None:
    sections, secret = SECRET_SETTINGS[setting]
    config = write_config(tmp_path / "bridge.toml", **sections)
    result = cli(config, "config", "show")
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    assert "**********" in result.stdout


def test_secrets_from_the_environment_are_masked_too(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text("")
    result = cli(
        config,
        "config",
        "show",
        DDB_BRIDGE__KAFKA__SCHEMA_REGISTRY_USER_INFO="key:Env-S3cret-21",
        DDB_BRIDGE__KAFKA__EXTRA='{"sasl.password": "Env-S3cret-22", "client.id": "visible"}',
    )
    assert result.returncode == 0, result.stderr
    assert "Env-S3cret" not in result.stdout
    assert '"client.id": "visible"' in result.stdout  # not every option is a secret


def test_a_config_error_does_not_echo_a_secret(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "bridge.toml",
        targets={"pg": {"type": "postgres", "dsn": "postgresql://u:Pg-S3cret-23@db/x"}},
    )
    result = cli(config, "apply", "--target", "nope")
    assert result.returncode == 2
    assert "targets.nope" in result.stderr
    assert "Pg-S3cret-23" not in result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    "dsn",
    [
        # refused: psycopg names host and port only
        "postgresql://bridge:Pg-S3cret-24@127.0.0.1:1/db",
        # malformed: libpq quotes the whole URI, password included, in its error message
        "postgresql://bridge:Pg-S3cret-24@[::1/db",
    ],
    ids=["refused", "malformed"],
)
def test_a_failing_connection_logs_no_secret(
    dsn: str, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "bridge.toml",
        kafka={"bootstrap_servers": kafka_bootstrap, "partitions": 1, "replication_factor": 1},
        tables=[{"name": unique_name("red"), "hash_key": "pk"}],
        targets={"pg": {"type": "postgres", "dsn": dsn}},
        apply={"max_retries": 2, "retry_backoff_ms": 10, "retry_backoff_max_ms": 20},
    )
    result = cli(config, "apply", "--target", "pg", "--log-level", "DEBUG")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "PostgreSQL" in output or "postgres" in output.lower(), output
    assert "Pg-S3cret-24" not in output, output


@pytest.mark.integration
def test_an_unreachable_registry_logs_no_secret(
    dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    table = unique_name("red")
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    create_table(ddb, table, stream=False)
    config = write_config(
        tmp_path / "bridge.toml",
        aws={"endpoint_url": dynamodb_endpoint},
        kafka={
            "bootstrap_servers": kafka_bootstrap,
            "partitions": 1,
            "replication_factor": 1,
            "schema_registry_url": f"http://reg-user:Reg-S3cret-26@127.0.0.1:{port}",
            "schema_registry_extra": {"max.retries": 0},
        },
    )
    result = cli(
        config,
        "backfill",
        "--table",
        table,
        "--from",
        "scan",
        "--no-stream",
        "--no-progress",
        "--log-level",
        "DEBUG",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "schema registry http://reg-user:**********@127.0.0.1" in output
    assert "Reg-S3cret-26" not in output, output
