"""Convert + Avro-encode + produce, against producing the same records pre-encoded.

What it measures, each beside a same-run baseline that produces the already-encoded bytes of
the same events with the same producer settings (untracked, no headers):

- the stream path, as `ddb-bridge stream` runs it: GetRecords response bodies of 1,000
  MODIFY records (NEW_AND_OLD_IMAGES) → records → ChangeEvent → Avro single-object →
  idempotent keyed produce with headers, tracked for checkpoint-after-ack
  (`KafkaRecordProcessor.process_records`), flushed. The body is read as JSON
  (connectors/sources/stream/get_records.py); `--boto3` adds the same pages through
  botocore's parser and the per-record publish of before, for comparison.
- a scanned item (boto3 form → wire form → ChangeEvent → Avro → produce), a page of 1,000
  tracked as one group, as `ddb-bridge backfill --from scan` publishes (before this round
  the figure was untracked while the back-fill tracked every record: ~24 µs an item).

Items are ~350 bytes of DynamoDB JSON. Run: `python -m benchmarks.bench_publish [--events N]`.
"""

from __future__ import annotations

import argparse
import gc
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

from benchmarks.procfs import ProcessCpu
from bridge.codec import compiled
from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher, ensure_topics
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Origin
from bridge.runtime.settings import KafkaSettings


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


def run_full(
    publisher: Publisher, table: str, items: list[dict[str, Any]], page_size: int = 1000
) -> float:
    """As a scan back-fill publishes: the scan reader's conversion of each item of a page
    (`scan.scanned_event`), then the page as one tracked group (`publish_batch`: a part's
    position is saved once its records are acknowledged)."""
    from bridge.model.acks import AckTracker
    from connectors.sources.backfill.scan import scanned_event

    tracker: AckTracker[int] = AckTracker()
    start = time.perf_counter()
    for first in range(0, len(items), page_size):
        page = []
        for item in items[first : first + page_size]:
            event, _ = scanned_event(item, table, ("pk", "sk"), 1_700_000_000_000_000, "bench")
            assert event is not None
            page.append(event)
        publisher.publish_batch(page, tracker, first + len(page))
    publisher.flush()
    assert tracker.all_acked() and tracker.failure is None
    return time.perf_counter() - start


@contextmanager
def python_path() -> Iterator[None]:
    """The compiled core switched off for what runs inside, as DDB_BRIDGE_PURE_PYTHON=1 does
    for a process (bridge/codec/compiled.py)."""
    saved = compiled.CORE
    compiled.CORE = None
    try:
        yield
    finally:
        compiled.CORE = saved


