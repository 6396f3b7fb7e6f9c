"""Many tables, low cost: one `stream` process serves tens of tables on a bounded pool of
reader threads; an idle shard's GetRecords calls back off and resume at once on data; an
ended shard's children are found by DescribeStream's ShardFilter (CHILD_SHARDS), with a full
listing only where the endpoint ignores the filter (moto does).

Against the moto server, the real Kafka broker, and (for shard lineage, which moto does not
simulate) the scripted streams client."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.runtime.metrics import REGISTRY, STREAM_GET_RECORDS
from bridge.runtime.settings import KafkaSettings
from connectors.sources.stream.leases import lease_key
from connectors.sources.stream.shards import child_shards
from connectors.sources.stream.worker import ShardConsumer, StreamWorker
from tests.integration.test_stream_moto import consume_events
from tests.integration.test_stream_scripted import Rig
from tests.metrics_helpers import free_port, scrape, wait_health
from tests.stream_helpers import (
    at,
    cli_env,
    create_stream_table,
    launch_stream,
    read_stream,
    running,
    stop_process,
    stream_settings,
    write_config,
)
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def put(ddb: Any, table: str, pk: str, value: int = 0) -> None:
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"N": "1"}, "v": {"N": str(value)}})


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no Threads line for pid {pid}")


def test_one_stream_process_serves_thirty_tables_on_a_bounded_pool(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    tables = [unique_name(f"many{i:02d}") for i in range(30)]
    arns = {t: create_stream_table(ddb_client, t) for t in tables}
    config = write_config(
        tmp_path / "bridge.toml",
        tables,
        unique_name("leases"),
        4000,
        stream={"max_concurrent_requests": 3, "idle_poll_max_ms": 1000},
    )
    port = free_port()
    log_path = tmp_path / "stream.log"
    proc = launch_stream(
        config, cli_env(dynamodb_endpoint, kafka_bootstrap), log_path, "--metrics-port", str(port)
    )
    try:
        wait_health(port, 200, proc, timeout_s=120)
        held = "ddb_bridge_stream_leases_held"
        wait_until(
            lambda: all(scrape(port).get((held, (("table", t),))) == 1 for t in tables),
            120,
            "one lease held per table",
        )
        for round_ in range(2):
            for i, table in enumerate(tables):
                put(ddb_client, table, f"k{round_}", i)
        expected = {
            (t, r["dynamodb"]["SequenceNumber"])
            for t in tables
            for r in read_stream(streams_client, arns[t])
        }
        assert len(expected) == 60
        topics = [KafkaSettings().changes_topic(t) for t in tables]
        consume_events(kafka_bootstrap, topics, expected, timeout_s=120)
        # Every shard is served by the pool: far fewer threads than shards (one thread per
        # shard would be 30 and more), whatever the number of tables.
        threads = threads_of(proc.pid)
        assert threads < len(tables), f"{threads} threads for {len(tables)} tables"
        samples = scrape(port)
        calls = {
            t: samples.get(("ddb_bridge_stream_get_records_total", (("table", t),))) for t in tables
        }
        assert all(c is not None and c >= 1 for c in calls.values()), calls
    finally:
        code = stop_process(proc)
    assert code == 0, log_path.read_text()


def test_idle_backoff_grows_while_empty_and_resets_on_data(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
) -> None:
    table = unique_name("idle")
    arn = create_stream_table(ddb_client, table)
    put(ddb_client, table, "before")
    settings = stream_settings(
        dynamodb_endpoint,
        kafka_bootstrap,
        [table],
        unique_name("leases"),
        lease_duration_ms=4000,
        idle_poll_max_ms=800,
    )
    assert settings.stream.poll_interval_ms == 50
    worker = StreamWorker(settings, worker_id="idle")
    calls: list[float] = []  # every GetRecords request the worker's client sends
    worker.streams.meta.events.register(
        "before-call.dynamodbstreams.GetRecords", lambda **_: calls.append(time.monotonic())
    )
    with running(worker) as outcome:
        assert worker.started.wait(30), outcome
        wait_until(lambda: len(worker.consumers) == 1, 30, "the shard taken")
        consumer: ShardConsumer = next(iter(worker.consumers.values()))
        wait_until(lambda: len(consumer.pages) >= 8, 20, "eight pages read")
        # The first page brought the record (the shard is at its tip: the first pause); then
        # each empty page doubles the pause up to idle_poll_max_ms.
        assert list(consumer.pages)[:8] == [
            (1, 0.05),
            (0, 0.1),
            (0, 0.2),
            (0, 0.4),
            (0, 0.8),
            (0, 0.8),
            (0, 0.8),
            (0, 0.8),
        ]
        idle_from = time.monotonic()
        time.sleep(3.0)
        idle_calls = sum(1 for t in calls if t >= idle_from)
        # 3 s at the 0.8 s cap: about 4 calls; a fixed 50 ms poll would make 60.
        assert 2 <= idle_calls <= 6, idle_calls
        # On the wire: each call came no sooner than the pause chosen after the one before.
        gaps = [calls[i + 1] - calls[i] for i in range(7)]
        delays = [delay for _records, delay in list(consumer.pages)[:7]]
        assert all(gap >= delay - 0.01 for gap, delay in zip(gaps, delays, strict=True)), gaps
        assert gaps[4] >= 0.79 and gaps[0] < 0.5, gaps
        seen = len(consumer.pages)
        put(ddb_client, table, "after")

        def settled() -> bool:
            pages = list(consumer.pages)[seen:]
            data = [i for i, (n, _) in enumerate(pages) if n]
            return bool(data) and len(pages) >= data[0] + 3

        wait_until(settled, 10, "the page with the new record and two after it")
        after = list(consumer.pages)[seen:]
        data = next(i for i, (n, _) in enumerate(after) if n)
        # The backoff starts over: the first pause after the record, then doubling again.
        assert after[data : data + 3] == [(1, 0.05), (0, 0.1), (0, 0.2)], after
        records = read_stream(streams_client, arn)
        expected = {(table, r["dynamodb"]["SequenceNumber"]) for r in records}
        consume_events(kafka_bootstrap, [settings.kafka.changes_topic(table)], expected)
    assert outcome.get("code") == 0, outcome
    # The worker's own counter is the calls it made (moto never throttles them).
    assert REGISTRY.get(STREAM_GET_RECORDS, table=table) == len(calls)


def test_an_ended_shard_hands_over_to_its_child_found_through_shard_filter(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name, idle_poll_max_ms=400)
    parent = rig.streams.add_shard("shardId-0001")
    for i in range(4):
        rig.streams.add_record(parent.shard_id, "INSERT", f"p{i}", at(i), value=i)
    worker = rig.worker()
    worker.sync_interval_s = 3600.0  # no periodic full listing in the test: only the first
    with running(worker) as outcome:
        wait_until(lambda: len(rig.events()) == 4, 30, "the parent's records")
        first_listing = list(rig.streams.describe_requests)
        assert first_listing and all(r["filter"] is None for r in first_listing)
        # The shard splits: a child appears and the parent closes after its last record.
        rig.streams.add_shard("shardId-0002", parent=parent.shard_id)
        for i in range(3):
            rig.streams.add_record("shardId-0002", "MODIFY", f"p{i}", at(10 + i), value=10 + i)
        parent.closed = True
        wait_until(lambda: len(rig.events()) == 7, 30, "the child's records")
    assert outcome.get("code") == 0, outcome
    later = rig.streams.describe_requests[len(first_listing) :]
    assert later == [
        {"start": None, "filter": {"Type": "CHILD_SHARDS", "ShardId": parent.shard_id}}
    ], later
    assert worker.child_lookups == {"filtered": 1}
    events = rig.events()
    assert [e.shard_id for e in events] == [parent.shard_id] * 4 + ["shardId-0002"] * 3
    versions = [e.version for e in events]
    assert versions == sorted(versions) and len(set(versions)) == 7
    leases = {lease.key: lease for lease in rig.leases().list({rig.arn})}
    assert leases[lease_key(rig.arn, parent.shard_id)].finished
    assert lease_key(rig.arn, "shardId-0002") in leases


def test_moto_ignores_shard_filter_so_the_full_listing_is_made_instead(
    streams_client: Any, ddb_client: Any, unique_name: Any
) -> None:
    table = unique_name("filter")
    arn = create_stream_table(ddb_client, table)
    shard_id = streams_client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0][
        "ShardId"
    ]
    sent: list[dict[str, Any]] = []
    hook = "before-parameter-build.dynamodbstreams.DescribeStream"

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    streams_client.meta.events.register(hook, record)
    found = child_shards(streams_client, arn, shard_id, threading.Event())
    # moto answered the filtered call with the shard itself (not a child of it): the filter
    # was not honoured, so the stream was listed in full, which shows no child either.
    assert [("ShardFilter" in p) for p in sent] == [True, False], sent
    assert sent[0]["ShardFilter"] == {"Type": "CHILD_SHARDS", "ShardId": shard_id}
    assert not found.filtered and found.shards == []


def test_a_scripted_endpoint_that_ignores_the_filter_gets_the_full_listing_fallback(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name)
    rig.streams.add_shard("shardId-0001")
    rig.streams.add_shard("shardId-0002", parent="shardId-0001")
    rig.streams.add_shard("shardId-0003", parent="shardId-0001")
    honoured = child_shards(rig.streams, rig.arn, "shardId-0001", threading.Event())
    assert honoured.filtered
    assert [s.shard_id for s in honoured.shards] == ["shardId-0002", "shardId-0003"]
    assert all(r["filter"] is not None for r in rig.streams.describe_requests)
    rig.streams.describe_requests.clear()
    rig.streams.honour_shard_filter = False
    ignored = child_shards(rig.streams, rig.arn, "shardId-0001", threading.Event())
    assert not ignored.filtered
    assert [s.shard_id for s in ignored.shards] == ["shardId-0002", "shardId-0003"]
    # The filtered call, then the full listing: one page per shard, as the rig pages.
    assert [r["filter"] is not None for r in rig.streams.describe_requests] == [
        True,
        False,
        False,
        False,
    ]


def test_streams_calls_in_flight_never_exceed_the_global_cap(
    ddb_client: Any,
    streams_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
) -> None:
    tables = [unique_name(f"cap{i:02d}") for i in range(12)]
    arns = {t: create_stream_table(ddb_client, t) for t in tables}
    for i, table in enumerate(tables):
        put(ddb_client, table, "k", i)
    settings = stream_settings(
        dynamodb_endpoint,
        kafka_bootstrap,
        tables,
        unique_name("leases"),
        lease_duration_ms=6000,
        idle_poll_max_ms=50,  # no backoff: every shard polls every 50 ms (the rig's pause)
        max_concurrent_requests=2,
    )
    worker = StreamWorker(settings, worker_id="capped")
    lock = threading.Lock()
    in_flight = {"now": 0, "peak": 0, "calls": 0}

    def before(**_: Any) -> None:
        with lock:
            in_flight["now"] += 1
            in_flight["calls"] += 1
            in_flight["peak"] = max(in_flight["peak"], in_flight["now"])

    def after(**_: Any) -> None:
        with lock:
            in_flight["now"] -= 1

    for op in ("GetRecords", "GetShardIterator"):
        worker.streams.meta.events.register(f"before-call.dynamodbstreams.{op}", before)
        worker.streams.meta.events.register(f"after-call.dynamodbstreams.{op}", after)
    with running(worker) as outcome:
        assert worker.started.wait(30), outcome
        wait_until(lambda: len(worker.consumers) == len(tables), 30, "every shard taken")
        expected = {
            (t, r["dynamodb"]["SequenceNumber"])
            for t in tables
            for r in read_stream(streams_client, arns[t])
        }
        topics = [settings.kafka.changes_topic(t) for t in tables]
        consume_events(kafka_bootstrap, topics, expected)
        wait_until(lambda: in_flight["calls"] >= 200, 30, "200 calls")
    assert outcome.get("code") == 0, outcome
    # Twelve shards polling every 50 ms, yet never more than two calls at once.
    assert 1 <= in_flight["peak"] <= 2, in_flight
    assert worker.pool.peak_running <= 2
