"""Convert + Avro-encode + produce, against producing the same records pre-encoded.

What it measures: events/s for the full publish path of a scanned item (boto3 form →
wire form → ChangeEvent → Avro single-object → idempotent keyed produce, flushed), next to a
same-run baseline that produces the already-encoded bytes with the same producer settings.
Items are ~300 bytes of DynamoDB JSON. Run: `python -m benchmarks publish [--events N]`.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from bridge import attrs
from bridge.avro_codec import EventCodec
from bridge.event import ChangeEvent, Origin
from bridge.publisher import Publisher, ensure_topics
from bridge.settings import KafkaSettings


def make_items(n: int) -> list[dict[str, Any]]:
    """boto3-form items (binary as bytes) of ~300 bytes of DynamoDB JSON each."""
    out = []
    for i in range(n):
        out.append(
            {
                "pk": {"S": f"customer#{i:09d}"},
                "sk": {"N": str(i % 1000)},
                "name": {"S": f"Customer number {i} with a longish display name"},
                "email": {"S": f"customer{i}@example.com"},
                "balance": {"N": f"{i * 7 % 100000}.{i % 100:02d}"},
                "active": {"BOOL": i % 3 == 0},
                "tags": {"SS": ["retail", f"tier{i % 5}"]},
                "avatar": {"B": bytes(range(24))},
                "address": {"M": {"city": {"S": "Lisbon"}, "zip": {"S": f"{i % 99999:05d}"}}},
            }
        )
    return out


def run_full(publisher: Publisher, table: str, items: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for item in items:
        wire = attrs.from_boto(item)
        event = ChangeEvent.snapshot(table, wire, ("pk", "sk"), 1_700_000_000_000_000, Origin.SCAN)
        publisher.publish(event)
    publisher.flush()
    return time.perf_counter() - start


def run_baseline(publisher: Publisher, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    start = time.perf_counter()
    for key, value in records:
        publisher.produce_raw(topic, key, value)
    publisher.flush()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_publish")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--bootstrap", default=None, help="existing broker (default: benchmarks/broker.py)"
    )
    args = parser.parse_args(argv)

    from contextlib import nullcontext

    from benchmarks.broker import bench_broker
    from benchmarks.report import Results

    results = Results("publish")
    with nullcontext(args.bootstrap) if args.bootstrap else bench_broker(results) as bootstrap:
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=4, replication_factor=1)
        table = f"bench-{uuid.uuid4().hex[:8]}"
        base_table = table + "-baseline"
        ensure_topics(kafka, [table, base_table])
        items = make_items(args.events)
        codec = EventCodec()
        # Pre-encode for the baseline outside the timed region.
        records = []
        sizes = 0
        for item in items:
            wire = attrs.from_boto(item)
            sizes += len(attrs.dumps(wire))
            ev = ChangeEvent.snapshot(table, wire, ("pk", "sk"), 1, Origin.SCAN)
            records.append((ev.key_bytes(), codec.encode(ev)))
        publisher = Publisher(kafka, codec)
        # Warm up connections and metadata for both topics.
        run_baseline(publisher, kafka.changes_topic(base_table), records[:1000])
        run_full(publisher, table, items[:1000])

        baseline_s = run_baseline(publisher, kafka.changes_topic(base_table), records)
        full_s = run_full(publisher, table, items)
        base_rate = len(records) / baseline_s
        full_rate = len(items) / full_s
        print(
            f"events: {len(items)}, mean item size: {sizes / len(items):.0f} bytes of DynamoDB JSON"
        )
        results.extra["events"] = len(items)
        results.extra["mean_item_bytes"] = round(sizes / len(items))
        results.figure(
            "publish: convert + encode + produce",
            full_rate,
            "events/s",
            baseline=("produce pre-encoded bytes", base_rate),
            goal_ratio=0.5,
        )
    results.write()


if __name__ == "__main__":
    main()
