"""[aws] credentials and endpoints against moto: an assumed role signs every AWS call of the
bridge (DynamoDB, Streams, S3, Kinesis), is refreshed before it expires, each service goes
to its own endpoint, and a role that cannot be assumed ends in one line.

What the servers saw is read from recording endpoints in front of moto: the access key id in
each request's SigV4 `Authorization` header is the one botocore signed with.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.runtime.config_file import write_config
from bridge.runtime.settings import AwsSettings
from connectors.dynamodb import assumed_role
from connectors.dynamodb.aws import client, session
from ddb_bridge.services.processes import free_port
from tests.support.daemon import run_bridge
from tests.support.recording_proxy import RecordingEndpoint, recording_endpoint

BASE_KEY, BASE_SECRET, BASE_TOKEN = "AKIDBASEKEY", "base-secret", "base-session-token"
SERVICES = {
    "dynamodb": "DynamoDB_20120810",
    "dynamodbstreams": "DynamoDBStreams_20120810",
    "s3": "s3",
    "kinesis": "Kinesis_20131202",
}


def role(name: str) -> str:
    return f"arn:aws:iam::123456789012:role/{name}"


def call(service: str, aws: AwsSettings) -> None:
    """One harmless call of `service` through the bridge's own client builder."""
    c: Any = client(service, aws)  # type: ignore[call-overload]
    {
        "dynamodb": lambda: c.list_tables(),
        "dynamodbstreams": lambda: c.list_streams(),
        "s3": lambda: c.list_buckets(),
        "kinesis": lambda: c.list_streams(),
    }[service]()


def assume_role_calls(sts: RecordingEndpoint) -> list[dict[str, str]]:
    calls = [dict(urllib.parse.parse_qsl(s.body)) for s in sts.seen]
    return [c for c in calls if c.get("Action") == "AssumeRole"]


@pytest.fixture
def endpoints(dynamodb_endpoint: str) -> Iterator[dict[str, tuple[str, RecordingEndpoint]]]:
    """A recording endpoint in front of moto for each service and for STS."""
    with (
        recording_endpoint(dynamodb_endpoint) as ddb,
        recording_endpoint(dynamodb_endpoint) as streams,
        recording_endpoint(dynamodb_endpoint) as s3,
        recording_endpoint(dynamodb_endpoint) as kinesis,
        recording_endpoint(dynamodb_endpoint) as sts,
    ):
        yield {"dynamodb": ddb, "dynamodbstreams": streams, "s3": s3, "kinesis": kinesis,
               "sts": sts}  # fmt: skip


def test_every_aws_client_signs_with_the_assumed_role_at_its_own_endpoint(
    endpoints: dict[str, tuple[str, RecordingEndpoint]], unique_name: Any
) -> None:
    arn = role(unique_name("migrator"))
    aws = AwsSettings(
        region="us-east-1",
        # Nothing listens there: a client falling back to it instead of its own fails.
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        endpoints={name: url for name, (url, _) in endpoints.items()},
        access_key_id=BASE_KEY,
        secret_access_key=BASE_SECRET,
        session_token=BASE_TOKEN,
        role_arn=arn,
        external_id="the-external-id",
        role_session_name="ddb-bridge-test",
        role_duration_s=1800,
    )
    for service in SERVICES:
        call(service, aws)

    sts = endpoints["sts"][1]
    (assumed,) = assume_role_calls(sts)
    assert assumed["RoleArn"] == arn
    assert assumed["ExternalId"] == "the-external-id"
    assert assumed["RoleSessionName"] == "ddb-bridge-test"
    assert assumed["DurationSeconds"] == "1800"
    # The role is assumed with the base credentials, session token included.
    assert {(s.access_key_id, s.session_token) for s in sts.seen} == {(BASE_KEY, BASE_TOKEN)}

    role_key = session(aws).get_credentials().get_frozen_credentials().access_key
    assert role_key != BASE_KEY
    for service, api in SERVICES.items():
        seen = endpoints[service][1]
        assert seen.apis() == {api}, f"{service}'s endpoint saw {seen.apis()}"
        assert seen.access_keys() == {role_key}, f"{service} signed with {seen.access_keys()}"


