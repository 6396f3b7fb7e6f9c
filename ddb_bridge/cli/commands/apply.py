"""`ddb-bridge apply`: the daemon that makes a target equal to the change topics."""

from __future__ import annotations

import argparse
import logging

from bridge.kafka.reach import kafka_probe
from bridge.model.errors import BridgeError, ConfigError, Unavailable
from bridge.ports.sink import TableSpec
from bridge.runtime import metrics_server
from bridge.runtime.settings import Settings, load_settings
from ddb_bridge.cli.starting import stop_cleanly_while_starting
from ddb_bridge.registry import sink_class

log = logging.getLogger("ddb-bridge.apply")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.common_options import add_metrics_port
    from ddb_bridge.cli.helptext import from_setting
    from ddb_bridge.cli.parsers import command

    parser = command(
        sub,
        "apply",
        "daemon: Kafka change topics -> a target database (last write wins)",
        (
            "Consume the change topics of the configured [[tables]] as consumer group\n"
            "ddb-bridge.apply.<target> and write them to the target in batches. Offsets are\n"
            "committed only after the target confirmed the write; records the target can\n"
            "never accept go to <prefix><table>.dlq. SIGTERM finishes the batch in flight\n"
            "and exits 0. Run several workers to share the partitions."
        ),
    )
    parser.add_argument(
        "--target",
        metavar="NAME",
        default=None,
        help=f"a [targets.NAME] section [default: {from_setting('apply.target')}]",
    )
    parser.add_argument(
        "--table",
        metavar="T",
        action="append",
        default=None,
        help="a source table to apply (repeatable) [default: every [[tables]] entry]",
    )
    parser.add_argument(
        "--create-schema",
        action="store_true",
        help="create missing target tables/keyspaces before consuming",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"events per batch [default: {from_setting('apply.batch_size')}]",
    )
    parser.add_argument(
        "--batch-window-ms",
        type=int,
        default=None,
        help=f"max wait to fill a batch [default: {from_setting('apply.batch_window_ms')}]",
    )
    add_metrics_port(parser, "apply")
    parser.set_defaults(func=run)


def resolve_specs(settings: Settings, tables: list[str]) -> list[TableSpec]:
    """Each table's spec: declared in the config, else described (`aws.table_spec`)."""
    from connectors.dynamodb.aws import table_spec

    return [table_spec(None, settings, name) for name in tables]


def run(args: argparse.Namespace) -> int:
    stop_cleanly_while_starting()
    settings = load_settings(args.config)
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        settings.apply.batch_size = args.batch_size
    if args.batch_window_ms is not None:
        if args.batch_window_ms < 1:
            raise ConfigError("--batch-window-ms must be at least 1")
        settings.apply.batch_window_ms = args.batch_window_ms
    target_name = args.target or settings.apply.target
    settings.target(target_name)  # an unknown target is a configuration error before serving
    tables = args.table or [t.name for t in settings.tables]
    if not tables:
        raise ConfigError("no tables to apply: add [[tables]] entries or pass --table")
    # Before the topics and the group: /healthz must answer (503, with why) while apply
    # connects.
    server = metrics_server.serve(
        settings.metrics, "apply", kafka_probe(settings.kafka), args.metrics_port
    )
    if server is not None:
        from connectors.sinks.reach import target_probe

        # Readiness also needs the target to answer (apply's other half).
        probe = target_probe(target_name, settings.target(target_name))
        if probe is not None:
            server.health.add_probe("target", probe)
    try:
        return _run(args, settings, target_name, tables)
    finally:
        if server is not None:
            server.close()


def _run(args: argparse.Namespace, settings: Settings, target_name: str, tables: list[str]) -> int:
    from bridge.apply.app import ApplyWorker
    from bridge.kafka.publisher import ensure_topics

    target = settings.target(target_name)
    specs = resolve_specs(settings, tables)
    # The DLQ topics must exist before a dead letter is written (real Kafka often has topic
    # auto-creation off); creating existing topics is a no-op. Not fatal here: without them
    # apply still works until a dead letter is needed, and then stops without committing it.
    try:
        ensure_topics(settings.kafka, [s.source for s in specs])
    except (ConfigError, Unavailable):
        # A refused login or TLS handshake, or no broker answering: the consumer would be
        # refused, or wait, just the same.
        raise
    except BridgeError as exc:
        log.warning("cannot create the change/DLQ topics", extra={"error": str(exc)})
    sink = sink_class(target.type)(target)
    worker = ApplyWorker(
        settings,
        target_name,
        specs,
        sink,
        create_schema=args.create_schema,
        install_signal_handlers=True,
    )
    log.info(
        "starting apply",
        extra={"target": target_name, "type": target.type, "tables": ",".join(tables)},
    )
    from bridge.dlq.watch import DlqDepthWatch

    watch = DlqDepthWatch(settings.kafka, [s.source for s in specs]).start()
    try:
        return worker.run()
    finally:
        watch.stop()
