"""Peers side by side: the bridge's stream path against the forwarder a user writes instead,
on the same records, each a ratio to the publish benchmark's pre-encoded produce baseline.

The records are bench_publish's: GetRecords response bodies of MODIFY records with both
images (~1 KB each), read from memory by every contender, so no endpoint's speed is in the
figures. Contenders, one after another against the same broker:

- baseline: the same events pre-encoded, produced with the bridge's producer settings
  (bench_publish.run_baseline);
- the bridge: body → records → ChangeEvent → Avro → tracked keyed produce, checkpointed
  after acknowledgement (bench_publish.run_stream);
- the forwarder a user writes instead (the Lambda-style script): boto3's GetRecords
  parsing (botocore's parser on the body, what `client.get_records` returns), boto3's
  `TypeDeserializer` on the keys and both images, `json.dumps`, confluent-kafka `produce`
  keyed by the keys' JSON, with the same producer settings. It does less than the bridge:
  numbers become Decimal and then text or float, binary and sets lose their DynamoDB type,
  no version is computed, nothing is checkpointed after acknowledgement.

Each prints its CPU µs per record (this process, /proc: the contenders run here, librdkafka
threads included). Apache Flink's DynamoDB Streams source is not measured: see
docs/performance.md (Peers). Run: `python -m benchmarks peers [--events N]`.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import time
import uuid
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary

from benchmarks.bench_publish import make_items, make_pages, run_baseline, run_stream, stream_events
from benchmarks.procfs import ProcessCpu
from bridge.codec.avro import EventCodec
from bridge.kafka.client_config import producer_config
from bridge.kafka.publisher import Publisher, ensure_topics
from bridge.runtime.settings import KafkaSettings


def _json_default(value: Any) -> Any:
    """What a forwarder's json.dumps needs for boto3's Python values."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set):
        return sorted(value, key=str)
    if isinstance(value, Binary):  # what TypeDeserializer makes of a B value
        value = value.value
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def run_forwarder(kafka: KafkaSettings, topic: str, pages: list[bytes]) -> float:
    """The Lambda-style forwarder over `pages`: seconds until every record is acknowledged."""
    import botocore.session
    from boto3.dynamodb.types import TypeDeserializer
    from botocore.parsers import create_parser
    from confluent_kafka import Producer

    shape = (
        botocore.session.get_session()
        .get_service_model("dynamodbstreams")
        .operation_model("GetRecords")
        .output_shape
    )
    parser = create_parser("json")
    deserializer = TypeDeserializer()
    producer = Producer(producer_config(kafka))

    def plain(image: dict[str, Any]) -> dict[str, Any]:
        return {name: deserializer.deserialize(value) for name, value in image.items()}

    start = time.perf_counter()
    for body in pages:
        page = parser.parse({"body": body, "headers": {}, "status_code": 200}, shape)
        for record in page["Records"]:
            ddb = record["dynamodb"]
            keys = plain(ddb["Keys"])
            document = {
                "eventName": record["eventName"],
                "keys": keys,
                "newImage": plain(ddb["NewImage"]) if "NewImage" in ddb else None,
                "oldImage": plain(ddb["OldImage"]) if "OldImage" in ddb else None,
                "sequenceNumber": ddb["SequenceNumber"],
                "approximateCreationDateTime": ddb["ApproximateCreationDateTime"],
            }
            key = json.dumps(keys, default=_json_default, sort_keys=True)
            value = json.dumps(document, default=_json_default)
            while True:
                try:
                    producer.produce(topic, value=value, key=key)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"forwarder: {remaining} records not acknowledged")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_peers")
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)

    from benchmarks.broker import bench_broker
    from benchmarks.report import Results

    results = Results("peers")
    with bench_broker(results) as bootstrap:
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=4, replication_factor=1)
        table = f"bench-{uuid.uuid4().hex[:8]}"
        bridge_table, forward_table, base_table = (
            f"{table}-{part}" for part in ("bridge", "fwd", "base")
        )
        ensure_topics(kafka, [bridge_table, forward_table, base_table])
        codec = EventCodec()
        publisher = Publisher(kafka, codec)
        pages = make_pages(make_items(args.events))
        records = [(ev.key_bytes(), codec.encode(ev)) for ev in stream_events(bridge_table, pages)]
        n = len(records)
        results.extra["events"] = n
        # Warm-up of every contender, then the inputs frozen out of the collector's way
        # (as bench_publish does: a worker holds one page, not the whole run's).
        run_baseline(publisher, kafka.changes_topic(base_table), records[:1000])
        run_stream(publisher, bridge_table, pages[:1])
        run_forwarder(kafka, kafka.changes_topic(forward_table), pages[:1])
        gc.collect()
        gc.freeze()

        with ProcessCpu() as base_cpu:
            base = n / run_baseline(publisher, kafka.changes_topic(base_table), records)
        with ProcessCpu() as bridge_cpu:
            bridge = n / run_stream(publisher, bridge_table, pages)
        with ProcessCpu() as forward_cpu:
            forward = n / run_forwarder(kafka, kafka.changes_topic(forward_table), pages)

    baseline = ("produce the same events pre-encoded", base)
    results.figure(
        "peers: the bridge, GetRecords body -> Kafka (tracked)",
        bridge,
        "records/s",
        baseline=baseline,
        note=f"{bridge / forward:.2f}x the forwarder",
        cpu_us_per_item=bridge_cpu.us_per(n),
        baseline_cpu_us_per_item=base_cpu.us_per(n),
    )
    results.figure(
        "peers: Lambda-style forwarder (boto3 parse + TypeDeserializer + json + produce)",
        forward,
        "records/s",
        baseline=baseline,
        cpu_us_per_item=forward_cpu.us_per(n),
        baseline_cpu_us_per_item=base_cpu.us_per(n),
    )
    results.write()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
