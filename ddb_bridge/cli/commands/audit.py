"""`ddb-bridge audit`: the daemon that archives every change event to files, exactly once."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bridge.kafka.reach import kafka_probe
from bridge.model.errors import ConfigError
from bridge.runtime import metrics_server
from bridge.runtime.settings import load_settings
from ddb_bridge.cli.starting import stop_cleanly_while_starting

log = logging.getLogger("ddb-bridge.audit")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bridge.audit.worker import DEFAULT_GROUP
    from ddb_bridge.cli.common_options import add_metrics_port
    from ddb_bridge.cli.parsers import command

    parser = command(
        sub,
        "audit",
        "daemon: archive every change event to Avro or JSON Lines files (local or S3)",
        (
            "Consume the change topics as its own consumer group and archive every event to\n"
            "ROOT/table=<t>/date=YYYY-MM-DD/hour=HH/part-<partition>-<first>-<last>.avro\n"
            "(hour of the change time, UTC). Files are written aside, fsynced and renamed (or\n"
            "uploaded whole to S3); offsets are committed only after that, and a restart after\n"
            "a crash rewrites an uncommitted file under the same name: the archive holds every\n"
            "event exactly once. SIGTERM publishes the open files and exits 0."
        ),
    )
    parser.add_argument(
        "--root",
        required=True,
        metavar="DIR|s3://BUCKET/PREFIX",
        help="archive root: a local folder, or S3 (credentials and endpoint from [aws])",
    )
    parser.add_argument("--format", choices=["avro", "jsonl"], default="avro", help="file format")
    parser.add_argument(
        "--table",
        metavar="T",
        action="append",
        default=None,
        help="a table to archive (repeatable) [default: every [[tables]] entry; none "
        "configured: every <prefix>*.changes topic]",
    )
    parser.add_argument("--group", default=DEFAULT_GROUP, help="Kafka consumer group id")
    parser.add_argument(
        "--max-events", type=int, default=100_000, help="events per partition and file set"
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=128 * 1024 * 1024,
        help="Kafka record bytes per partition and file set",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        help="publish a partition's open files this long after their first event",
    )
    parser.add_argument(
        "--codec",
        choices=["null", "deflate"],
        default="deflate",
        help="Avro block compression (both are read by fastavro, DuckDB and Spark)",
    )
    parser.add_argument(
        "--staging-dir",
        metavar="DIR",
        default=None,
        help="where S3 files are written before upload [default: <tmp>/ddb-bridge-audit]; "
        "a local root always stages in ROOT/_staging",
    )
    add_metrics_port(parser, "audit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stop_cleanly_while_starting()
    from bridge.audit.destination import ArchiveDestination, LocalDestination
    from bridge.audit.worker import AuditOptions, AuditWorker
    from bridge.kafka.publisher import ensure_topics
    from bridge.kafka.schema_registry import make_codec

    for name in ("max_events", "max_bytes"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_seconds <= 0:
        raise ConfigError("--max-seconds must be above 0")
    settings = load_settings(args.config)
    tables = args.table or [t.name for t in settings.tables]
    destination: ArchiveDestination
    if args.root.startswith("s3://"):
        from connectors.s3_archive import S3Destination

        staging = Path(args.staging_dir) if args.staging_dir else None
        destination = S3Destination(args.root, settings.aws, staging)
    else:
        destination = LocalDestination(Path(args.root))
    # Before the topics and the worker: /healthz must answer (503, with why) while audit
    # connects (as apply's and stream's do).
    server = metrics_server.serve(
        settings.metrics, "audit", kafka_probe(settings.kafka), args.metrics_port
    )
    try:
        if tables:
            ensure_topics(settings.kafka, tables)
        worker = AuditWorker(
            settings,
            tables,
            destination,
            make_codec(settings.kafka),
            AuditOptions(
                group=args.group,
                fmt=args.format,
                codec=args.codec,
                max_events=args.max_events,
                max_bytes=args.max_bytes,
                max_seconds=args.max_seconds,
            ),
            install_signal_handlers=True,
        )
        return worker.run()
    finally:
        if server is not None:
            server.close()