def test_a_session_token_reaches_every_client(
    endpoints: dict[str, tuple[str, RecordingEndpoint]],
) -> None:
    aws = AwsSettings(
        endpoints={name: url for name, (url, _) in endpoints.items()},
        access_key_id=BASE_KEY,
        secret_access_key=BASE_SECRET,
        session_token=BASE_TOKEN,
    )
    for service in SERVICES:
        call(service, aws)
        seen = endpoints[service][1].seen
        assert seen and {(s.access_key_id, s.session_token) for s in seen} == {
            (BASE_KEY, BASE_TOKEN)
        }
    assert not endpoints["sts"][1].seen  # no role: STS is never called


def test_the_endpoint_url_is_the_fallback_of_every_service(
    endpoints: dict[str, tuple[str, RecordingEndpoint]],
) -> None:
    url, everything = endpoints["dynamodb"]
    aws = AwsSettings(endpoint_url=url, endpoints={"s3": endpoints["s3"][0]})
    for service in SERVICES:
        call(service, aws)
    assert everything.apis() == {SERVICES[s] for s in SERVICES if s != "s3"}
    assert endpoints["s3"][1].apis() == {"s3"}


def test_the_assumed_credentials_are_refreshed_before_they_expire(
    endpoints: dict[str, tuple[str, RecordingEndpoint]],
    monkeypatch: pytest.MonkeyPatch,
    unique_name: Any,
) -> None:
    sts = endpoints["sts"][1]
    # The first credentials age by `aged[0]`; moto dates the next ones from its own clock,
    # so once they are fetched the bridge's clock is the real one again.
    aged = [timedelta(0)]

    def clock() -> datetime:
        return datetime.now(UTC) + (aged[0] if len(assume_role_calls(sts)) < 2 else timedelta(0))

    monkeypatch.setattr(assumed_role, "now", clock)
    url, ddb_seen = endpoints["dynamodb"]
    aws = AwsSettings(
        endpoints={"dynamodb": url, "sts": endpoints["sts"][0]},
        access_key_id=BASE_KEY,
        secret_access_key=BASE_SECRET,
        role_arn=role(unique_name("daemon")),
        role_duration_s=3600,
    )
    ddb = client("dynamodb", aws)  # made once, as a daemon's reader does
    ddb.list_tables()
    ddb.list_tables()
    first = ddb_seen.access_keys()
    assert len(first) == 1 and len(assume_role_calls(sts)) == 1

    # 40 minutes on, 20 left: still theirs, no AssumeRole.
    aged[0] = timedelta(minutes=40)
    ddb.list_tables()
    assert len(assume_role_calls(sts)) == 1 and ddb_seen.access_keys() == first

    # 55 minutes on, 5 left: renewed before the request, which signs with the new keys.
    aged[0] = timedelta(minutes=55)
    ddb.list_tables()
    ddb.list_tables()
    assert len(assume_role_calls(sts)) == 2
    second = {s.access_key_id for s in ddb_seen.seen[-2:]}
    assert len(second) == 1 and second != first, "the same client signs with the new keys"


def test_short_sessions_are_not_renewed_at_every_request() -> None:
    # STS's shortest session is 15 minutes, botocore's renewal window 15 minutes too.
    windows = assumed_role.refresh_windows(900)
    assert 0 < windows["mandatory_timeout"] < windows["advisory_timeout"] < 900
    assert assumed_role.refresh_windows(3600) == {"advisory_timeout": 900, "mandatory_timeout": 600}


ACCESS_DENIED = """<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<Error><Type>Sender</Type><Code>AccessDenied</Code>
<Message>User: arn:aws:iam::123456789012:user/base
is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>1</RequestId>
</ErrorResponse>"""


