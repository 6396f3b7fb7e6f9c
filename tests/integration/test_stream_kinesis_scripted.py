"""The stream worker on the Kinesis transport against a scripted Kinesis client whose child
shards hold records (moto's Kinesis puts every record on the first shard, closed or not),
with the lease table on the moto server and an in-memory producer: a split, then a merge
with two parents; a change of an item that reaches a child shard late (older than its
parent's newest) loses by version; parents are published before children."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.codec.avro import EventCodec
from bridge.kafka.publisher import Publisher
from bridge.model.event import ChangeEvent
from connectors.sources.stream.leases import LeaseTable
from connectors.sources.stream.shards import SHARD_END
from connectors.sources.stream.worker import StreamWorker
from tests.kinesis_stream_helpers import ScriptedKinesis, change, kinesis_settings
from tests.producer_fakes import HoldingProducer
from tests.stream_helpers import guard_checkpoints, running
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/scripted"
BASE_US = 1_767_225_600_000_000


def test_split_then_merge_parents_first_and_a_late_change_loses(
    ddb_client: Any, dynamodb_endpoint: str, unique_name: Any
) -> None:
    table = unique_name("kin-scr")
    kinesis = ScriptedKinesis(table)
    kinesis.add("shardId-0")
    x1 = change("x", BASE_US + 10, "x1", event="INSERT")
    y1 = change("y", BASE_US + 20, "y1", event="INSERT")
    x2 = change("x", BASE_US + 30, "x2")
    for c in (x1, y1, x2):
        kinesis.put("shardId-0", c)
    # Split: 0 -> 1, 2. A change of x older than the parent's newest reaches child 1 late.
    kinesis.add("shardId-1", "shardId-0")
    kinesis.add("shardId-2", "shardId-0")
    kinesis.close("shardId-0")
    x_late = change("x", BASE_US + 25, "x-late")
    x3 = change("x", BASE_US + 40, "x3")
    y2 = change("y", BASE_US + 45, "y2")
    kinesis.put("shardId-1", x_late)
    kinesis.put("shardId-1", x3)
    kinesis.put("shardId-2", y2)
    # Merge: 1 + 2 -> 3 (two parents).
    kinesis.add("shardId-3", "shardId-1", "shardId-2")
    kinesis.close("shardId-1")
    kinesis.close("shardId-2")
    x4 = change("x", BASE_US + 50, "x4")
    kinesis.put("shardId-3", x4)
    kinesis.put("shardId-3", x4)  # delivered twice

    settings = kinesis_settings(
        dynamodb_endpoint, "unused:9092", [table], unique_name("leases"), "scripted"
    )
    producer = HoldingProducer(arrive_after_polls=2)
    worker = StreamWorker(
        settings,
        worker_id="w1",
        ddb=ddb_client,
        kinesis=kinesis,  # type: ignore[arg-type]
        publisher=Publisher(settings.kafka, producer=producer),
        create_topics=False,
        discover_interval_s=0.2,
    )
    early = guard_checkpoints(worker.leases, producer)
    leases = LeaseTable(ddb_client, settings.stream.lease_table, "reader", 1.0)
    with running(worker) as outcome:
        assert worker.started.wait(30), outcome
        wait_until(
            lambda: {le.shard_id: le.checkpoint for le in leases.list({ARN})}
            == {"shardId-0": SHARD_END, "shardId-1": SHARD_END, "shardId-2": SHARD_END,
                "shardId-3": str(kinesis.seq)},
            30,
            "every parent ended and the merged shard read",
        )  # fmt: skip
    assert outcome.get("code") == 0, outcome
    assert early == []
    codec = EventCodec()
    events: list[ChangeEvent] = [codec.decode(v) for _t, _k, v in producer.sent]
    values = [e.new_image["v"]["S"] if e.new_image else None for e in events]
    # Parents before children: the parent's three, then its children's, then the merge's.
    assert values[:3] == ["x1", "y1", "x2"]
    assert sorted(values[3:6]) == ["x-late", "x3", "y2"]
    assert values.index("x-late") < values.index("x3")
    assert values[6:] == ["x4", "x4"]
    version = {v: e.version for v, e in zip(values, events, strict=True)}
    assert version["x-late"] == BASE_US + 25 < version["x2"]  # loses to the newer change
    assert version["x3"] == BASE_US + 40 and version["x4"] == BASE_US + 50
    assert events[-1].version == events[-2].version  # the duplicate is a true duplicate
    # The merged shard's lease knows both parents.
    merged = {le.shard_id: le for le in leases.list({ARN})}["shardId-3"]
    assert set(merged.parent_ids) == {"shardId-1", "shardId-2"}
    assert worker.child_lookups["filtered"] >= 3  # from ChildShards, no full listing
