"""Lease balancing and expiry, simulated over many workers with a fake clock (no services)."""

from __future__ import annotations

import copy
from collections import Counter

from connectors.sources.stream.leases import ExpiryWatch, Lease, lease_key, obsolete, plan_claims

ARN = "arn:aws:dynamodb:us-east-1:1:table/t/stream/2026"


def lease(
    shard: str, owner: str | None = None, checkpoint: str = "TRIM_HORIZON", **kw: object
) -> Lease:
    return Lease(
        key=lease_key(ARN, shard),
        stream_arn=ARN,
        shard_id=shard,
        table="t",
        owner=owner,
        counter=0,
        checkpoint=checkpoint,
        last_version=None,
        parent_ids=tuple(kw.pop("parents", ())),  # type: ignore[arg-type]
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Sim:
    """Workers sharing a lease table; each round every live worker renews, then claims."""

    def __init__(self, shards: int, duration: float = 1.0) -> None:
        self.clock = Clock()
        self.duration = duration
        self.table = {lease(f"s{i:02d}").key: lease(f"s{i:02d}") for i in range(shards)}
        self.held: dict[str, set[str]] = {}
        self.watch: dict[str, ExpiryWatch] = {}
        self.steals = 0

    def add(self, worker: str) -> None:
        self.held[worker] = set()
        self.watch[worker] = ExpiryWatch(self.duration, self.clock)

    def kill(self, worker: str) -> None:
        del self.held[worker]

    def round(self) -> None:
        self.clock.now += self.duration / 3
        for worker, held in self.held.items():
            for key in list(held):  # renew; a failed renewal is a lost lease
                stored = self.table[key]
                if stored.owner == worker:
                    stored.counter += 1
                else:
                    held.discard(key)
            snapshot = [copy.copy(item) for item in self.table.values()]
            self.watch[worker].observe(snapshot)
            for claim in plan_claims(snapshot, set(held), worker, self.watch[worker]):
                stored = self.table[claim.lease.key]
                if stored.counter != claim.lease.counter:
                    continue  # conditional write fails
                stored.owner = worker
                stored.counter += 1
                held.add(claim.lease.key)
                self.steals += claim.steal

    def loads(self) -> Counter[str]:
        return Counter(item.owner for item in self.table.values() if item.owner in self.held)


def test_two_then_three_workers_balance_and_stay_put() -> None:
    sim = Sim(6)
    sim.add("a")
    for _ in range(3):
        sim.round()
    assert sim.loads() == {"a": 6}
    sim.add("b")
    for _ in range(20):
        sim.round()
    assert sim.loads() == {"a": 3, "b": 3}
    sim.add("c")
    for _ in range(20):
        sim.round()
    assert sim.loads() == {"a": 2, "b": 2, "c": 2}
    before = (sim.steals, {k: v.owner for k, v in sim.table.items()})
    for _ in range(30):
        sim.round()
    assert (sim.steals, {k: v.owner for k, v in sim.table.items()}) == before, "ping-pong"


def test_uneven_split_converges() -> None:
    sim = Sim(7)
    for w in ("a", "b", "c"):
        sim.add(w)
    for _ in range(30):
        sim.round()
    assert sorted(sim.loads().values()) == [2, 2, 3]


def test_dead_worker_leases_are_taken_only_after_expiry() -> None:
    sim = Sim(4)
    sim.add("a")
    sim.add("b")
    for _ in range(20):
        sim.round()
    assert sim.loads() == {"a": 2, "b": 2}
    sim.kill("b")
    sim.round()  # one third of the duration later: not yet expired
    assert sim.loads() == {"a": 2}
    for _ in range(5):
        sim.round()
    assert sim.loads() == {"a": 4}


def test_children_wait_for_finished_parents() -> None:
    leases = [
        lease("p", owner="x"),
        lease("c1", parents=["p"]),
        lease("c2", parents=["p"]),
        lease("orphan", parents=["gone"]),  # parent older than the capture: ready
    ]
    watch = ExpiryWatch(1.0, Clock())
    watch.observe(leases)
    claims = plan_claims(leases, set(), "me", watch)
    assert sorted(c.lease.shard_id for c in claims) == ["orphan"]
    leases[0].checkpoint = "SHARD_END"
    claims = plan_claims(leases, set(), "me", watch)
    assert sorted(c.lease.shard_id for c in claims) == ["c1", "c2", "orphan"]
    # A parent stopped by a recorded data loss does not hold its children back.
    leases[0].checkpoint = "000042"
    leases[0].data_loss = "trimmed"
    claims = plan_claims(leases, set(), "me", watch)
    assert sorted(c.lease.shard_id for c in claims) == ["c1", "c2", "orphan"]


def test_data_loss_leases_are_never_taken() -> None:
    stopped = lease("s1")
    stopped.data_loss = "trimmed"
    watch = ExpiryWatch(1.0, Clock())
    assert plan_claims([stopped], set(), "me", watch) == []


def test_finished_leases_are_obsolete_only_when_trimmed_and_children_started() -> None:
    parent = lease("p", checkpoint="SHARD_END")
    child = lease("c", parents=["p"])
    assert obsolete([parent, child], ARN, {"p", "c"}) == [], "still in DescribeStream"
    assert obsolete([parent, child], ARN, {"c"}) == [], "child has no version of its own yet"
    child.last_version = 42
    assert obsolete([parent, child], ARN, {"c"}) == [parent]
    assert obsolete([parent, child], "arn:other", {"c"}) == []
    assert obsolete([lease("open")], ARN, set()) == [], "unfinished leases are never removed"
