"""The stream worker against a scripted streams client (shard lineage, expired iterators,
trimming, throttling: moto simulates none of these), with the lease table on the moto server
and an in-memory producer that acknowledges late (two polls after producing), with every
checkpoint checked against what it has not acknowledged."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher
from bridge.model.errors import DataLossError, PermanentError
from bridge.model.event import ChangeEvent
from bridge.model.versioning import to_micros
from bridge.runtime.metrics import REGISTRY
from bridge.runtime.settings import Settings
from connectors.dynamodb.capture import read_capture
from connectors.sources.stream.leases import LeaseTable, lease_key
from connectors.sources.stream.shards import DynamoDBStreamsTransport, Shard
from connectors.sources.stream.worker import StreamWorker
from tests.producer_fakes import HoldingProducer, key_contains
from tests.stream_helpers import (
    ScriptedStreams,
    at,
    create_stream_table,
    guard_checkpoints,
    running,
    stream_settings,
)
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


class Rig:
    """A moto table (for DescribeTable and the lease table), a scripted stream, a fake producer."""

    def __init__(self, ddb: Any, endpoint: str, unique_name: Any, **stream: Any) -> None:
        self.table = unique_name("scr")
        self.arn = create_stream_table(ddb, self.table)
        self.ddb = ddb
        self.streams = ScriptedStreams(self.arn)
        # Acknowledges two polls after producing, never on the processor's own poll(0):
        # a checkpoint written too early fails the worker (guard_checkpoints).
        self.producer = HoldingProducer(arrive_after_polls=2)
        self.early_checkpoints: list[tuple[str, str, list[str]]] = []
        self.settings: Settings = stream_settings(
            endpoint, "unused:9092", [self.table], unique_name("leases"), **stream
        )
        self.codec = EventCodec()

    def worker(self, worker_id: str = "w1") -> StreamWorker:
        publisher = Publisher(self.settings.kafka, producer=self.producer)
        worker = StreamWorker(
            self.settings,
            worker_id=worker_id,
            ddb=self.ddb,
            streams=self.streams,
            publisher=publisher,
            create_topics=False,
            discover_interval_s=0.2,
        )
        guard_checkpoints(worker.leases, self.producer, self.early_checkpoints)
        return worker

    def events(self) -> list[ChangeEvent]:
        with self.producer.lock:
            sent = list(self.producer.sent)
        return [self.codec.decode(value) for _topic, _key, value in sent]

    def leases(self) -> LeaseTable:
        return LeaseTable(self.ddb, self.settings.stream.lease_table, "reader", 1.0)


def test_shard_split_parent_first_and_versions_continue(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name)
    s = rig.streams
    s.add_shard("shardId-parent")
    s.add_shard("shardId-child-a", parent="shardId-parent")
    s.add_shard("shardId-child-b", parent="shardId-parent")
    # Three writes in the same second on the parent: versions 0, +1, +2 µs past the second.
    for i in range(3):
        s.add_record("shardId-parent", "INSERT" if i == 0 else "MODIFY", "k1", at(100), i)
    s.shards["shardId-parent"].closed = True
    # Children report the same (rounded-down) second: versions must still continue upwards.
    s.add_record("shardId-child-a", "MODIFY", "k1", at(100), 10)
    s.add_record("shardId-child-a", "REMOVE", "k1", at(100))
    s.add_record("shardId-child-b", "INSERT", "k2", at(99), 20)

    with running(rig.worker()) as outcome:
        wait_until(lambda: len(rig.events()) >= 6, 30, "all six records")
        time.sleep(0.5)  # anything published twice would show up now
    assert outcome.get("code") == 0, outcome

    events = rig.events()
    assert len(events) == 6
    order = [e.shard_id for e in events]
    assert order[:3] == ["shardId-parent"] * 3, "children started before the parent ended"
    base = to_micros(at(100))
    assert [e.version for e in events[:3]] == [base, base + 1, base + 2]
    by_shard = {sid: [e for e in events if e.shard_id == sid] for sid in set(order)}
    assert [e.version for e in by_shard["shardId-child-a"]] == [base + 3, base + 4]
    assert [e.version for e in by_shard["shardId-child-b"]] == [base + 3]
    # k1's versions strictly increase across the split, in DynamoDB order.
    k1 = [e.version for e in events if e.keys["pk"] == {"S": "k1"}]
    assert k1 == sorted(k1) and len(set(k1)) == len(k1)

    leases = rig.leases()
    parent = leases.get(rig.arn, "shardId-parent")
    assert parent is not None and parent.checkpoint == "SHARD_END"
    assert parent.last_version == base + 2 and parent.owner is None
    child = leases.get(rig.arn, "shardId-child-a")
    assert child is not None and child.parent_ids == ("shardId-parent",)
    assert (
        child.checkpoint
        == rig.streams.shards["shardId-child-a"].records[-1]["dynamodb"]["SequenceNumber"]
    )
    assert child.last_version == base + 4
    # Discovery paged through DescribeStream one shard per page and found all three.
    assert {e.shard_id for e in events} == {"shardId-parent", "shardId-child-a", "shardId-child-b"}


def test_expired_iterator_is_reacquired_after_the_last_record(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name)
    rig.streams.add_shard("shardId-1")
    for i in range(10):
        rig.streams.add_record("shardId-1", "INSERT", f"k{i}", at(200 + i), i)
    rig.streams.expire_at["shardId-1"] = 6  # pages are 3 records: the iterator at record 6
    with running(rig.worker()) as outcome:
        wait_until(lambda: len(rig.events()) >= 10, 30, "ten records")
        time.sleep(0.3)
    assert outcome.get("code") == 0, outcome
    events = rig.events()
    assert [e.keys["pk"]["S"] for e in events] == [f"k{i}" for i in range(10)]  # no duplicate
    assert "shardId-1" not in rig.streams.expire_at, "the expiry was never hit"
    seq5 = rig.streams.shards["shardId-1"].records[5]["dynamodb"]["SequenceNumber"]
    assert {"shard": "shardId-1", "type": "AFTER_SEQUENCE_NUMBER", "seq": seq5} in (
        rig.streams.iterator_requests
    )


def test_throttling_is_backed_off_and_nothing_is_lost(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name)
    rig.streams.add_shard("shardId-1")
    for i in range(7):
        rig.streams.add_record("shardId-1", "INSERT", f"k{i}", at(300), i)
    rig.streams.throttle = 4
    started = time.monotonic()
    with running(rig.worker()) as outcome:
        wait_until(lambda: len(rig.events()) >= 7, 30, "seven records")
        elapsed = time.monotonic() - started
    assert outcome.get("code") == 0, outcome
    assert rig.streams.throttled == 4
    assert len(rig.events()) == 7
    assert elapsed < 15, "backoff is capped; this should not take long"


def test_trimmed_checkpoint_raises_data_loss_and_is_recorded(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name)
    shard = rig.streams.add_shard("shardId-1")
    for i in range(6):
        rig.streams.add_record("shardId-1", "INSERT", f"k{i}", at(400), i)
    # A lease checkpointed at record 1, while the stream has since trimmed records 0..3.
    leases = LeaseTable(rig.ddb, rig.settings.stream.lease_table, "old", 1.0)
    rig.worker().prepare()  # creates the lease table and the capture record
    leases.create(
        rig.table, rig.arn, Shard("shardId-1"), shard.records[1]["dynamodb"]["SequenceNumber"]
    )
    shard.trim_index = 4

    worker = rig.worker()
    with pytest.raises(DataLossError, match="trim horizon"):
        worker.run()  # stops on its own: no stop signal needed

    capture = read_capture(rig.ddb, rig.settings.stream.lease_table, rig.arn)
    assert capture is not None and len(capture.data_loss) == 1
    assert capture.data_loss[0]["shard_id"] == "shardId-1"
    lease = rig.leases().get(rig.arn, "shardId-1")
    assert lease is not None and lease.data_loss and lease.owner is None
    assert rig.events() == [], "records after the gap must not be published as if nothing happened"
    # The alarm `status` reports, as a gauge an alert rule can watch: one shard has a gap.
    assert REGISTRY.get("ddb_bridge_stream_data_loss_shards", table=rig.table) == 1

    # A restart refuses too, naming the shard and the fix, and exports the alarm it found.
    REGISTRY.remove("ddb_bridge_stream_data_loss_shards", table=rig.table)
    with pytest.raises(DataLossError, match="re-run a back-fill"):
        rig.worker("w2").run()
    assert REGISTRY.get("ddb_bridge_stream_data_loss_shards", table=rig.table) == 1


def test_continue_on_data_loss_keeps_other_shards_going(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name, continue_on_data_loss=True)
    lost = rig.streams.add_shard("shardId-lost")
    rig.streams.add_shard("shardId-ok")
    for i in range(4):
        rig.streams.add_record("shardId-lost", "INSERT", f"a{i}", at(500), i)
        rig.streams.add_record("shardId-ok", "INSERT", f"b{i}", at(500), i)
    rig.worker().prepare()
    LeaseTable(rig.ddb, rig.settings.stream.lease_table, "old", 1.0).create(
        rig.table, rig.arn, Shard("shardId-lost"), lost.records[0]["dynamodb"]["SequenceNumber"]
    )
    lost.trim_index = 3
    with running(rig.worker()) as outcome:
        wait_until(lambda: len(rig.events()) >= 4, 30, "the healthy shard's records")
        wait_until(
            lambda: bool(read_capture(rig.ddb, rig.settings.stream.lease_table, rig.arn).data_loss),
            30,
            "the data-loss record",
        )
        time.sleep(0.3)
    assert outcome.get("code") == 0, outcome
    assert sorted(e.keys["pk"]["S"] for e in rig.events()) == ["b0", "b1", "b2", "b3"]


def test_metrics_and_ttl_deletes(ddb_client: Any, dynamodb_endpoint: str, unique_name: Any) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name)
    rig.streams.add_shard("shardId-1")
    for i in range(4):
        rig.streams.add_record("shardId-1", "INSERT", f"k{i}", at(600), i)
    rig.streams.add_record("shardId-1", "REMOVE", "k0", at(601), ttl=True)
    with running(rig.worker()):
        wait_until(lambda: len(rig.events()) >= 5, 30, "five records")
        wait_until(
            lambda: REGISTRY.get("ddb_bridge_stream_leases_held", table=rig.table) == 1,
            30,
            "leases_held gauge",
        )
        exported = REGISTRY.registry.get_sample_value  # None: no such series
        # How far behind, in seconds: the age of the last record read, or 0 once at the tip.
        where = {"table": rig.table, "shard": "shardId-1"}
        seconds = exported("ddb_bridge_stream_behind_seconds", where)
        age = time.time() - at(601).timestamp()
        assert seconds is not None and (seconds == 0 or abs(seconds - age) < 60), (seconds, age)
        # No gap recorded: the data-loss gauge exists and reads 0 (an alert sees "no alarm").
        assert exported("ddb_bridge_stream_data_loss_shards", {"table": rig.table}) == 0
    assert REGISTRY.get("ddb_bridge_stream_records_published_total", table=rig.table) == 5
    assert [e.ttl_expired for e in rig.events()] == [False] * 4 + [True]
    assert REGISTRY.get("ddb_bridge_stream_leases_held", table=rig.table) == 0
    lease = rig.leases().get(rig.arn, "shardId-1")
    assert lease is not None and lease.owner is None, "a clean stop releases the lease"
    assert lease.key == lease_key(rig.arn, "shardId-1")


def test_restart_resumes_after_the_checkpoint_with_the_stored_version(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name)
    rig.streams.add_shard("shardId-1")
    for i in range(3):
        rig.streams.add_record("shardId-1", "MODIFY", "k", at(700), i)
    with running(rig.worker("first")):
        wait_until(lambda: len(rig.events()) >= 3, 30, "three records")
    # Same second again: only the stored last version keeps the versions increasing.
    for i in range(3, 6):
        rig.streams.add_record("shardId-1", "MODIFY", "k", at(700), i)
    with running(rig.worker("second")) as outcome:
        wait_until(lambda: len(rig.events()) >= 6, 30, "six records")
        time.sleep(0.3)
    assert outcome.get("code") == 0, outcome
    base = to_micros(at(700))
    assert [e.version for e in rig.events()] == [base + i for i in range(6)]
    seq3 = rig.streams.shards["shardId-1"].records[2]["dynamodb"]["SequenceNumber"]
    assert rig.streams.iterator_requests[-1] == {
        "shard": "shardId-1",
        "type": "AFTER_SEQUENCE_NUMBER",
        "seq": seq3,
    }


def test_initial_position_latest_skips_what_came_before(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name, initial_position="LATEST")
    rig.streams.add_shard("shardId-1")
    rig.streams.add_record("shardId-1", "INSERT", "before", at(800))
    worker = rig.worker()
    with running(worker) as outcome:
        wait_until(worker.started.is_set, 30, "the worker to start")
        rig.streams.add_record("shardId-1", "INSERT", "after", at(801))
        wait_until(lambda: len(rig.events()) >= 1, 30, "the record written after the start")
        time.sleep(0.3)
    assert outcome.get("code") == 0, outcome
    assert [e.keys["pk"]["S"] for e in rig.events()] == ["after"]
    capture = read_capture(rig.ddb, rig.settings.stream.lease_table, rig.arn)
    assert capture is not None and capture.initial_position == "LATEST"
    # No LATEST iterator is ever used: the shard's end was read once and kept as a position.
    assert "LATEST" not in {r["type"] for r in rig.streams.iterator_requests}


def test_latest_is_fixed_before_anything_is_published_and_survives_a_restart(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name, initial_position="LATEST")
    rig.streams.add_shard("shardId-1")
    before = rig.streams.add_record("shardId-1", "INSERT", "before", at(800))
    began_ms = int(time.time() * 1000)
    worker = rig.worker("first")
    with running(worker) as outcome:
        wait_until(worker.started.is_set, 30, "the worker to start")
    assert outcome.get("code") == 0, outcome
    # The first owner stopped before any checkpoint of its own; its lease already holds the
    # position it started from, not LATEST, which a later owner would take anew.
    lease = rig.leases().get(rig.arn, "shardId-1")
    assert lease is not None and lease.checkpoint == before["dynamodb"]["SequenceNumber"]
    capture = read_capture(rig.ddb, rig.settings.stream.lease_table, rig.arn)
    assert capture is not None and capture.started_at_ms >= began_ms

    for i in range(3):  # written while no worker runs
        rig.streams.add_record("shardId-1", "INSERT", f"gap{i}", at(801 + i))
    with running(rig.worker("second")) as outcome:
        wait_until(lambda: len(rig.events()) >= 3, 30, "the writes made in the gap")
        time.sleep(0.3)
    assert outcome.get("code") == 0, outcome
    assert [e.keys["pk"]["S"] for e in rig.events()] == ["gap0", "gap1", "gap2"]


def test_latest_on_a_closed_root_shard_ends_it_without_reading_and_reads_the_child(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name, initial_position="LATEST")
    rig.streams.add_shard("shardId-parent")
    rig.streams.add_shard("shardId-child", parent="shardId-parent")
    rig.streams.add_record("shardId-parent", "INSERT", "old", at(900))
    rig.streams.shards["shardId-parent"].closed = True
    rig.streams.add_record("shardId-child", "MODIFY", "k", at(901))
    with running(rig.worker()) as outcome:
        wait_until(lambda: len(rig.events()) >= 1, 30, "the child's record")
        time.sleep(0.3)
    assert outcome.get("code") == 0, outcome
    assert [e.keys["pk"]["S"] for e in rig.events()] == ["k"]
    assert {r["shard"] for r in rig.streams.iterator_requests} == {"shardId-child"}


def test_a_lease_left_at_latest_by_an_earlier_version_is_read_whole(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name, initial_position="LATEST")
    rig.streams.add_shard("shardId-1")
    rig.streams.add_record("shardId-1", "INSERT", "early", at(800))
    worker = rig.worker()
    worker.prepare()
    leases = rig.leases()
    rig.ddb.delete_item(
        TableName=rig.settings.stream.lease_table,
        Key={"leaseKey": {"S": lease_key(rig.arn, "shardId-1")}},
    )
    leases.create(rig.table, rig.arn, Shard("shardId-1"), "LATEST")
    with running(rig.worker()) as outcome:
        wait_until(lambda: len(rig.events()) >= 1, 30, "the shard read from its start")
        time.sleep(0.3)
    assert outcome.get("code") == 0, outcome
    assert [e.keys["pk"]["S"] for e in rig.events()] == ["early"]


def test_finished_trimmed_parent_lease_is_cleaned_up(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name)
    rig.streams.add_shard("shardId-parent")
    rig.streams.add_shard("shardId-child", parent="shardId-parent")
    rig.streams.add_record("shardId-parent", "INSERT", "k", at(900))
    rig.streams.shards["shardId-parent"].closed = True
    rig.streams.add_record("shardId-child", "MODIFY", "k", at(901))
    leases = rig.leases()

    def child_checkpointed() -> bool:
        child = leases.get(rig.arn, "shardId-child")
        return child is not None and child.last_version is not None

    with running(rig.worker()) as outcome:
        wait_until(lambda: len(rig.events()) == 2, 30, "both records")
        wait_until(child_checkpointed, 30, "the child's first checkpoint")
        time.sleep(0.5)
        assert leases.get(rig.arn, "shardId-parent") is not None, "still listed: kept"
        del rig.streams.shards["shardId-parent"]  # 24 hours later: trimmed from the stream
        wait_until(lambda: leases.get(rig.arn, "shardId-parent") is None, 30, "clean-up")
    assert outcome.get("code") == 0, outcome
    assert leases.get(rig.arn, "shardId-child") is not None


def test_a_record_kafka_refuses_stops_the_worker_naming_shard_and_key(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name)
    rig.streams.add_shard("shardId-1")
    for i in range(9):  # pages of 3: the refused record is in the second page
        rig.streams.add_record("shardId-1", "INSERT", f"k{i}", at(700 + i), i)
    rig.streams.shards["shardId-1"].closed = True
    rig.producer.refuse(key_contains('"k4"'), KafkaError._MSG_TIMED_OUT)
    with pytest.raises(PermanentError) as caught:
        rig.worker().run()  # stops on its own
    text = str(caught.value)
    assert "shardId-1" in text and rig.table in text and '"k4"' in text, text
    lease = rig.leases().get(rig.arn, "shardId-1")
    assert lease is not None
    # At most the page before the refused record is checkpointed; never SHARD_END.
    first_page_end = rig.streams.shards["shardId-1"].records[2]["dynamodb"]["SequenceNumber"]
    assert lease.checkpoint in ("TRIM_HORIZON", first_page_end), lease.checkpoint
    assert rig.early_checkpoints == []


def test_only_a_page_of_the_full_limit_is_read_on_at_once(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GetRecords returning as many records as asked means more may be waiting (a backlog):
    # the next call goes at once. One record fewer means the shard is at its tip: wait.
    monkeypatch.setattr(DynamoDBStreamsTransport, "page_limit", 3)  # the scripted page size
    rig = Rig(ddb_client, dynamodb_endpoint, unique_name)
    rig.streams.add_shard("shardId-1")
    for i in range(3 + 2):  # a page of the limit, then one of the limit - 1
        rig.streams.add_record("shardId-1", "INSERT", f"k{i}", at(800 + i), i)
    worker = rig.worker()
    first = rig.settings.stream.poll_interval_ms / 1000
    with running(worker) as outcome:
        wait_until(lambda: len(worker.consumers) == 1, 30, "the shard taken")
        consumer = next(iter(worker.consumers.values()))
        wait_until(lambda: len(consumer.pages) >= 3, 30, "three pages read")
        pages = list(consumer.pages)[:3]
    assert outcome.get("code") == 0, outcome
    assert pages == [(3, 0.0), (2, first), (0, 2 * first)], pages
