"""`ddb-bridge stream`: the daemon that captures every configured table's stream into Kafka."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from bridge.kafka.reach import kafka_probe
from bridge.runtime import metrics_server
from bridge.runtime.settings import load_settings
from ddb_bridge.registry import source_class

log = logging.getLogger("ddb-bridge.stream")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.common_options import add_metrics_port
    from ddb_bridge.cli.helptext import from_setting
    from ddb_bridge.cli.parsers import command

    parser = command(
        sub,
        "stream",
        "daemon: DynamoDB Streams of every [[tables]] entry -> Kafka",
        (
            "Capture the DynamoDB stream of every [[tables]] entry into Kafka, sharing shards "
            "with any other `ddb-bridge stream` using the same lease table. SIGTERM/SIGINT "
            "stop it cleanly: flush, checkpoint, release leases, exit 0."
        ),
    )
    parser.add_argument(
        "--table",
        action="append",
        metavar="NAME",
        default=None,
        help="stream only this table (repeatable) [default: every [[tables]] entry]",
    )
    parser.add_argument(
        "--worker-id",
        default=None,
        help="lease owner name, unique per process "
        f"[default: {from_setting('stream.worker_id')}; else host-pid-random]",
    )
    parser.add_argument(
        "--max-runtime-s",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop cleanly after this long, as on SIGTERM (for demos and tests) "
        "[default: run until signalled]",
    )
    add_metrics_port(parser, "stream")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.max_runtime_s is not None:
        timer = threading.Timer(args.max_runtime_s, stop.set)
        timer.daemon = True
        timer.start()
    # Before the worker: /healthz must answer (503, with why) while it connects.
    server = metrics_server.serve(
        settings.metrics, "stream", kafka_probe(settings.kafka), args.metrics_port
    )
    tables = args.table or [t.name for t in settings.tables]
    if server is not None and tables:
        from connectors.dynamodb.reach import source_probe

        # Readiness also needs the source: the API the shards are read from.
        kinesis = settings.stream.transport == "kinesis"
        probe = source_probe(settings.aws, "kinesis" if kinesis else "dynamodbstreams", tables[0])
        server.health.add_probe("source", probe)
    try:
        worker_class = source_class("stream")
        worker = worker_class(settings, args.table, args.worker_id, stop=stop)
        code: int = worker.run()
        return code
    finally:
        if server is not None:
            server.close()
