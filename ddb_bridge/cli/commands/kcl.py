"""`ddb-bridge kcl properties` / `kcl run`: the Java KCL daemon for one table.

Two transports: the table's Kinesis data stream (amazon-kclpy's MultiLangDaemon), or its
DynamoDB stream (the DynamoDB Streams Kinesis Adapter under KCL 3, through the project's
launcher, connectors/sources/stream/kcl/launcher.py). `properties` writes the daemon's file;
`run` writes it to a temporary file and runs the daemon on it in the foreground.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

from bridge.model.errors import ConfigError
from bridge.runtime.settings import Settings, config_path, load_settings
from connectors.dynamodb import aws
from connectors.dynamodb.kinesis_stream import NAME_HINT, kinesis_stream_name
from connectors.sources.stream.kcl import launcher
from connectors.sources.stream.kcl.properties import (
    daemon_command,
    default_application_name,
    kcl_properties,
)
from connectors.sources.stream.shards import stream_arn_of

log = logging.getLogger("ddb-bridge.kcl")
TRANSPORTS = ("kinesis", "dynamodb-streams")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.parsers import actions, command

    kcl = command(
        sub,
        "kcl",
        "the Java KCL as the stream reader (Kinesis Data Streams or DynamoDB Streams)",
        (
            "Run the bridge's record processor under the Amazon Kinesis Client Library\n"
            "(pip install '.[kcl]' in the clone; Java 17+), reading the Kinesis data stream a\n"
            "table streams its changes to (MultiLangDaemon), or with --transport\n"
            "dynamodb-streams the table's DynamoDB stream (KCL 3 through AWS's DynamoDB\n"
            "Streams Kinesis Adapter; Maven builds its launcher once)."
        ),
        common=False,
    )
    kcl_actions = actions(kcl, "kcl_command")
    p = command(
        kcl_actions,
        "properties",
        "write the daemon's properties file for one table",
        (
            "Write the daemon's properties file: the stream (a Kinesis data stream, or with\n"
            "--transport dynamodb-streams the table's current DynamoDB stream ARN), application\n"
            "name (also the KCL's lease table), initial position, the processor's command line\n"
            "(with this --config), metrics off, region and endpoints from [aws]. The file's\n"
            "first lines give the java command that runs the daemon on it."
        ),
    )
    _daemon_options(p)
    p.add_argument(
        "--output", default=None, metavar="FILE", help="write here [default: standard output]"
    )
    p.set_defaults(func=run_properties)
    r = command(
        kcl_actions,
        "run",
        "run the daemon for one table (Java 17+; jars fetched or built on first use)",
        (
            "Write the properties file (as `kcl properties`) to a temporary file and run the\n"
            "daemon on it in the foreground: finds Java 17+, the KCL's jars (Kinesis: the\n"
            "ones amazon-kclpy installed; DynamoDB Streams: the adapter's launcher, built with\n"
            "Maven once into ~/.cache/ddb-bridge) and the processor command. SIGTERM/SIGINT\n"
            "stop it cleanly (each shard checkpoints what Kafka acknowledged); exit 0 then,\n"
            "1 when the daemon failed, 2 for a configuration error."
        ),
    )
    _daemon_options(r)
    r.add_argument(
        "--java", default="java", metavar="PATH", help="the Java 17+ to run [default: java]"
    )
    r.add_argument(
        "--jvm-option",
        action="append",
        default=None,
        metavar="OPTION",
        help="an option for the JVM (repeatable), e.g. --jvm-option=-Xmx512m",
    )
    r.set_defaults(func=run_daemon)


def _daemon_options(p: argparse.ArgumentParser) -> None:
    """The options `kcl properties` and `kcl run` share (`run` writes the same file)."""
    from ddb_bridge.cli.helptext import from_setting
    from ddb_bridge.cli.parsers import add_source_table

    add_source_table(p)
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="kinesis",
        help="what the daemon reads: the Kinesis data stream the table streams to, or the "
        "table's DynamoDB stream through the DynamoDB Streams Kinesis Adapter [default: kinesis]",
    )
    p.add_argument(
        "--stream-name",
        default=None,
        metavar="NAME_OR_ARN",
        help="the Kinesis data stream the table streams its changes to (--transport kinesis) "
        "[default: the table's [[tables]] kinesis_stream, else "
        f"{from_setting('stream.stream_name')}]",
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


def _properties(args: argparse.Namespace, settings: Settings) -> str:
    extra: dict[str, str] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        extra[key.strip()] = value.strip()
    app = args.application_name or default_application_name(args.table)
    config = config_path(args.config)
    # Either the Kinesis data stream (and its endpoint) or the DynamoDB stream's ARN.
    stream_name: str | None = None
    arn: str | None = None
    if args.transport == "dynamodb-streams":
        if args.stream_name or args.kinesis_endpoint:
            raise ConfigError(
                "--stream-name and --kinesis-endpoint are for --transport kinesis; the "
                "DynamoDB Streams transport reads the table's own stream"
            )
        # The table's current stream: a re-enabled stream is a new ARN (and a new capture).
        arn = stream_arn_of(aws.client("dynamodb", settings.aws), args.table)
    else:
        stream_name = args.stream_name or _stream_name(settings, args.table)
    return kcl_properties(
        settings,
        table=args.table,
        config=config,
        application_name=app,
        extra=extra,
        stream_name=stream_name,
        kinesis_endpoint=args.kinesis_endpoint,
        dynamodb_stream_arn=arn,
    )


def run_properties(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    text = _properties(args, settings)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def daemon_argv(args: argparse.Namespace, properties_file: str) -> list[str]:
    """Java found and checked, jars fetched or built: the daemon's command line."""
    java = launcher.find_java(args.java)
    if args.transport == "dynamodb-streams":
        launcher.ensure_jars()
    command = daemon_command(properties_file, java=java, transport=args.transport)
    return [command[0], *(args.jvm_option or []), *command[1:]]


def _stop_with_parent() -> None:
    """In the daemon's process, before exec: SIGTERM it (a clean stop) if `kcl run` dies, even
    by kill -9, so no JVM is left reading the stream unwatched (Linux's PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def run_daemon(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    text = _properties(args, settings)
    with tempfile.TemporaryDirectory(prefix="ddb-bridge-kcl-") as tmp:
        props = Path(tmp) / f"{args.table}.properties"
        props.write_text(text)
        argv = daemon_argv(args, str(props))
        log.info(
            "KCL daemon starting",
            extra={"table": args.table, "transport": args.transport, "java": argv[0]},
        )
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=_stop_with_parent)
        stopping: list[int] = []

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            # The JVM's shutdown hook asks every shard to checkpoint, then it exits.
            stopping.append(signum)
            log.info("stop requested", extra={"signal": signal.Signals(signum).name})
            daemon.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        code = daemon.wait()
    if stopping:
        # A JVM ended by SIGTERM reports 143 once its shutdown hook is done: a clean stop.
        return 0 if code in (0, 143, -signal.SIGTERM) else 1
    if code == 2:
        return 2  # the launcher's bad-properties exit, already said on stderr
    log.error("the KCL daemon exited %s", code, extra={"table": args.table})
    return 1 if code != 0 else 0
