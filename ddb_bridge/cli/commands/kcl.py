"""`ddb-bridge kcl properties`: the KCL MultiLangDaemon's properties file for one table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.model.errors import ConfigError
from bridge.runtime.settings import Settings, config_path, load_settings
from connectors.dynamodb.kinesis_stream import NAME_HINT, kinesis_stream_name
from connectors.sources.stream.kcl.properties import (
    default_application_name,
    kcl_properties,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.common_options import add_common
    from ddb_bridge.cli.helptext import HelpFormatter, from_setting

    kcl = sub.add_parser(
        "kcl",
        help="the Java KCL's MultiLangDaemon as the stream reader (Kinesis Data Streams)",
        description=(
            "Run the bridge's record processor under the Amazon Kinesis Client Library's\n"
            "MultiLangDaemon (pip install '.[kcl]' in the clone; Java 17+), reading the Kinesis\n"
            "data stream a table streams its changes to (Kinesis Data Streams for DynamoDB)."
        ),
        formatter_class=HelpFormatter,
    )
    actions = kcl.add_subparsers(dest="kcl_command", metavar="ACTION")
    actions.required = True
    p = actions.add_parser(
        "properties",
        help="write the daemon's properties file for one table",
        description=(
            "Write the MultiLangDaemon's properties file: stream name, application name (also\n"
            "the KCL's lease table), initial position, the processor's command line (with\n"
            "this --config), polling retrieval, metrics off, region and endpoints from [aws].\n"
            "The file's first lines give the java command that runs the daemon on it."
        ),
        formatter_class=HelpFormatter,
    )
    add_common(p)
    p.add_argument("--table", required=True, help="source DynamoDB table")
    p.add_argument(
        "--stream-name",
        default=None,
        metavar="NAME_OR_ARN",
        help="the Kinesis data stream the table streams its changes to [default: the table's "
        f"[[tables]] kinesis_stream, else {from_setting('stream.stream_name')}]",
    )
    p.add_argument(
        "--application-name",
        default=None,
        help="the KCL application, also its lease table [default: ddb-bridge-<table>]",
    )
    p.add_argument(
        "--kinesis-endpoint",
        default=None,
        metavar="URL",
        help="Kinesis endpoint (the KCL speaks HTTP/2 to it) "
        "[default: setting aws.endpoints.kinesis (env DDB_BRIDGE__AWS__ENDPOINTS__KINESIS), "
        f"else {from_setting('aws.endpoint_url')}]",
    )
    p.add_argument(
        "--set",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="another KCL property, or one to override (repeatable), e.g. failoverTimeMillis=10000",
    )
    p.add_argument(
        "--output", default=None, metavar="FILE", help="write here [default: standard output]"
    )
    p.set_defaults(func=run_properties)


def _stream_name(settings: Settings, table: str) -> str:
    """The configured Kinesis stream of `table`; else a ConfigError asking for it. The KCL
    reads Kinesis whatever [stream] transport says: the error must not cite that setting."""
    if settings.stream.stream_name or any(
        t.name == table and t.kinesis_stream for t in settings.tables
    ):
        return kinesis_stream_name(settings, table)
    raise ConfigError(
        f"table {table!r}: which Kinesis data stream does it stream its changes to? Pass "
        f"--stream-name NAME_OR_ARN, or {NAME_HINT}"
    )


def run_properties(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    extra: dict[str, str] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        extra[key.strip()] = value.strip()
    text = kcl_properties(
        settings,
        table=args.table,
        stream_name=args.stream_name or _stream_name(settings, args.table),
        config=config_path(args.config),
        application_name=args.application_name or default_application_name(args.table),
        kinesis_endpoint=args.kinesis_endpoint,
        extra=extra,
    )
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
