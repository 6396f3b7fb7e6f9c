"""`python -m ddb_bridge.kcl_processor`: the record processor the KCL MultiLangDaemon runs.

The daemon starts this once per shard it leases (its `executableName`, written by
`ddb-bridge kcl properties`) and talks to it over stdin/stdout, so everything this process
logs goes to stderr (the daemon copies it into its own log). At start it records the capture
start of the stream it reads in the bridge's lease table (the back-fill's safety check and
`status` read it): the table's Kinesis data stream (`--transport kinesis`, the default), or
its DynamoDB stream (`--transport dynamodb-streams`, under the DynamoDB Streams Kinesis
Adapter: the same capture record the native reader writes). Then it creates the table's
topics if missing and serves the KCL's calls with
`connectors.sources.stream.kcl.processor.KclRecordProcessor` until the daemon closes stdin.

Exit codes: 0 when the daemon closes the pipe; 1 when a record or Kafka failed (the daemon
then stops; restarting it resumes from the last checkpoint); 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from bridge.kafka.publisher import Publisher, ensure_topics
from bridge.kafka.schema_registry import make_codec
from bridge.model.errors import BridgeError, ConfigError
from bridge.runtime import logs
from bridge.runtime.settings import Settings, load_settings, name_the_command
from connectors.dynamodb import aws
from connectors.dynamodb.capture import ensure_lease_table, record_capture_start
from connectors.dynamodb.kinesis_stream import describe_kinesis_stream, kinesis_stream_name
from connectors.sources.stream.kcl.versions import Found, KclVersions, newest_versions
from connectors.sources.stream.processor import KafkaRecordProcessor
from connectors.sources.stream.shards import list_shards, stream_arn_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_kinesis import KinesisClient

log = logging.getLogger("ddb-bridge.kcl")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ddb_bridge.kcl_processor",
        description="The KCL MultiLangDaemon's record processor for one table (started by the "
        "daemon; see `ddb-bridge kcl properties`).",
        epilog="exit codes: 0 the daemon closed the pipe; 1 a record or Kafka failed; "
        "2 configuration error",
    )
    parser.add_argument("--config", metavar="PATH", default=None, help="the bridge's TOML file")
    parser.add_argument("--table", required=True, help="source DynamoDB table")
    parser.add_argument(
        "--stream-name",
        default=None,
        help="the table's Kinesis data stream, name or ARN (default: [[tables]] kinesis_stream, "
        "else [stream] stream_name)",
    )
    parser.add_argument(
        "--transport",
        choices=["kinesis", "dynamodb-streams"],
        default="kinesis",
        help="what the daemon reads: the table's Kinesis data stream, or its DynamoDB stream "
        "(through the DynamoDB Streams Kinesis Adapter) [default: kinesis]",
    )
    parser.add_argument("--log-level", default="INFO", help="log level (to stderr)")
    return parser.parse_args(argv)


def parents_of(kinesis: KinesisClient, arn: str, shard_id: str) -> list[str]:
    """The parent shards of `shard_id`, from a full ListShards of the stream."""
    page = kinesis.list_shards(StreamARN=arn)
    while True:
        for shard in page.get("Shards", []):
            if shard["ShardId"] == shard_id:
                parents = (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
                return [p for p in parents if p]
        token = page.get("NextToken")
        if not token:
            return []
        page = kinesis.list_shards(NextToken=token)


def dynamodb_parents_of(streams: DynamoDBStreamsClient, arn: str, shard_id: str) -> list[str]:
    """The parent shard of `shard_id` on a DynamoDB stream (DescribeStream, every page)."""
    for shard in list_shards(streams, arn, threading.Event()):
        if shard.shard_id == shard_id:
            return list(shard.parent_ids)
    return []


def run(args: argparse.Namespace) -> int:
    from amazon_kclpy import kcl

    from connectors.sources.stream.kcl.processor import KclRecordProcessor

    settings: Settings = load_settings(args.config)
    name_the_command("kcl-processor")
    table = args.table
    lease_table = settings.stream.lease_table
    ddb = aws.client("dynamodb", settings.aws)
    parents: Callable[[str], list[str]]
    if args.transport == "dynamodb-streams":
        streams = aws.client("dynamodbstreams", settings.aws)
        arn = stream_arn_of(ddb, table)
        parents = partial(dynamodb_parents_of, streams, arn)
    else:
        kinesis = aws.client("kinesis", settings.aws)
        name = args.stream_name or kinesis_stream_name(settings, table)
        arn = describe_kinesis_stream(kinesis, name, table).arn
        parents = partial(parents_of, kinesis, arn)
    ensure_lease_table(ddb, lease_table)
    # Keyed by the ARN of the stream read: the back-fill's safety check looks it up there.
    record_capture_start(ddb, lease_table, table, arn, settings.stream.initial_position)
    ensure_topics(settings.kafka, [table])
    publisher = Publisher(settings.kafka, make_codec(settings.kafka, [table]))

    def parent_versions(shard_id: str) -> list[Found]:
        versions = [newest_versions(ddb, lease_table, arn, p) for p in parents(shard_id)]
        return [v for v in versions if v is not None]

    record_processor = KclRecordProcessor(
        KafkaRecordProcessor(
            publisher, transport="dynamodb" if args.transport == "dynamodb-streams" else "kinesis"
        ),
        table,
        arn,
        versions_for=lambda shard: KclVersions(ddb, lease_table, table, arn, shard),
        parent_versions=parent_versions,
        transport=args.transport,
    )
    try:
        kcl.KCLProcess(record_processor).run()
    finally:
        publisher.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup(args.log_level)
    try:
        return run(args)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    except BridgeError as exc:
        log.error("%s", exc)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
