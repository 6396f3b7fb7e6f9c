"""The MultiLangDaemon's properties file for one table, from the bridge's settings.

Property names are the KCL's (MultiLangDaemonConfiguration of amazon-kinesis-client 3.x):
`streamName`, `applicationName`, `tableName` (the KCL's own lease table),
`initialPositionInStream`, `executableName` (the command the daemon starts per shard; it
splits it on whitespace, so no path in it may contain any), `retrievalMode = POLLING`
(GetRecords, no enhanced fan-out), `metricsLevel = NONE` (no CloudWatch),
`callProcessRecordsEvenForEmptyRecordList = true` and the 2.x-compatible lease assignment
(`clientVersionConfig`; see below for both), `regionName`, `kinesisEndpoint`/`dynamoDBEndpoint`
when an endpoint is set ([aws.endpoints] kinesis/dynamodb, else endpoint_url), and the
credentials (`AwsCredentialsProvider`, see `credentials_provider`).

On DynamoDB Streams (`transport="dynamodb-streams"`) the daemon is the project's launcher of
the DynamoDB Streams Kinesis Adapter (launcher.py, streams_launcher/): the same file, without
the Kinesis keys, plus the launcher's own `dynamoDBStreamArn` (the table's current stream) and
`dynamoDBStreamsEndpoint` ([aws.endpoints] dynamodbstreams, else endpoint_url).
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from bridge.model.errors import ConfigError
from bridge.runtime.settings import Settings
from connectors.sources.stream.kcl import launcher

MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
PROCESSOR_MODULE = "ddb_bridge.kcl_processor"
# processor.py's KclTransport (amazon-kclpy stays out of this module's imports).
KclTransportName = Literal["kinesis", "dynamodb-streams"]


def default_application_name(table: str) -> str:
    """The KCL application (and so its lease table's) name for a table."""
    return f"ddb-bridge-{table}"


def jars_dir() -> Path | None:
    """Where amazon-kclpy put the KCL's jars, or None when `ddb-bridge[kcl]` is not installed."""
    spec = importlib.util.find_spec("amazon_kclpy")
    if spec is None or spec.origin is None:
        return None
    jars = Path(spec.origin).parent / "jars"
    return jars if jars.is_dir() and any(jars.glob("*.jar")) else None


def daemon_command(
    properties_file: str, java: str = "java", transport: KclTransportName = "kinesis"
) -> list[str]:
    """The command line that runs the daemon on a properties file: the MultiLangDaemon for
    Kinesis, the adapter's launcher (its jars built already: launcher.ensure_jars) for
    DynamoDB Streams."""
    if transport == "dynamodb-streams":
        return [
            java,
            "-cp",
            f"{launcher.jars_dir()}/*",
            launcher.MAIN_CLASS,
            "--properties-file",
            properties_file,
        ]
    jars = jars_dir()
    if jars is None:
        raise ConfigError(
            "the KCL's jars are missing: pip install '.[kcl]' in the clone (amazon-kclpy downloads "
            "them from Maven Central when it is installed)"
        )
    return [java, "-cp", f"{jars}/*", MAIN_CLASS, "--properties-file", properties_file]


def processor_command(config: Path | None, table: str, stream_name: str | None, python: str) -> str:
    """The processor's command line; `stream_name` None: the table's DynamoDB stream."""
    words = [python, "-m", PROCESSOR_MODULE]
    if config is not None:
        # Absolute: the daemon may run in another directory.
        words += ["--config", str(config.resolve())]
    words += ["--table", table]
    words += (
        ["--transport", "dynamodb-streams"]
        if stream_name is None
        else ["--stream-name", stream_name]
    )
    spaced = [w for w in words if not w or any(c.isspace() for c in w)]
    if spaced:
        raise ConfigError(
            f"the KCL splits executableName on whitespace, so {spaced[0]!r} cannot be in it: "
            "use paths and names without spaces"
        )
    return " ".join(words)


def credentials_provider(settings: Settings) -> str:
    """The daemon's `AwsCredentialsProvider`: the Java SDK's default chain, or a profile, or
    KCL multilang's KclStsAssumeRoleCredentialsProvider for [aws] role_arn (its nested
    properties: `endpointRegion`, `externalId`, `endpoint=URL^SIGNING_REGION` for STS).

    What the KCL cannot be given is refused by name rather than dropped: static keys (its
    properties file has no place for them; the Java default chain reads them from
    AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN), and a role assumed from a
    profile (the provider assumes it from the default chain). The daemon's SDK picks the
    session's duration (role_duration_s is not passed) and renews it itself.
    """
    aws = settings.aws
    if aws.access_key_id or aws.secret_access_key or aws.session_token:
        raise ConfigError(
            "aws.access_key_id/secret_access_key/session_token cannot reach the KCL daemon "
            "(its properties file has no place for keys): remove them from the config and "
            "export AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) for the "
            "daemon and its processors instead"
        )
    if aws.role_arn is None:
        return (
            f"ProfileCredentialsProvider|{aws.profile}"
            if aws.profile
            else ("DefaultCredentialsProvider")
        )
    if aws.profile:
        raise ConfigError(
            "aws.profile with aws.role_arn cannot reach the KCL daemon: it assumes the role "
            "from the default chain; export AWS_PROFILE for it instead of setting aws.profile"
        )
    parts = [
        "KclStsAssumeRoleCredentialsProvider",
        aws.role_arn,
        aws.session_name(),
        f"endpointRegion={aws.region}",
    ]
    if aws.external_id:
        parts.append(f"externalId={aws.external_id}")
    sts = aws.endpoint("sts")
    if sts:
        parts.append(f"endpoint={sts}^{aws.region}")
    # `|` separates the provider's parameters and `^` an endpoint from its region.
    for name, value in (("role_arn", aws.role_arn), ("external_id", aws.external_id),
                        ("region", aws.region), ("endpoints.sts", sts)):  # fmt: skip
        if value and ("|" in value or "^" in value):
            raise ConfigError(f"aws.{name} {value!r}: the KCL's AwsCredentialsProvider cannot "
                              "hold a '|' or '^'")  # fmt: skip
    return "|".join(parts)


def _escape(value: str) -> str:
    # java.util.Properties: a backslash escapes, and a value's leading blanks are dropped.
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def kcl_properties(
    settings: Settings,
    *,
    table: str,
    stream_name: str | None = None,
    config: Path | None,
    application_name: str | None = None,
    kinesis_endpoint: str | None = None,
    python: str | None = None,
    extra: Mapping[str, str] | None = None,
    dynamodb_stream_arn: str | None = None,
) -> str:
    """The properties file's text: for the Kinesis data stream `stream_name`, or, given
    `dynamodb_stream_arn` instead, for the table's DynamoDB stream (the adapter's launcher)."""
    if (stream_name is None) == (dynamodb_stream_arn is None):
        raise ValueError("give either a Kinesis stream_name or a dynamodb_stream_arn")
    app = application_name or default_application_name(table)
    command = processor_command(config, table, stream_name, python or sys.executable)
    props: dict[str, str] = {"executableName": command}
    if stream_name is not None:
        # The KCL takes a stream by name or by ARN (then it reads the name from the ARN).
        props["streamArn" if stream_name.startswith("arn:") else "streamName"] = stream_name
    else:
        assert dynamodb_stream_arn is not None
        props["dynamoDBStreamArn"] = dynamodb_stream_arn
    props |= {
        "applicationName": app,
        # The KCL's lease table (its own, not the bridge's [stream] lease_table).
        "tableName": app,
        "initialPositionInStream": settings.stream.initial_position,
        "processingLanguage": f"python/{sys.version_info.major}.{sys.version_info.minor}",
        "AwsCredentialsProvider": credentials_provider(settings),
        "regionName": settings.aws.region,
        "metricsLevel": "NONE",
        # Idle shards are called too: a checkpoint is only written from a call, and the one
        # after the last page must come once Kafka acknowledged it, not with the next record.
        "callProcessRecordsEvenForEmptyRecordList": "true",
        # KCL 3.x's own assignment waits for a leader lock (2 minutes, not configurable) that
        # a killed daemon keeps holding: a lone daemon restarted after kill -9 got no shard
        # for over two minutes. The 2.x-compatible mode takes an expired lease after
        # failoverTimeMillis. `--set clientVersionConfig=CLIENT_VERSION_CONFIG_3X` for 3.x.
        "clientVersionConfig": "CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X",
    }
    if stream_name is not None:
        # GetRecords, no enhanced fan-out (the adapter's launcher always polls).
        props["retrievalMode"] = "POLLING"
        kinesis = kinesis_endpoint or settings.aws.endpoint("kinesis")
        if kinesis:
            props["kinesisEndpoint"] = kinesis
    else:
        streams = settings.aws.endpoint("dynamodbstreams")
        if streams:
            props["dynamoDBStreamsEndpoint"] = streams
    dynamodb = settings.aws.endpoint("dynamodb")
    if dynamodb:
        props["dynamoDBEndpoint"] = dynamodb
    props.update(extra or {})
    if stream_name is None:
        run = (
            "#   "
            + shlex.join(daemon_command("THIS_FILE", transport="dynamodb-streams"))
            + "   (or: ddb-bridge kcl run --transport dynamodb-streams)"
        )
    elif jars_dir():
        run = "#   " + shlex.join(daemon_command("THIS_FILE"))
    else:
        run = "#   (install ddb-bridge[kcl] for the daemon's jars)"
    what = "DynamoDB Streams adapter" if stream_name is None else "MultiLangDaemon"
    header = [
        f"# The KCL {what}'s configuration for table {table} (ddb-bridge kcl properties).",
        "# Run it with:",
        run,
    ]
    lines = header + [f"{key} = {_escape(value)}" for key, value in props.items()]
    return "\n".join(lines) + "\n"