@pytest.mark.parametrize("sts_answers", ["access denied", "nothing"])
def test_a_role_that_cannot_be_assumed_ends_in_one_line_naming_it(
    tmp_path: Path, dynamodb_endpoint: str, sts_answers: str, unique_name: Any
) -> None:
    arn = role(unique_name("forbidden"))
    with recording_endpoint(None, answer=(403, ACCESS_DENIED)) as (denying, _):
        sts = denying if sts_answers == "access denied" else f"http://127.0.0.1:{free_port()}"
        config = write_config(
            tmp_path / "bridge.toml",
            aws={
                "endpoint_url": dynamodb_endpoint,
                "endpoints": {"sts": sts},
                "role_arn": arn,
                "external_id": "wrong",
            },
        )
        result = run_bridge(["schema", "cql"], config, "--table", "orders")
    assert result.returncode == (2 if sts_answers == "access denied" else 75), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert arn in lines[0]
    assert ("AccessDenied" in lines[0]) == (sts_answers == "access denied")
    assert "[aws]" in lines[0]  # says which settings to look at


def test_a_command_assumes_the_role_in_a_session_named_after_it(
    tmp_path: Path,
    endpoints: dict[str, tuple[str, RecordingEndpoint]],
    dynamodb_endpoint: str,
    unique_name: Any,
) -> None:
    table = unique_name("orders").replace("-", "_")
    setup: Any = client("dynamodb", AwsSettings(endpoint_url=dynamodb_endpoint))
    setup.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    config = write_config(
        tmp_path / "bridge.toml",
        aws={
            "endpoint_url": f"http://127.0.0.1:{free_port()}",
            "endpoints": {"dynamodb": endpoints["dynamodb"][0], "sts": endpoints["sts"][0]},
            "access_key_id": BASE_KEY,
            "secret_access_key": BASE_SECRET,
            "role_arn": role(unique_name("schema")),
        },
    )
    result = run_bridge(["schema", "cql"], config, "--table", table)
    assert result.returncode == 0, result.stderr
    assert "pk" in result.stdout  # DescribeTable answered through the role
    (assumed,) = assume_role_calls(endpoints["sts"][1])
    assert assumed["RoleSessionName"] == "ddb-bridge-schema"
    keys = endpoints["dynamodb"][1].access_keys()
    assert len(keys) == 1 and BASE_KEY not in keys


def test_a_failed_renewal_keeps_the_current_keys_and_logs_one_line(
    endpoints: dict[str, tuple[str, RecordingEndpoint]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    unique_name: Any,
) -> None:
    aged = [timedelta(0)]
    monkeypatch.setattr(assumed_role, "now", lambda: datetime.now(UTC) + aged[0])
    url, ddb_seen = endpoints["dynamodb"]
    arn = role(unique_name("renewal"))
    aws = AwsSettings(
        endpoints={"dynamodb": url, "sts": endpoints["sts"][0]},
        access_key_id=BASE_KEY,
        secret_access_key=BASE_SECRET,
        role_arn=arn,
    )
    ddb = client("dynamodb", aws)
    ddb.list_tables()
    first = ddb_seen.access_keys()
    # STS now refuses; 12 minutes are left: a renewal is tried, the current keys still serve.
    endpoints["sts"][1].answer = (403, ACCESS_DENIED)
    aged[0] = timedelta(minutes=48)
    caplog.clear()
    ddb.list_tables()
    assert ddb_seen.access_keys() == first
    failed = [r for r in caplog.records if "renew" in r.getMessage() or "refresh" in r.getMessage()]
    assert failed, [r.getMessage() for r in caplog.records]
    assert all(r.exc_info is None for r in failed), "a traceback in the daemon's log"
    assert any(arn in r.getMessage() and "AccessDenied" in r.getMessage() for r in failed)
