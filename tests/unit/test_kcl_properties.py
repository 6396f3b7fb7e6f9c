"""`ddb-bridge kcl properties`: the MultiLangDaemon's properties file, through the real CLI."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from bridge.model.errors import ConfigError
from bridge.runtime.config_file import write_config
from bridge.runtime.settings import AwsSettings, Settings
from connectors.sources.stream.kcl.properties import kcl_properties
from ddb_bridge.cli.main import main


def parse(text: str) -> dict[str, str]:
    """java.util.Properties' `key = value` lines (comments skipped)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def test_the_file_names_everything_the_daemon_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path / "bridge.toml",
        aws={"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:4566"},
        stream={"initial_position": "LATEST"},
    )
    out = tmp_path / "orders.properties"
    monkeypatch.chdir(tmp_path)
    code = main(
        ["kcl", "properties", "--config", "bridge.toml", "--table", "orders", "--stream-name",
         "orders-changes", "--set", "failoverTimeMillis=3000", "--output", str(out)]
    )  # fmt: skip
    assert code == 0
    props = parse(out.read_text())
    assert props == {
        "executableName": f"{sys.executable} -m ddb_bridge.kcl_processor --config "
        f"{config.resolve()} --table orders --stream-name orders-changes",
        "streamName": "orders-changes",
        "applicationName": "ddb-bridge-orders",
        "tableName": "ddb-bridge-orders",
        "initialPositionInStream": "LATEST",
        "processingLanguage": f"python/{sys.version_info.major}.{sys.version_info.minor}",
        "AwsCredentialsProvider": "DefaultCredentialsProvider",
        "regionName": "eu-west-1",
        "retrievalMode": "POLLING",
        "metricsLevel": "NONE",
        "callProcessRecordsEvenForEmptyRecordList": "true",
        "clientVersionConfig": "CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X",
        "kinesisEndpoint": "http://127.0.0.1:4566",
        "dynamoDBEndpoint": "http://127.0.0.1:4566",
        "failoverTimeMillis": "3000",
    }
    # The processor command line parses back to the same options (the daemon splits on blanks).
    words = shlex.split(props["executableName"])
    assert words[words.index("--table") + 1] == "orders"


def test_aws_endpoints_are_left_out_when_unset(tmp_path: Path) -> None:
    text = kcl_properties(
        Settings(), table="t", stream_name="s", config=None, kinesis_endpoint=None
    )
    props = parse(text)
    assert "kinesisEndpoint" not in props and "dynamoDBEndpoint" not in props
    assert "--config" not in props["executableName"]
    assert props["regionName"] == "us-east-1"
    assert props["initialPositionInStream"] == "TRIM_HORIZON"


def test_a_kinesis_endpoint_of_its_own(tmp_path: Path) -> None:
    settings = Settings(aws=AwsSettings(endpoint_url="http://ddb:8000"))
    props = parse(
        kcl_properties(
            settings, table="t", stream_name="s", config=None, kinesis_endpoint="http://k:1"
        )
    )
    assert props["kinesisEndpoint"] == "http://k:1"
    assert props["dynamoDBEndpoint"] == "http://ddb:8000"


def test_a_config_path_with_a_space_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="splits executableName on whitespace"):
        kcl_properties(Settings(), table="t", stream_name="s", config=tmp_path / "my config.toml")


def test_a_bad_set_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["kcl", "properties", "--table", "t", "--stream-name", "s", "--set", "novalue"])
    assert code == 2
    assert "--set 'novalue': expected KEY=VALUE" in capsys.readouterr().err


def test_the_stream_comes_from_the_settings_by_name_or_arn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bridge.toml"
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders-changes"
    write_config(
        config,
        stream={"transport": "kinesis", "stream_name": "shared"},
        tables=[{"name": "orders", "kinesis_stream": arn}, {"name": "users"}],
    )
    assert main(["kcl", "properties", "--config", str(config), "--table", "orders"]) == 0
    orders = parse(capsys.readouterr().out)
    assert orders["streamArn"] == arn and "streamName" not in orders
    assert orders["executableName"].endswith(f"--table orders --stream-name {arn}")
    assert main(["kcl", "properties", "--config", str(config), "--table", "users"]) == 0
    assert parse(capsys.readouterr().out)["streamName"] == "shared"


def test_no_stream_anywhere_is_a_configuration_error_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "bridge.toml", tables=[{"name": "orders"}])
    assert main(["kcl", "properties", "--config", str(config), "--table", "orders"]) == 2
    assert "stream_name" in capsys.readouterr().err


