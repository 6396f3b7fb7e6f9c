"""A consumer of the bridge's change topics with confluent-kafka alone: one JSON line per event.

    python examples/plain_consumer.py --bootstrap localhost:9092 --table orders \
        --group orders-printer [--from-beginning] [--registry-url http://registry:8081]

What a consumer of your own needs from the bridge is its codec: every record of a change topic
is one Avro-encoded `ChangeEvent` (`bridge.model.event`), in the single-object framing, or in the
Confluent wire format when the bridge runs with a Schema Registry;
`bridge.codec.avro.EventCodec().decode` reads the first, `bridge.kafka.schema_registry.registry_codec`
both. The rest is plain Kafka: a consumer group of your own, the offset of each record stored
only after it was handled (at least once: after a crash the group re-reads what was not yet
handled; a re-read event has the same version, so handle events idempotently), errors
checked on every message. `bridge.consumer.events` wraps all this in one call.

Ctrl-C or SIGTERM stops it after the event in hand; the offsets handled so far are committed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from types import FrameType

from confluent_kafka import Consumer, KafkaError, Message

from bridge.codec.avro import EventCodec
from bridge.kafka.schema_registry import registry_codec
from bridge.model.errors import DecodeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--table", required=True, action="append", help="repeat for several")
    parser.add_argument("--group", required=True, help="your consumer group id")
    parser.add_argument("--from-beginning", action="store_true")
    parser.add_argument("--topic-prefix", default="ddb.", help="the bridge's kafka.topic_prefix")
    parser.add_argument("--registry-url", help="the bridge's kafka.schema_registry_url, if any")
    args = parser.parse_args(argv)

    codec = registry_codec(args.registry_url) if args.registry_url else EventCodec()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
            # Committed in the background, but only offsets stored below, after handling.
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
        }
    )
    consumer.subscribe([f"{args.topic_prefix}{table}.changes" for table in args.table])

    running = True

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while running:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                handle_error(msg)
                continue
            handle(msg, codec)
            consumer.store_offsets(message=msg)  # handled: may be committed now
    finally:
        consumer.close()  # commits the stored offsets, leaves the group
    return 0


def handle(msg: Message, codec: EventCodec) -> None:
    where = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
    try:
        event = codec.decode(msg.value() or b"")
    except DecodeError as exc:
        # Not a change event: say where it is (a real consumer might dead-letter it).
        print(json.dumps({**where, "error": str(exc)}), file=sys.stderr, flush=True)
        return
    line = {
        **where,
        "table": event.table,
        "op": event.op.value,
        "keys": event.keys,  # DynamoDB JSON: {"pk": {"S": "a"}}
        "version": event.version,
        "new_image": event.new_image,
    }
    print(json.dumps(line), flush=True)


def handle_error(msg: Message) -> None:
    err = msg.error()
    assert err is not None
    if err.fatal() or err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        raise SystemExit(f"kafka: {err.str()}")
    # librdkafka retries the others itself (a broker restarting, a leader moving).
    print(f"kafka: {err.str()}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
