"""The stream reader on the Kinesis transport (`[stream] transport = "kinesis"`) against
moto's Kinesis and a real Kafka broker: DynamoDB-shaped change records put on a Kinesis data
stream reach Kafka with the right keys and versions (MILLISECOND and MICROSECOND precision);
reshards (split, merge, update_shard_count) read parents before children; duplicates and
late older changes are ordered by version, never by arrival; `ddb-bridge stream` killed -9
resumes from its checkpoint."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError

from bridge.codec.avro import EventCodec
from bridge.model.errors import ConfigError
from bridge.model.event import ChangeEvent
from bridge.runtime.config_file import write_config as write_settings_file
from bridge.runtime.metrics import REGISTRY
from bridge.runtime.settings import KafkaSettings
from connectors.dynamodb.capture import read_capture
from connectors.sources.stream.leases import LeaseTable
from connectors.sources.stream.shards import SHARD_END
from connectors.sources.stream.worker import StreamWorker
from ddb_bridge.cli.helptext import EXIT_CONFIG
from tests.kinesis_records import MILLISECOND
from tests.kinesis_stream_helpers import (
    Change,
    change,
    create_kinesis_stream,
    kinesis_client,
    kinesis_settings,
    put_changes,
    write_kinesis_config,
)
from tests.stream_helpers import cli_env, launch_stream, running, stop_process, wait_log
from tests.support.daemon import run_bridge
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

BASE_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def read_events(bootstrap: str, topic: str, want: int, timeout_s: float = 60) -> list[Any]:
    """Messages of `topic` in partition order, until at least `want` arrived."""
    codec = EventCodec()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[tuple[int, int, ChangeEvent]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(out) < want:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"consume error: {msg.error()}")
                out.append((msg.partition(), msg.offset(), codec.decode(msg.value())))
        # A little longer: anything published twice shows up too.
        for msg in consumer.consume(1000, timeout=1.0):
            if not msg.error():
                out.append((msg.partition(), msg.offset(), codec.decode(msg.value())))
    finally:
        consumer.close()
    assert len(out) >= want, f"only {len(out)} of {want} events reached {topic}"
    out.sort(key=lambda t: (t[0], t[1]))
    return [event for _, _, event in out]


def pk_of(event: ChangeEvent) -> str:
    return str(event.keys["pk"]["S"])


def value_of(event: ChangeEvent) -> str | None:
    image = event.new_image
    return None if image is None else str(image["v"]["S"])


@pytest.fixture
def kinesis(dynamodb_endpoint: str) -> Any:
    return kinesis_client(dynamodb_endpoint)


def test_records_reach_kafka_with_keys_and_versions_ms_and_us(
    kinesis: Any, ddb_client: Any, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any
) -> None:
    table, name = unique_name("kin"), unique_name("kin-stream")
    arn = create_kinesis_stream(kinesis, name)
    settings = kinesis_settings(
        dynamodb_endpoint, kafka_bootstrap, [table], unique_name("leases"), name
    )
    changes = [
        # Microsecond precision: the version is the change time itself.
        change("a", BASE_US + 17, "a1", event="INSERT"),
        change("b", BASE_US + 25, "b1", event="INSERT"),
        # Millisecond precision, three changes of one item in the same millisecond: the
        # versions keep the order DynamoDB put them on the shard.
        change("c", BASE_US + 1_000, "c1", event="INSERT", precision=MILLISECOND),
        change("c", BASE_US + 1_000, "c2", precision=MILLISECOND),
        change("c", BASE_US + 1_000, "c3", precision=MILLISECOND),
        change("a", BASE_US + 2_000_123, "a2"),
        change("b", BASE_US + 3_000_000, "", event="REMOVE"),
    ]
    seqs = put_changes(kinesis, name, table, changes)
    worker = StreamWorker(settings, worker_id="solo")
    leases = LeaseTable(ddb_client, settings.stream.lease_table, "reader", 1.0)
    with running(worker) as outcome:
        assert worker.started.wait(30), outcome
        wait_until(
            lambda: [lease.checkpoint for lease in leases.list({arn})] == [seqs[-1]],
            30,
            "the checkpoint at the last record",
        )
    assert outcome.get("code") == 0, outcome
    # The capture record is written under the Kinesis stream's ARN (the back-fill checks it).
    assert read_capture(ddb_client, settings.stream.lease_table, arn) is not None

    events = read_events(kafka_bootstrap, settings.kafka.changes_topic(table), len(changes))
    by_seq = {e.sequence_number: e for e in events}
    assert set(by_seq) == set(seqs) and len(events) == len(changes)
    got = [by_seq[s] for s in seqs]
    assert [(pk_of(e), e.op.value, value_of(e)) for e in got] == [
        ("a", "INSERT", "a1"),
        ("b", "INSERT", "b1"),
        ("c", "INSERT", "c1"),
        ("c", "MODIFY", "c2"),
        ("c", "MODIFY", "c3"),
        ("a", "MODIFY", "a2"),
        ("b", "REMOVE", None),
    ]
    assert all(e.keys == c.keys for e, c in zip(got, changes, strict=True))
    assert [e.version for e in got] == [
        BASE_US + 17,
        BASE_US + 25,
        BASE_US + 1_000,
        BASE_US + 1_001,
        BASE_US + 1_002,
        BASE_US + 2_000_123,
        BASE_US + 3_000_000,
    ]
    assert [e.event_id for e in got] == [c.event_id for c in changes]
    lease = leases.list({arn})[0]
    assert lease.last_version == BASE_US + 3_000_000 and lease.owner is None
    # The reader's metrics are the same for this transport.
    assert REGISTRY.get("ddb_bridge_stream_records_published_total", table=table) == len(changes)
    assert (
        worker.consumers == {} and REGISTRY.get("ddb_bridge_stream_leases_held", table=table) == 0
    )


def test_duplicates_and_late_older_changes_lose_by_version(
    kinesis: Any, ddb_client: Any, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any
) -> None:
    table, name = unique_name("kin-dup"), unique_name("kin-stream")
    arn = create_kinesis_stream(kinesis, name)
    settings = kinesis_settings(
        dynamodb_endpoint, kafka_bootstrap, [table], unique_name("leases"), name
    )
    old = change("x", BASE_US + 1_000_000, "old", event="INSERT")
    new = change("x", BASE_US + 5_000_000, "new")
    older = change("x", BASE_US + 3_000_000, "older-late")  # arrives after `new`
    seqs = put_changes(kinesis, name, table, [old, new, new, older])
    worker = StreamWorker(settings, worker_id="solo")
    leases = LeaseTable(ddb_client, settings.stream.lease_table, "reader", 1.0)
    with running(worker) as outcome:
        assert worker.started.wait(30), outcome
        wait_until(
            lambda: [le.checkpoint for le in leases.list({arn})] == [seqs[-1]],
            30,
            "the checkpoint at the last record",
        )
    assert outcome.get("code") == 0, outcome
    events = read_events(kafka_bootstrap, settings.kafka.changes_topic(table), 4)
    assert [value_of(e) for e in events] == ["old", "new", "new", "older-late"]  # arrival
    first, dup_a, dup_b, late = events
    # A duplicate is a true duplicate: same version, same event id.
    assert dup_a.version == dup_b.version == BASE_US + 5_000_000
    assert dup_a.event_id == dup_b.event_id == new.event_id
    # The late older change takes its own time: it loses to the newer one it came after.
    assert late.version == BASE_US + 3_000_000 < dup_a.version
    assert first.version < late.version
    winner = max(events, key=lambda e: e.version)
    assert value_of(winner) == "new"


def test_reshards_read_parents_before_children(
    kinesis: Any, ddb_client: Any, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any
) -> None:
    """Split, merge and update_shard_count on moto's Kinesis while the worker reads.

    moto puts every record on the first shard whose hash range covers it, the original one
    even once it is closed, so its children stay empty here: the test checks the lineage
    (a merge's two parents), that every closed shard ends (SHARD_END) before its children
    are read (they start from their parents' last version), and that nothing is lost.
    Records are only put while the original shard is open, as on Kinesis.
    """
    table, name = unique_name("kin-reshard"), unique_name("kin-stream")
    arn = create_kinesis_stream(kinesis, name, shards=1)
    settings = kinesis_settings(
        dynamodb_endpoint,
        kafka_bootstrap,
        [table],
        unique_name("leases"),
        name,
        shard_sync_interval_s=0.5,
        idle_poll_max_ms=200,
    )
    keys = [f"k{i:02d}" for i in range(12)]
    clock = iter(range(BASE_US, BASE_US + 10**9, 1000))
    puts: list[Change] = []

    def wave(label: str) -> list[str]:
        batch = [change(k, next(clock), f"{label}-{k}") for k in keys]
        puts.extend(batch)
        return put_changes(kinesis, name, table, batch)

    worker = StreamWorker(settings, worker_id="solo")
    leases = LeaseTable(ddb_client, settings.stream.lease_table, "reader", 1.0)
    with running(worker) as outcome:
        assert worker.started.wait(30), outcome
        first = wave("w1")
        wait_until(
            lambda: [le.checkpoint for le in leases.list({arn})] == [first[-1]],
            30,
            "the checkpoint at the first batch's last record",
        )
        wave("w2")  # split while these are (partly) unread
        shard0 = kinesis.list_shards(StreamName=name)["Shards"][0]
        middle = str(int(shard0["HashKeyRange"]["EndingHashKey"]) // 2)
        kinesis.split_shard(
            StreamName=name, ShardToSplit=shard0["ShardId"], NewStartingHashKey=middle
        )
        open_ids = sorted(
            s["ShardId"]
            for s in kinesis.list_shards(StreamName=name)["Shards"]
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        )
        assert len(open_ids) == 2
        kinesis.merge_shards(
            StreamName=name, ShardToMerge=open_ids[0], AdjacentShardToMerge=open_ids[1]
        )
        kinesis.update_shard_count(
            StreamName=name, TargetShardCount=2, ScalingType="UNIFORM_SCALING"
        )
        listed = kinesis.list_shards(StreamName=name)["Shards"]
        closed = {
            s["ShardId"] for s in listed if "EndingSequenceNumber" in s["SequenceNumberRange"]
        }
        still_open = {s["ShardId"] for s in listed} - closed
        assert len(closed) == 4 and len(still_open) == 2

        def all_read() -> bool:
            found = {le.shard_id: le for le in leases.list({arn})}
            return (
                set(found) == closed | still_open
                and all(found[s].checkpoint == SHARD_END for s in closed)
                and all(found[s].owner == "solo" for s in still_open)
            )

        wait_until(all_read, 60, "every closed shard at SHARD_END, the open ones taken")
    assert outcome.get("code") == 0, outcome
    found = {le.shard_id: le for le in leases.list({arn})}
    merged = [s for s in listed if s.get("AdjacentParentShardId")]
    assert len(merged) >= 1, "the merge made a shard with two parents"
    assert set(found[merged[0]["ShardId"]].parent_ids) == {
        merged[0]["ParentShardId"],
        merged[0]["AdjacentParentShardId"],
    }
    # Each child started from its parents' last version, i.e. after they ended.
    root = found[shard0["ShardId"]]
    assert root.last_version == puts[-1].created_us
    for shard_id in closed - {shard0["ShardId"]}:
        assert found[shard_id].last_version == root.last_version, shard_id
    assert sum(worker.child_lookups.values()) >= 3

    events = read_events(kafka_bootstrap, settings.kafka.changes_topic(table), len(puts))
    # Every change reached Kafka; one published twice (moto's split re-puts the records
    # of the shard it splits) is the same change with the same version.
    by_id: dict[str | None, set[int]] = defaultdict(set)
    for event in events:
        by_id[event.event_id].add(event.version)
    assert {c.event_id for c in puts} <= set(by_id)
    assert all(by_id[c.event_id] == {c.created_us} for c in puts)
    # Per item, in partition (= publish) order, versions never go back.
    per_key: dict[str, list[int]] = defaultdict(list)
    for event in events:
        per_key[pk_of(event)].append(event.version)
    for key, versions in per_key.items():
        assert versions == sorted(versions), (key, versions)
        assert versions[-1] == max(c.created_us for c in puts if c.pk == key)


def test_latest_starts_at_a_timestamp_without_reading_the_shard(
    kinesis: Any,
    ddb_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """initial_position LATEST on Kinesis: an AT_TIMESTAMP position (a year of retention is
    not read to find the tip); records put before the start are not published, later ones
    are, and the lease never holds the LATEST sentinel."""
    from connectors.sources.stream import kinesis_transport

    monkeypatch.setattr(kinesis_transport, "LATEST_LOOKBACK_MS", 0)
    table, name = unique_name("kin-latest"), unique_name("kin-stream")
    arn = create_kinesis_stream(kinesis, name)
    settings = kinesis_settings(
        dynamodb_endpoint,
        kafka_bootstrap,
        [table],
        unique_name("leases"),
        name,
        initial_position="LATEST",
    )
    before = [change("old", BASE_US + i, f"old{i}") for i in range(5)]
    put_changes(kinesis, name, table, before)
    time.sleep(0.05)
    client = kinesis_client(dynamodb_endpoint)
    iterator_types: list[str] = []
    client.meta.events.register(
        "before-parameter-build.kinesis.GetShardIterator",
        lambda params, **_: iterator_types.append(params["ShardIteratorType"]),
    )
    worker = StreamWorker(settings, worker_id="solo", kinesis=client)
    leases = LeaseTable(ddb_client, settings.stream.lease_table, "reader", 1.0)
    with running(worker) as outcome:
        assert worker.started.wait(30), outcome
        (lease,) = leases.list({arn})
        assert lease.checkpoint.startswith("AT_TIMESTAMP:"), lease.checkpoint
        wait_until(lambda: bool(iterator_types), 10, "the shard's first iterator")
        # Never read from the start to find the tip.
        assert set(iterator_types) == {"AT_TIMESTAMP"}, iterator_types
        after = [change("new", BASE_US + 1_000 + i, f"new{i}") for i in range(3)]
        seqs = put_changes(kinesis, name, table, after)
        wait_until(
            lambda: [le.checkpoint for le in leases.list({arn})] == [seqs[-1]],
            30,
            "the checkpoint at the last record",
        )
    assert outcome.get("code") == 0, outcome
    events = read_events(kafka_bootstrap, settings.kafka.changes_topic(table), 3)
    assert sorted(value_of(e) or "" for e in events) == ["new0", "new1", "new2"]


def test_missing_stream_name_and_missing_stream_are_config_errors(
    kinesis: Any, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any
) -> None:
    table = unique_name("kin-conf")
    settings = kinesis_settings(
        dynamodb_endpoint, kafka_bootstrap, [table], unique_name("leases"), "x"
    )
    no_name = settings.model_copy(
        update={"stream": settings.stream.model_copy(update={"stream_name": None})}
    )
    with pytest.raises(ConfigError, match=r"stream_name"):
        StreamWorker(no_name, worker_id="w").prepare()
    missing = unique_name("no-such-stream")
    gone = settings.model_copy(
        update={"stream": settings.stream.model_copy(update={"stream_name": missing})}
    )
    with pytest.raises(ConfigError, match=rf"{missing}.*does not exist"):
        StreamWorker(gone, worker_id="w").prepare()
    # Two tables on one stream would share its shards' leases: refused, naming the fix.
    shared = unique_name("kin-shared")
    create_kinesis_stream(kinesis, shared)
    two = kinesis_settings(
        dynamodb_endpoint, kafka_bootstrap, [table, table + "-b"], unique_name("leases"), shared
    )
    with pytest.raises(ConfigError, match=r"kinesis_stream"):
        StreamWorker(two, worker_id="w").prepare()


def test_cli_exits_with_the_config_error_code_without_a_stream_name(
    dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    config = write_settings_file(
        tmp_path / "bridge.toml",
        tables=[{"name": unique_name("t")}],
        stream={"transport": "kinesis"},
    )
    proc = run_bridge(
        "stream", config, env=cli_env(dynamodb_endpoint, kafka_bootstrap), timeout_s=60
    )
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "configuration error" in proc.stderr
    assert "stream_name" in proc.stderr and "kinesis_stream" in proc.stderr


def test_cli_sigkill_and_restart_resume_from_checkpoint(
    kinesis: Any,
    ddb_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    table, name = unique_name("kin-kill"), unique_name("kin-stream")
    arn = create_kinesis_stream(kinesis, name, shards=2)
    lease_table = unique_name("leases")
    config = write_kinesis_config(tmp_path / "bridge.toml", table, lease_table, name)
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    log_path = tmp_path / "stream.log"
    leases = LeaseTable(ddb_client, lease_table, "reader", 1.0)
    total = 1_500
    puts: list[Change] = []
    failed: list[BaseException] = []

    def writer() -> None:
        try:
            for n in range(total):
                c = change(f"k{n % 97:03d}", BASE_US + n * 10, f"n{n}")
                put_changes(kinesis, name, table, [c])
                puts.append(c)
        except BaseException as exc:
            failed.append(exc)

    first = launch_stream(config, env, log_path)
    second = None
    thread = threading.Thread(target=writer, daemon=True)
    try:
        wait_log(log_path, "stream started", first)
        thread.start()
        wait_until(lambda: len(puts) >= 500, 120, "500 puts")
        wait_until(
            lambda: any(le.checkpoint.isdigit() for le in leases.list({arn})),
            30,
            "a first checkpoint",
        )
        assert stop_process(first, signal.SIGKILL) == -signal.SIGKILL
        killed_after = len(puts)
        second = launch_stream(config, env, log_path)
        thread.join(300)
        assert not failed, failed
        assert len(puts) == total and killed_after < total
        last = {
            s["ShardId"]: s["SequenceNumberRange"]
            for s in kinesis.list_shards(StreamName=name)["Shards"]
        }
        tips = {}
        for shard_id in last:
            it = kinesis.get_shard_iterator(
                StreamName=name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            records = kinesis.get_records(ShardIterator=it, Limit=10_000)["Records"]
            tips[shard_id] = records[-1]["SequenceNumber"] if records else "TRIM_HORIZON"
        try:
            wait_until(
                lambda: {le.shard_id: le.checkpoint for le in leases.list({arn})} == tips,
                90,
                "the restarted daemon to catch up",
            )
        except AssertionError as exc:
            got = {le.shard_id: (le.checkpoint, le.owner) for le in leases.list({arn})}
            raise AssertionError(f"{got} != {tips}\n{log_path.read_text()[-3000:]}") from exc
        assert stop_process(second, signal.SIGTERM) == 0, log_path.read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                stop_process(proc, signal.SIGKILL)
    assert log_path.read_text().count("stream started") == 2
    events = read_events(kafka_bootstrap, KafkaSettings().changes_topic(table), total, timeout_s=90)
    by_id: dict[str | None, set[int]] = defaultdict(set)
    for event in events:
        by_id[event.event_id].add(event.version)
    # Nothing lost; anything published twice (after the kill) has its first version.
    assert {c.event_id for c in puts} <= set(by_id)
    assert all(by_id[c.event_id] == {c.created_us} for c in puts)
