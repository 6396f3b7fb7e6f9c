"""Lease writes against the moto server: conditional fencing on leaseCounter, KCL names."""

from __future__ import annotations

import time
from typing import Any

import pytest

from connectors.dynamodb.capture import ensure_lease_table
from connectors.dynamodb.leases import LeaseLost
from connectors.sources.stream.leases import LeaseTable
from connectors.sources.stream.shards import Shard

pytestmark = pytest.mark.integration

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"


def test_a_stolen_lease_fences_out_the_old_holder(ddb_client: Any, unique_name: Any) -> None:
    name = unique_name("leases")
    ensure_lease_table(ddb_client, name)
    a = LeaseTable(ddb_client, name, "a", lease_duration_s=1.0)
    b = LeaseTable(ddb_client, name, "b", lease_duration_s=1.0)
    assert a.create("t", ARN, Shard("shardId-1", parent_ids=("shardId-0",)), "TRIM_HORIZON")
    assert not b.create("t", ARN, Shard("shardId-1"), "TRIM_HORIZON"), "created twice"

    held_by_a = a.list({ARN})[0]
    a.take(held_by_a, wait_for_fence=False)
    a.checkpoint(held_by_a, "000123", 1_700_000_000_000_001)

    seen_by_b = b.list({ARN})[0]
    assert (seen_by_b.owner, seen_by_b.counter) == ("a", 2)
    stolen_at = time.monotonic()
    b.take(seen_by_b, wait_for_fence=True)
    # b may not process before a's lease can possibly still be valid on a's own clock.
    assert seen_by_b.start_after >= held_by_a.valid_until
    assert seen_by_b.start_after >= stolen_at + 1.0

    with pytest.raises(LeaseLost):
        a.renew(held_by_a)
    assert not held_by_a.held(), "a lost lease must stop processing at once"
    with pytest.raises(LeaseLost):
        a.checkpoint(held_by_a, "000999", 1_700_000_000_000_009)

    raw = ddb_client.get_item(
        TableName=name, Key={"leaseKey": {"S": f"{ARN}#shardId-1"}}, ConsistentRead=True
    )["Item"]
    assert raw["leaseOwner"] == {"S": "b"}
    assert raw["checkpoint"] == {"S": "000123"}, "the fenced-out checkpoint was written"
    assert raw["lastVersion"] == {"N": "1700000000000001"}
    assert raw["parentShardId"] == {"SS": ["shardId-0"]}
    assert raw["ownerSwitchesSinceCheckpoint"] == {"N": "1"}
    assert int(raw["leaseCounter"]["N"]) == 3

    b.release(seen_by_b)
    after = a.list({ARN})[0]
    assert after.owner is None and after.counter == 4


def test_a_holder_that_cannot_renew_gives_up_before_the_lease_expires(
    ddb_client: Any, unique_name: Any
) -> None:
    name = unique_name("leases")
    ensure_lease_table(ddb_client, name)
    a = LeaseTable(ddb_client, name, "a", lease_duration_s=1.0)
    a.create("t", ARN, Shard("shardId-1"), "TRIM_HORIZON")
    lease = a.list({ARN})[0]
    a.take(lease, wait_for_fence=False)
    assert lease.held()
    time.sleep(0.85)  # past duration x (1 - safety margin) without a renewal
    assert not lease.held()
    with pytest.raises(LeaseLost):
        a.renew(lease)
