"""A Faust agent that counts the changes of each table per minute.

    python examples/faust_changes_per_minute.py --bootstrap localhost:9092 \
        --table orders --table customers [--group changes-per-minute] [--from-beginning]

prints, each time a count changes, `MINUTE TABLE COUNT` (`2026-12-01T10:00Z orders 17`).

The change topics hold Avro, so the topic is declared with raw bytes (`value_serializer=
"raw"`) and each value is decoded with the bridge's codec (`bridge.codec.avro.EventCodec`,
or `bridge.kafka.schema_registry.registry_codec(url)` when the bridge runs with a Schema
Registry). The minute is the item's change time (the DynamoDB stream's
ApproximateCreationDateTime), else the record's Kafka timestamp (back-filled snapshots).

Faust acks each event once the agent's loop body has run for it and commits acked offsets
in the background: at least once. The counts live in this process only (a restart starts
from the group's committed offsets with empty counts); a Faust `Table` would keep them in a
changelog topic, at the price of creating and co-partitioning one.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import faust

from bridge.codec.avro import EventCodec
from bridge.kafka.schema_registry import registry_codec


def minute_of(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms // 1000, UTC):%Y-%m-%dT%H:%M}Z"


def build_app(
    bootstrap: str,
    tables: list[str],
    group: str,
    *,
    from_beginning: bool = False,
    topic_prefix: str = "ddb.",
    codec: EventCodec | None = None,
) -> faust.App:
    decode = (codec or EventCodec()).decode
    app = faust.App(
        group,  # the app id is the consumer group id
        broker=[f"kafka://{host.strip()}" for host in bootstrap.split(",")],
        web_enabled=False,
        autodiscover=False,
        # No Faust tables here, so no leader topic and nothing to create on the broker.
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest" if from_beginning else "latest",
    )
    changes = app.topic(
        *[f"{topic_prefix}{table}.changes" for table in tables],
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    counts: Counter[tuple[str, str]] = Counter()

    @app.agent(changes)
    async def count(stream: Any) -> None:
        async for record in stream.events():
            event = decode(record.value)
            ms = event.approximate_creation_time_ms
            if ms is None:
                ms = int(record.message.timestamp * 1000)
            bucket = (minute_of(ms), event.table)
            counts[bucket] += 1
            print(f"{bucket[0]} {bucket[1]} {counts[bucket]}", flush=True)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--table", required=True, action="append", help="repeat for several")
    parser.add_argument("--group", default="changes-per-minute", help="consumer group id")
    parser.add_argument("--from-beginning", action="store_true")
    parser.add_argument("--topic-prefix", default="ddb.", help="the bridge's kafka.topic_prefix")
    parser.add_argument("--registry-url", help="the bridge's kafka.schema_registry_url, if any")
    args = parser.parse_args(argv)
    app = build_app(
        args.bootstrap,
        args.table,
        args.group,
        from_beginning=args.from_beginning,
        topic_prefix=args.topic_prefix,
        codec=registry_codec(args.registry_url) if args.registry_url else None,
    )
    # Faust's worker runs the agent until SIGINT or SIGTERM, then commits and leaves the group.
    # stdout holds the counts only: the worker's own output (banner, a progress spinner)
    # goes to stderr, and prints stay prints (a worker otherwise turns them into log lines).
    worker = faust.Worker(
        app, loglevel="WARNING", quiet=True, stdout=sys.stderr, redirect_stdouts=False
    )
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
