"""The KCL record processor over amazon-kclpy's real MultiLang pipe handling (KCLProcess),
with a scripted daemon on the other end: every line the processor writes is checked. The
version triples live in a lease table on the moto server (their writes are conditional)."""

from __future__ import annotations

import base64
import contextlib
import json
from collections import deque
from typing import Any

import pytest
from amazon_kclpy import kcl
from confluent_kafka import KafkaError

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher
from bridge.runtime.settings import KafkaSettings
from connectors.dynamodb.capture import ensure_lease_table
from connectors.sources.stream.kcl.checkpoints import KclCheckpoint
from connectors.sources.stream.kcl.processor import EXIT_FAILED, KclRecordProcessor
from connectors.sources.stream.kcl.versions import (
    KEEP,
    Found,
    KclVersions,
    entries_of,
    read_item,
    versions_key,
)
from connectors.sources.stream.processor import KafkaRecordProcessor
from tests.kinesis_records import MILLISECOND, kinesis_data
from tests.producer_fakes import HoldingProducer, key_contains

pytestmark = pytest.mark.integration

TABLE = "orders"
ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders-changes"
SHARD = "shardId-000000000001"
MS = 1_790_000_000_000  # one millisecond, as DynamoDB writes it at MILLISECOND precision


class Leases:
    """The bridge's lease table on the moto server, and what the KCL path stored in it."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def versions(self, shard: str = SHARD) -> KclVersions:
        return KclVersions(self.client, self.name, TABLE, ARN, shard)

    def pairs(self, shard: str = SHARD) -> list[tuple[str, int]]:
        item = read_item(self.client, self.name, versions_key(ARN, shard))
        return [(e.sequence, e.last_version) for e in entries_of(item)]


@pytest.fixture
def leases(ddb_client: Any, unique_name: Any) -> Leases:
    name = unique_name("leases")
    ensure_lease_table(ddb_client, name)
    return Leases(ddb_client, name)


class ScriptedDaemon:
    """Both ends of the pipe: feeds the daemon's messages, answers checkpoints from a script
    of error names (None = success), and keeps every line the processor wrote."""

    def __init__(
        self,
        ddb: Leases,
        messages: list[dict[str, Any]],
        errors: list[str | None],
        producer: HoldingProducer,
    ):
        self.ddb = ddb
        # Kafka's answers arrive between the daemon's messages (served by the processor's
        # next poll), never during the call that produced the records.
        self.producer = producer
        # Checkpoints asked for while a record at or before them was unacknowledged.
        self.early_checkpoints: list[tuple[str, list[str]]] = []
        self.messages = deque(json.dumps(m) + "\n" for m in messages)
        self.errors = deque(errors)
        self.replies: deque[str] = deque()
        self.written: list[dict[str, Any]] = []
        # The version pairs stored when each checkpoint request arrived.
        self.pairs_at_checkpoint: list[list[tuple[str, int]]] = []

    # the processor's stdin
    def readline(self) -> str:
        if self.replies:
            return self.replies.popleft()
        self.producer.arrive()
        return self.messages.popleft() if self.messages else ""

    # the processor's stdout
    def write(self, text: str) -> None:
        for line in text.splitlines():
            if not line.strip():
                continue
            message = json.loads(line)
            self.written.append(message)
            if message["action"] == "checkpoint":
                self.pairs_at_checkpoint.append(self.ddb.pairs())
                position = message["sequenceNumber"] or "SHARD_END"
                pending = self.producer.unacked_through(SHARD, position)
                if pending:
                    self.early_checkpoints.append((position, pending))
                reply = {
                    "action": "checkpoint",
                    "sequenceNumber": message["sequenceNumber"],
                    "subSequenceNumber": None,
                }
                error = self.errors.popleft() if self.errors else None
                if error is not None:
                    reply["error"] = error
                self.replies.append(json.dumps(reply) + "\n")

    def flush(self) -> None:
        pass


class Exited(Exception):
    pass


def record(seq: str, key: str, created_us: int, precision: str = MILLISECOND) -> dict[str, Any]:
    data = kinesis_data(
        "INSERT",
        {"pk": {"S": key}},
        new_image={"pk": {"S": key}},
        table=TABLE,
        created_us=created_us,
        precision=precision,
    )
    return {
        "action": "record",
        "data": base64.b64encode(data).decode(),
        "partitionKey": key,
        "sequenceNumber": seq,
        "subSequenceNumber": 0,
        "approximateArrivalTimestamp": created_us // 1000,
    }


def initialize(sequence: str = "TRIM_HORIZON") -> dict[str, Any]:
    return {
        "action": "initialize",
        "shardId": SHARD,
        "sequenceNumber": sequence,
        "subSequenceNumber": 0,
    }


def batch(*records: dict[str, Any]) -> dict[str, Any]:
    return {"action": "processRecords", "millisBehindLatest": 0, "records": list(records)}


def run(
    ddb: Leases,
    messages: list[dict[str, Any]],
    errors: list[str | None] | None = None,
    parents: list[int] | None = None,
    producer: HoldingProducer | None = None,
) -> tuple[ScriptedDaemon, HoldingProducer, list[int]]:
    producer = producer or HoldingProducer()
    publisher = Publisher(KafkaSettings(bootstrap_servers="unused:9092"), producer=producer)  # type: ignore[arg-type]
    exits: list[int] = []

    def exit_(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)  # as sys.exit does; amazon-kclpy lets it through

    processor = KclRecordProcessor(
        KafkaRecordProcessor(publisher, checkpoint_interval_s=0, transport="kinesis"),
        TABLE,
        ARN,
        versions_for=ddb.versions,
        parent_versions=lambda _shard: [Found(v, True) for v in parents or []],
        exit=exit_,
    )
    daemon = ScriptedDaemon(ddb, messages, errors or [], producer)
    with contextlib.suppress(SystemExit):
        kcl.KCLProcess(processor, input_file=daemon, output_file=daemon, error_file=daemon).run()
    assert daemon.early_checkpoints == [], "checkpointed records Kafka has not acknowledged"
    return daemon, producer, exits


def versions(producer: HoldingProducer) -> list[tuple[str, int]]:
    events = [EventCodec().decode(value) for _t, _k, value in producer.sent]
    return [(e.sequence_number or "", e.version) for e in events]


def actions(daemon: ScriptedDaemon) -> list[tuple[str, Any]]:
    return [(m["action"], m.get("responseFor", m.get("sequenceNumber"))) for m in daemon.written]


def test_the_whole_lifecycle_line_by_line(leases: Leases) -> None:
    t = MS * 1000
    daemon, producer, exits = run(
        leases,
        [
            initialize(),
            batch(record("1", "a", t), record("2", "a", t), record("3", "b", t + 1000)),
            batch(record("4", "c", t + 2000)),
            batch(),  # an idle call: Kafka's answer for "4" is served, "4" is checkpointed
            {"action": "shardEnded"},
        ],
        errors=[None, "ThrottlingException", None, None],
    )
    assert exits == []
    # Kafka answers between the daemon's calls: a batch is checkpointed on the call after.
    assert actions(daemon) == [
        ("status", "initialize"),
        ("status", "processRecords"),
        ("checkpoint", "3"),
        ("status", "processRecords"),
        ("checkpoint", "4"),  # answered ThrottlingException: asked again
        ("checkpoint", "4"),
        ("status", "processRecords"),
        ("checkpoint", None),  # SHARD_END: a checkpoint without a sequence number
        ("status", "shardEnded"),
    ]
    # Two changes in one millisecond keep their shard order; versions are the change times.
    assert versions(producer) == [("1", t), ("2", t + 1), ("3", t + 1000), ("4", t + 2000)]
    # Each version pair was stored before the KCL was asked to checkpoint its sequence.
    assert daemon.pairs_at_checkpoint[0] == [("3", t + 1000)]
    assert daemon.pairs_at_checkpoint[1][-1] == ("4", t + 2000)
    assert daemon.pairs_at_checkpoint[3][-1] == ("SHARD_END", t + 2000)


def test_a_restart_continues_the_versions_of_its_checkpoint(leases: Leases) -> None:
    t = MS * 1000
    first, producer1, _ = run(
        leases, [initialize(), batch(record("1", "a", t), record("2", "a", t)), batch()]
    )
    assert ("checkpoint", "2") in actions(first)
    # The daemon restarts from the KCL's checkpoint "2"; the records after it come again.
    _, producer2, exits = run(leases, [initialize("2"), batch(record("3", "a", t))])
    assert exits == []
    assert versions(producer1) == [("1", t), ("2", t + 1)]
    assert versions(producer2) == [("3", t + 2)]  # the third change of that millisecond


def test_a_checkpoint_without_its_own_pair_uses_the_newest_before_it(leases: Leases) -> None:
    t = MS * 1000
    earlier = leases.versions()
    earlier.load()
    earlier.record("10", t + 5)
    _, producer, _ = run(leases, [initialize("12"), batch(record("13", "a", t))])
    assert versions(producer) == [("13", t + 6)]


def test_a_fresh_child_shard_continues_after_its_parents(leases: Leases) -> None:
    t = MS * 1000
    _, producer, _ = run(leases, [initialize(), batch(record("1", "a", t))], parents=[t + 3, t + 1])
    assert versions(producer) == [("1", t + 4)]


def test_shutdown_exception_stops_checkpointing_but_not_the_process(leases: Leases) -> None:
    t = MS * 1000
    daemon, producer, exits = run(
        leases,
        [initialize(), batch(record("1", "a", t)), batch(), {"action": "leaseLost"}],
        errors=["ShutdownException"],
    )
    assert exits == []
    assert actions(daemon) == [
        ("status", "initialize"),
        ("status", "processRecords"),
        ("checkpoint", "1"),
        ("status", "processRecords"),
        ("status", "leaseLost"),
    ]
    assert len(producer.sent) == 1


@pytest.mark.parametrize("error", ["InvalidStateException", "IllegalArgumentException"])
def test_a_refused_checkpoint_ends_the_process(error: str, leases: Leases) -> None:
    t = MS * 1000
    daemon, _, exits = run(
        leases,
        [initialize(), batch(record("1", "a", t)), batch(record("2", "a", t + 1000))],
        errors=[error],
    )
    assert exits == [EXIT_FAILED]
    # No status for the failed call: the daemon sees its child die and stops.
    assert actions(daemon) == [
        ("status", "initialize"),
        ("status", "processRecords"),
        ("checkpoint", "1"),
    ]


def test_a_bad_record_ends_the_process_before_anything_of_its_batch_is_published(
    leases: Leases,
) -> None:
    t = MS * 1000
    bad = record("2", "a", t) | {"data": base64.b64encode(b"not json").decode()}
    daemon, producer, exits = run(
        leases, [initialize(), batch(record("1", "a", t), bad), batch(record("3", "a", t + 1000))]
    )
    assert exits == [EXIT_FAILED]
    assert producer.sent == []
    assert actions(daemon) == [("status", "initialize")]


def test_throttling_that_does_not_end_gives_up_with_exit(leases: Leases) -> None:
    t = MS * 1000
    daemon, _, exits = run(
        leases,
        [initialize(), batch(record("1", "a", t)), batch()],
        errors=["ThrottlingException"] * 100,
    )
    assert exits == [EXIT_FAILED]
    assert actions(daemon).count(("checkpoint", "1")) == 8


def test_only_the_newest_pairs_are_kept(leases: Leases) -> None:
    ddb = leases
    store = leases.versions()
    store.load()
    for n in range(KEEP + 3):
        store.record(str(n), 100 + n)
    assert ddb.pairs() == [(str(n), 100 + n) for n in range(3, KEEP + 3)]
    fresh = leases.versions()
    fresh.load()
    assert fresh.at(str(KEEP + 2)) is not None


def test_the_checkpoint_writer_keeps_its_last_position(leases: Leases) -> None:
    class Kcl:
        def checkpoint(
            self, sequence_number: str | None = None, sub_sequence_number: Any = None
        ) -> None:
            pass

    ddb = leases
    store = leases.versions()
    store.load()
    writer = KclCheckpoint(Kcl(), store, "TRIM_HORIZON", sleep=lambda _s: None)
    assert writer.last == "TRIM_HORIZON"
    writer.checkpoint("7", 42)
    assert writer.last == "7"
    assert ddb.pairs() == [("7", 42)]


def test_shard_end_right_after_a_batch_waits_for_its_acknowledgements(leases: Leases) -> None:
    t = MS * 1000
    daemon, producer, exits = run(
        leases,
        [initialize(), batch(record("1", "a", t), record("2", "b", t)), {"action": "shardEnded"}],
    )
    assert exits == []
    # No poll served Kafka's answers before shardEnded: only its flush can (`run` checks that
    # the SHARD_END checkpoint found nothing unacknowledged).
    assert actions(daemon)[-2:] == [("checkpoint", None), ("status", "shardEnded")]
    assert producer.unacked == 0


def test_a_refused_record_ends_the_process_without_shard_end(leases: Leases) -> None:
    t = MS * 1000
    producer = HoldingProducer()
    producer.refuse(key_contains('"b"'), KafkaError._MSG_TIMED_OUT)
    daemon, _, exits = run(
        leases,
        [initialize(), batch(record("1", "a", t), record("2", "b", t)), {"action": "shardEnded"}],
        producer=producer,
    )
    assert exits == [EXIT_FAILED]
    assert ("checkpoint", None) not in actions(daemon)
    assert all(seq != "SHARD_END" for seq, _v in leases.pairs())