def test_an_assumed_role_and_per_service_endpoints_reach_the_daemon(tmp_path: Path) -> None:
    settings = Settings(
        aws=AwsSettings(
            region="eu-west-1",
            endpoint_url="http://fallback:4566",
            endpoints={"kinesis": "http://kinesis:1", "sts": "http://sts:3"},
            role_arn="arn:aws:iam::123456789012:role/migrator",
            external_id="ext-1",
            role_session_name="kcl-orders",
        )
    )
    props = parse(kcl_properties(settings, table="orders", stream_name="s", config=None))
    # KCL multilang's KclStsAssumeRoleCredentialsProvider: arn|session|nested=properties,
    # `endpoint` being "url^signing region".
    assert props["AwsCredentialsProvider"] == (
        "KclStsAssumeRoleCredentialsProvider|arn:aws:iam::123456789012:role/migrator|kcl-orders"
        "|endpointRegion=eu-west-1|externalId=ext-1|endpoint=http://sts:3^eu-west-1"
    )
    assert props["kinesisEndpoint"] == "http://kinesis:1"
    assert props["dynamoDBEndpoint"] == "http://fallback:4566"


def test_static_keys_the_daemon_cannot_take_are_refused_by_name(tmp_path: Path) -> None:
    settings = Settings(
        aws=AwsSettings(access_key_id="AKID", secret_access_key="s", session_token="t")
    )
    with pytest.raises(ConfigError, match=r"aws\.access_key_id.*KCL"):
        kcl_properties(settings, table="orders", stream_name="s", config=None)


def test_a_profile_reaches_the_daemon_and_a_role_from_a_profile_is_refused() -> None:
    with_profile = Settings(aws=AwsSettings(profile="migration"))
    props = parse(kcl_properties(with_profile, table="orders", stream_name="s", config=None))
    assert props["AwsCredentialsProvider"] == "ProfileCredentialsProvider|migration"
    role = Settings(
        aws=AwsSettings(profile="migration", role_arn="arn:aws:iam::123456789012:role/r")
    )
    with pytest.raises(ConfigError, match=r"aws\.profile with aws\.role_arn.*AWS_PROFILE"):
        kcl_properties(role, table="orders", stream_name="s", config=None)


def test_the_dynamodb_streams_file_names_the_stream_arn_and_its_endpoints(tmp_path: Path) -> None:
    settings = Settings(
        aws=AwsSettings(
            region="eu-west-1",
            endpoint_url="http://fallback:4566",
            endpoints={"dynamodbstreams": "http://streams:2"},
        )
    )
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2026-12-07T15:00:00.000"
    config = write_config(tmp_path / "bridge.toml")
    text = kcl_properties(settings, table="orders", dynamodb_stream_arn=arn, config=config)
    props = parse(text)
    assert props == {
        "executableName": f"{sys.executable} -m ddb_bridge.kcl_processor --config "
        f"{config.resolve()} --table orders --transport dynamodb-streams",
        "dynamoDBStreamArn": arn,
        "applicationName": "ddb-bridge-orders",
        "tableName": "ddb-bridge-orders",
        "initialPositionInStream": "TRIM_HORIZON",
        "processingLanguage": f"python/{sys.version_info.major}.{sys.version_info.minor}",
        "AwsCredentialsProvider": "DefaultCredentialsProvider",
        "regionName": "eu-west-1",
        "metricsLevel": "NONE",
        "callProcessRecordsEvenForEmptyRecordList": "true",
        "clientVersionConfig": "CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X",
        "dynamoDBStreamsEndpoint": "http://streams:2",
        "dynamoDBEndpoint": "http://fallback:4566",
    }
    # The header's command runs the project's launcher of the adapter, not the MultiLangDaemon.
    assert "ddbbridge.kcl.DynamoDBStreamsMultiLangDaemon --properties-file THIS_FILE" in text


def test_dynamodb_streams_refuses_kinesis_options(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["kcl", "properties", "--table", "t", "--transport", "dynamodb-streams",
                 "--stream-name", "s"])  # fmt: skip
    assert code == 2
    assert "--stream-name and --kinesis-endpoint are for --transport kinesis" in (
        capsys.readouterr().err
    )


def test_kcl_run_without_java_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["kcl", "run", "--table", "t", "--stream-name", "s", "--java", "/nowhere/java"])
    assert code == 2
    err = capsys.readouterr().err
    assert "needs Java 17 or newer" in err and "Traceback" not in err
