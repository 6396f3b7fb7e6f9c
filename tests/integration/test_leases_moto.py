"""The one lease discipline (connectors.dynamodb.leases) against moto DynamoDB.

Back-fill part claims are fenced on owner and counter like shard leases, raise the same
`LeaseLost`, resolve a retried write whose answer was lost, and read parts claimed by the
previous version (wall-clock `leaseExpiresAt`, no counter bump on renewal) correctly.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from connectors.dynamodb.capture import ensure_lease_table
from connectors.dynamodb.leases import FencedLeases, HeldLease, LeaseLost
from connectors.sources.backfill.runs import Part, RunInfo, RunStore

pytestmark = pytest.mark.integration

LEASE_MS = 1000


def new_run(ddb: Any, unique_name: Any, *owners: str, **kw: Any) -> tuple[list[RunStore], str]:
    lease_table, table = unique_name("leases"), unique_name("t")
    ensure_lease_table(ddb, lease_table)
    stores = [RunStore(ddb, lease_table, table, o, lease_ms=LEASE_MS, **kw) for o in owners]
    run = stores[0].create_run(
        RunInfo(table, "r1", "scan", 1_700_000_000_000_000, 1, 1, "scan, 1 segment"), ["seg-0"]
    )
    return stores, run.run_id


def claim_when_expired(store: RunStore, run_id: str, within_s: float) -> Part | None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        run = store.load_run(run_id)
        assert run is not None
        store.parts(run)
        part = store.claim(run_id, 0)
        if part is not None:
            return part
        time.sleep(0.05)
    return None


def raw_part(ddb: Any, store: RunStore, run_id: str) -> dict[str, Any]:
    item: dict[str, Any] = ddb.get_item(
        TableName=store.lease_table, Key=store.part_key(run_id, 0), ConsistentRead=True
    )["Item"]
    return item


def test_a_fenced_out_part_owner_cannot_move_the_cursor(ddb_client: Any, unique_name: Any) -> None:
    (a, b), run_id = new_run(ddb_client, unique_name, "a", "b")
    assert a.claim(run_id, 0) is not None
    a.checkpoint(run_id, 0, "cursor-a", 10)
    # a pauses (a long GC, a stopped VM): b takes the part; then a wakes up and writes.
    taken = claim_when_expired(b, run_id, within_s=4 * LEASE_MS / 1000)
    assert taken is not None and taken.owner == "b"

    with pytest.raises(LeaseLost):
        a.checkpoint(run_id, 0, "cursor-late", 99)
    with pytest.raises(LeaseLost):
        a.finish(run_id, 0, 99)
    item = raw_part(ddb_client, b, run_id)
    assert (item["cursor"]["S"], item["items"]["N"], item["state"]["S"]) == (
        "cursor-a",
        "10",
        "PENDING",
    )
    assert item["leaseOwner"] == {"S": "b"}
    b.checkpoint(run_id, 0, "cursor-b", 20)
    b.finish(run_id, 0, 30)
    item = raw_part(ddb_client, b, run_id)
    assert (item["state"]["S"], item["finishedBy"]["S"], "leaseOwner" in item) == (
        "DONE",
        "b",
        False,
    )


def test_a_late_renewal_keeps_a_part_nobody_took(ddb_client: Any, unique_name: Any) -> None:
    """A loaded machine renewing late keeps its part while the fence holds (no abort)."""
    (a, b), run_id = new_run(ddb_client, unique_name, "a", "b")
    assert a.claim(run_id, 0) is not None
    time.sleep(1.2 * LEASE_MS / 1000)  # past the lease, and nobody looked
    a.renew(run_id, 0)
    a.checkpoint(run_id, 0, "cursor", 1)
    # b starts watching now: the counter moves with every renewal, so b never takes it.
    until = time.monotonic() + 2.5 * LEASE_MS / 1000
    while time.monotonic() < until:
        assert claim_when_expired(b, run_id, within_s=LEASE_MS / 3000) is None
        a.renew(run_id, 0)
    item = raw_part(ddb_client, a, run_id)
    assert (item["leaseOwner"]["S"], item["cursor"]["S"]) == ("a", "cursor")


def test_parts_claimed_by_the_previous_version_are_read_correctly(
    ddb_client: Any, unique_name: Any
) -> None:
    (new,), run_id = new_run(ddb_client, unique_name, "new")
    key = new.part_key(run_id, 0)

    def old_version_write(expression: str, **values: Any) -> None:
        """What the previous version wrote: wall-clock expiry, counter bumped on claim only."""
        request: dict[str, Any] = {
            "TableName": new.lease_table,
            "Key": key,
            "UpdateExpression": expression,
            "ExpressionAttributeValues": {
                f":{k}": {"N": str(v)} if isinstance(v, int) else {"S": v}
                for k, v in values.items()
            },
        }
        if "#c" in expression:
            request["ExpressionAttributeNames"] = {"#c": "cursor", "#i": "items"}
        ddb_client.update_item(**request)

    now_ms = int(time.time() * 1000)
    old_version_write(
        "SET leaseOwner = :me, leaseExpiresAt = :exp, claims = claims + :one, "
        "leaseCounter = if_not_exists(leaseCounter, :zero) + :one, #c = :cursor, #i = :items",
        me="old",
        exp=now_ms + LEASE_MS,
        one=1,
        zero=0,
        cursor="cursor-old",
        items=7,
    )
    # The old worker is alive: it renews by moving leaseExpiresAt only. Its part is never
    # taken, though its counter does not move.
    until = time.monotonic() + 3 * LEASE_MS / 1000
    while time.monotonic() < until:
        old_version_write("SET leaseExpiresAt = :exp", exp=int(time.time() * 1000) + LEASE_MS)
        died = time.monotonic()  # if this renewal is its last
        assert claim_when_expired(new, run_id, within_s=LEASE_MS / 3000) is None
    # It died: its part is taken one lease later, at its cursor, and leaseExpiresAt is gone.
    taken = claim_when_expired(new, run_id, within_s=4 * LEASE_MS / 1000)
    assert taken is not None
    assert time.monotonic() - died >= LEASE_MS / 1000
    assert (taken.owner, taken.cursor, taken.items, taken.claims, taken.counter) == (
        "new",
        "cursor-old",
        7,
        2,
        2,
    )
    assert "leaseExpiresAt" not in raw_part(ddb_client, new, run_id)
    new.finish(run_id, 0, 9)
    assert raw_part(ddb_client, new, run_id)["state"] == {"S": "DONE"}


class AnswerLostOnce:
    """A DynamoDB client whose first UpdateItem is applied but its answer never arrives."""

    def __init__(self, ddb: Any) -> None:
        self.ddb = ddb
        self.lost = 0

    def update_item(self, **kwargs: Any) -> Any:
        result = self.ddb.update_item(**kwargs)
        if not self.lost:
            self.lost += 1
            raise EndpointConnectionError(endpoint_url="http://lost")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ddb, name)


def test_a_retried_write_whose_answer_was_lost_is_not_a_lost_lease(
    ddb_client: Any, unique_name: Any
) -> None:
    name = unique_name("leases")
    ensure_lease_table(ddb_client, name)
    ddb_client.put_item(TableName=name, Item={"leaseKey": {"S": "k"}, "leaseCounter": {"N": "0"}})
    flaky = AnswerLostOnce(ddb_client)
    leases = FencedLeases(flaky, name, "me", lease_duration_s=5.0, attempts=3)
    lease = HeldLease("k", None, 0)
    leases.take(lease)
    assert flaky.lost == 1, "the first answer was not lost: the test proves nothing"
    assert (lease.owner, lease.counter) == ("me", 1) and lease.held()
    item = ddb_client.get_item(TableName=name, Key={"leaseKey": {"S": "k"}})["Item"]
    assert (item["leaseOwner"]["S"], item["leaseCounter"]["N"]) == ("me", "1")

    # Without retries the same loss is an error the caller sees (and retries), not LeaseLost.
    single = FencedLeases(AnswerLostOnce(ddb_client), name, "me", 5.0, attempts=1)
    with pytest.raises(Exception) as raised:
        single.renew(lease)
    assert not isinstance(raised.value, LeaseLost)


def test_the_stream_and_the_back_fill_raise_one_lease_lost() -> None:
    from connectors.sources.backfill import part_loop, runs
    from connectors.sources.stream import worker

    assert worker.LeaseLost is LeaseLost
    assert part_loop.LeaseLost is LeaseLost
    assert runs.LeaseLost is LeaseLost
    assert not hasattr(runs, "LeaseLostError")