def run_baseline(publisher: Publisher, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    start = time.perf_counter()
    for key, value in records:
        publisher.produce_raw(topic, key, value)
    publisher.flush()
    return time.perf_counter() - start


def make_pages(items: list[dict[str, Any]], page_size: int = 1000) -> list[bytes]:
    """GetRecords response bodies: each item modified once (new and old image), in order."""
    records = []
    for i, item in enumerate(items):
        wire = attrs.from_boto(item)
        old = {**wire, "balance": {"N": str(i)}}
        records.append(
            {
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_700_000_000 + i // 500,
                    "Keys": {"pk": wire["pk"], "sk": wire["sk"]},
                    "NewImage": wire,
                    "OldImage": old,
                    "SequenceNumber": str(10**20 + i),
                    "SizeBytes": 700,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventID": f"{i:032x}",
                "eventName": "MODIFY",
                "eventSource": "aws:dynamodb",
                "eventVersion": "1.1",
            }
        )
    return [
        orjson.dumps({"Records": records[j : j + page_size], "NextShardIterator": "it"})
        for j in range(0, len(records), page_size)
    ]


class _NoCheckpoints:
    """The processor's checkpointer, without a lease table: positions are only recorded."""

    last = "TRIM_HORIZON"

    def checkpoint(
        self, position: str, last_version: int | None, item_versions: bytes = b""
    ) -> None:
        self.last = position


def stream_events(table: str, pages: list[bytes]) -> Iterator[ChangeEvent]:
    """The events the stream path makes of `pages` (for the pre-encoded baseline), one at a
    time: all of them at once would hold ~10 KB of Python objects per record."""
    from bridge.model.versioning import StreamVersioner

    versioner = StreamVersioner(0)
    for body in pages:
        for record in orjson.loads(body)["Records"]:
            # boto3's form of the record, as botocore would return it.
            ddb = record["dynamodb"]
            created = datetime.fromtimestamp(ddb["ApproximateCreationDateTime"], UTC)
            ddb["ApproximateCreationDateTime"] = created
            for image in ("Keys", "NewImage", "OldImage"):
                ddb[image] = attrs.to_boto(ddb[image])
            yield ChangeEvent.from_stream_record(table, record, versioner.next(created), "shard-0")


def run_stream(publisher: Publisher, table: str, pages: list[bytes]) -> float:
    """The worker's path: body → records → processor (convert, encode, produce, track)."""
    from connectors.sources.stream.get_records import RAW_BODY
    from connectors.sources.stream.processor import InitializationInput, KafkaRecordProcessor
    from connectors.sources.stream.text_pages import read_text_page

    processor = KafkaRecordProcessor(publisher, checkpoint_interval_s=0.5)
    processor.initialize(InitializationInput(table, "arn", "shard-0", "TRIM_HORIZON", 0))
    checkpointer: Any = _NoCheckpoints()
    last = orjson.loads(pages[-1])["Records"][-1]["dynamodb"]["SequenceNumber"]
    start = time.perf_counter()
    for body in pages:
        records, _ = read_text_page({RAW_BODY: body}, "bench shard-0")
        processor.process_records(records, checkpointer)
    publisher.flush()
    processor.checkpoint_safe(checkpointer)
    elapsed = time.perf_counter() - start
    assert checkpointer.last == last, (checkpointer.last, last)  # checkpointed after every ack
    return elapsed


def run_stream_boto3(publisher: Publisher, table: str, pages: list[bytes]) -> float:
    """The path before: botocore's parser, then one tracked publish per record."""
    import botocore.session
    from botocore.parsers import create_parser

    from bridge.model.acks import AckTracker
    from bridge.model.versioning import StreamVersioner

    shape = (
        botocore.session.get_session()
        .get_service_model("dynamodbstreams")
        .operation_model("GetRecords")
        .output_shape
    )
    parser = create_parser("json")
    tracker: AckTracker[Any] = AckTracker()
    versioner = StreamVersioner(0)
    start = time.perf_counter()
    for body in pages:
        page = parser.parse({"body": body, "headers": {}, "status_code": 200}, shape)
        for record in page["Records"]:
            ddb = record["dynamodb"]
            version = versioner.next(ddb["ApproximateCreationDateTime"])
            event = ChangeEvent.from_stream_record(table, record, version, "shard-0")
            publisher.publish(event, tracker, (ddb["SequenceNumber"], version))
        publisher.poll(0)
    publisher.flush()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_publish")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--bootstrap", default=None, help="existing broker (default: benchmarks/broker.py)"
    )
    parser.add_argument(
        "--boto3",
        action="store_true",
        help="also measure the stream path through botocore's parser (the path before)",
    )
    parser.add_argument("--no-scan", action="store_true", help="skip the scanned-item figure")
    parser.add_argument(
        "--no-pure-python",
        action="store_true",
        help="skip the figures with the compiled core switched off",
    )
    args = parser.parse_args(argv)

    from contextlib import nullcontext

    from benchmarks.broker import bench_broker
    from benchmarks.report import Results

    results = Results("publish")
    with nullcontext(args.bootstrap) if args.bootstrap else bench_broker(results) as bootstrap:
        if args.bootstrap:
            results.set_broker(f"existing broker at {args.bootstrap}")
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=4, replication_factor=1)
        table = f"bench-{uuid.uuid4().hex[:8]}"
        stream_table = table + "-stream"
        base_table = table + "-baseline"
        ensure_topics(kafka, [table, stream_table, base_table])
        items = make_items(args.events)
        codec = EventCodec()
        publisher = Publisher(kafka, codec)
        base_topic = kafka.changes_topic(base_table)
        results.extra["events"] = len(items)

        # -- the stream path ------------------------------------------------------------
        pages = make_pages(items)
        # Pre-encode the same events for the baseline, outside the timed region.
        stream_records = [
            (ev.key_bytes(), codec.encode(ev)) for ev in stream_events(stream_table, pages)
        ]
        run_baseline(publisher, base_topic, stream_records[:1000])  # warm-up
        run_stream(publisher, stream_table, pages[:1])
        # The inputs held for the whole run (millions of objects) are no worker's: a worker
        # holds one page. Frozen, the collector stops re-scanning them on every full
        # collection, a cost that would fall on the allocating paths and not the baseline.
        gc.collect()
        gc.freeze()
        with ProcessCpu() as base_cpu:
            base_rate = len(stream_records) / run_baseline(publisher, base_topic, stream_records)
        with ProcessCpu() as stream_cpu:
            stream_rate = len(stream_records) / run_stream(publisher, stream_table, pages)
        mean_record = sum(len(p) for p in pages) / len(stream_records)
        print(f"stream records: {len(stream_records)}, mean {mean_record:.0f} bytes of JSON")
        results.extra["compiled_core"] = compiled.CORE is not None
        results.extra["mean_stream_record_bytes"] = round(mean_record)
        results.figure(
            "publish: stream records, GetRecords body → Kafka (tracked)",
            stream_rate,
            "events/s",
            baseline=("produce pre-encoded bytes", base_rate),
            goal_ratio=0.5,
            cpu_us_per_item=stream_cpu.us_per(len(stream_records)),
            baseline_cpu_us_per_item=base_cpu.us_per(len(stream_records)),
        )
        if compiled.CORE is not None and not args.no_pure_python:
            with python_path():
                pure_rate = len(stream_records) / run_stream(publisher, stream_table, pages)
            results.figure(
                "publish: stream records, pure Python (compiled core off)",
                pure_rate,
                "events/s",
                baseline=("produce pre-encoded bytes", base_rate),
            )
        if args.boto3:
            with ProcessCpu() as boto3_cpu:
                boto3_rate = len(stream_records) / run_stream_boto3(publisher, stream_table, pages)
            results.figure(
                "publish: stream records through botocore's parser, one publish each (before)",
                boto3_rate,
                "events/s",
                baseline=("produce pre-encoded bytes", base_rate),
                cpu_us_per_item=boto3_cpu.us_per(len(stream_records)),
                baseline_cpu_us_per_item=base_cpu.us_per(len(stream_records)),
            )

        # -- a scanned item -------------------------------------------------------------
        if not args.no_scan:
            records = []
            sizes = 0
            for item in items:
                wire = attrs.from_boto(item)
                sizes += len(attrs.dumps(wire))
                ev = ChangeEvent.snapshot(table, wire, ("pk", "sk"), 1, Origin.SCAN)
                records.append((ev.key_bytes(), codec.encode(ev)))
            run_full(publisher, table, items[:1000])
            gc.collect()
            gc.freeze()  # as above
            with ProcessCpu() as scan_base_cpu:
                scan_base = len(records) / run_baseline(publisher, base_topic, records)
            with ProcessCpu() as full_cpu:
                full_rate = len(items) / run_full(publisher, table, items)
            print(f"items: {len(items)}, mean item size: {sizes / len(items):.0f} bytes")
            results.extra["mean_item_bytes"] = round(sizes / len(items))
            results.figure(
                "publish: scanned items, convert + encode + produce",
                full_rate,
                "events/s",
                baseline=("produce pre-encoded bytes", scan_base),
                goal_ratio=0.5,
                cpu_us_per_item=full_cpu.us_per(len(items)),
                baseline_cpu_us_per_item=scan_base_cpu.us_per(len(records)),
            )
            if compiled.CORE is not None and not args.no_pure_python:
                with python_path():
                    pure_rate = len(items) / run_full(publisher, table, items)
                results.figure(
                    "publish: scanned items, pure Python (compiled core off)",
                    pure_rate,
                    "events/s",
                    baseline=("produce pre-encoded bytes", scan_base),
                )
    results.write()


if __name__ == "__main__":
    main()
