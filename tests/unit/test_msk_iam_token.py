"""The MSK IAM token source against the signer's documented token form: base64url without
padding of a SigV4-presigned URL
`https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-...&User-Agent=...`,
signed with the bridge's AWS credential chain (`connectors.dynamodb.aws.session`)."""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bridge.model.errors import ConfigError
from bridge.runtime.settings import Settings
from connectors.kafka_msk_iam import MskIamToken

ACCESS_KEY = "AKIDMSKEXAMPLE01"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def decode(token: str) -> tuple[str, dict[str, str]]:
    assert "=" not in token and re.fullmatch(r"[A-Za-z0-9_-]+", token), token
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    assert url.startswith(f"https://{parts.netloc}/?Action=kafka-cluster%3AConnect&"), url
    return f"{parts.scheme}://{parts.netloc}{parts.path}", query


def check_form(token: str, expires_at: float, region: str, access_key: str) -> dict[str, str]:
    base, query = decode(token)
    assert base == f"https://kafka.{region}.amazonaws.com/"
    assert query["Action"] == "kafka-cluster:Connect"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    today = datetime.now(UTC).strftime("%Y%m%d")
    assert query["X-Amz-Credential"] == f"{access_key}/{today}/{region}/kafka-cluster/aws4_request"
    assert query["X-Amz-SignedHeaders"] == "host"
    assert re.fullmatch(r"[0-9a-f]{64}", query["X-Amz-Signature"])
    assert query["User-Agent"].startswith("aws-msk-iam-sasl-signer-python/")
    assert list(query)[-1] == "User-Agent"  # the signer appends it after signing
    signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expires = int(query["X-Amz-Expires"])
    assert expires == 900
    assert expires_at == signed.timestamp() + expires
    assert time.time() < expires_at <= time.time() + expires + 1
    return query


def test_static_keys_sign_a_connect_url_for_the_msk_region() -> None:
    settings = Settings(
        aws={"region": "us-east-1", "access_key_id": ACCESS_KEY, "secret_access_key": SECRET},
        kafka={"auth": "aws_msk_iam", "msk_region": "eu-west-1"},
    )
    token = MskIamToken(settings.kafka.msk_region or "", settings.aws).fetch()
    query = check_form(token.value, token.expires_at, "eu-west-1", ACCESS_KEY)
    assert "X-Amz-Security-Token" not in query
    assert token.principal == ""  # MSK takes the principal from the signature


def test_a_profile_with_a_session_token_signs_through_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[migration]\n"
        "aws_access_key_id = ASIAPROFILEEXAMPLE\n"
        f"aws_secret_access_key = {SECRET}\n"
        "aws_session_token = FwoGZXIvYXdzEXAMPLESESSION\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        aws={"region": "ap-southeast-2", "profile": "migration"}, kafka={"auth": "aws_msk_iam"}
    )
    token = MskIamToken(settings.kafka.msk_region or "", settings.aws).fetch()
    query = check_form(token.value, token.expires_at, "ap-southeast-2", "ASIAPROFILEEXAMPLE")
    assert query["X-Amz-Security-Token"] == "FwoGZXIvYXdzEXAMPLESESSION"


def test_no_credentials_is_a_config_error_naming_msk_and_the_aws_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    # No instance metadata to ask on a test machine: fail at once instead of after timeouts.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (*AWS_ENV, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(aws={"region": "eu-west-1"}, kafka={"auth": "aws_msk_iam"})
    with pytest.raises(ConfigError, match=r"MSK IAM.*\[aws\]"):
        MskIamToken("eu-west-1", settings.aws).fetch()
