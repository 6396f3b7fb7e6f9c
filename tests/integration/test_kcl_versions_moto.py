"""The KCL path's version pairs in the bridge's lease table (moto server): the pair of the
checkpoint the KCL holds survives any number of failed checkpoints, and a processor that lost
its lease cannot overwrite the new owner's pairs."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.model.errors import TransientError
from connectors.dynamodb.capture import ensure_lease_table
from connectors.dynamodb.leases import LeaseLost
from connectors.sources.stream.kcl.checkpoints import KclCheckpoint
from connectors.sources.stream.kcl.versions import KEEP, KclVersions, newest_versions

pytestmark = pytest.mark.integration

TABLE = "orders"
ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders-changes"
SHARD = "shardId-000000000001"
T = 1_790_000_000_000_000


class KclError(Exception):
    """amazon-kclpy's CheckpointError keeps the daemon's exception name in `.value`."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class FailingKcl:
    """The KCL's checkpointer: answers each checkpoint from `errors` (None = it took it)."""

    def __init__(self, errors: list[str | None]) -> None:
        self.errors = errors
        self.held: str | None = None

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: Any = None
    ) -> None:
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise KclError(error)
        self.held = sequence_number


def store(ddb: Any, lease_table: str) -> KclVersions:
    return KclVersions(ddb, lease_table, TABLE, ARN, SHARD)


def test_failed_checkpoints_never_evict_the_pair_of_the_kcls_checkpoint(
    ddb_client: Any, unique_name: Any
) -> None:
    name = unique_name("leases")
    ensure_lease_table(ddb_client, name)
    versions = store(ddb_client, name)
    versions.load()
    kcl = FailingKcl([None])
    writer = KclCheckpoint(kcl, versions, "TRIM_HORIZON", attempts=1, sleep=lambda _s: None)
    writer.checkpoint("10", T + 3)
    assert kcl.held == "10"
    # The lease table is throttled: every later checkpoint fails, each after its pair is stored.
    for n in range(11, 11 + 2 * KEEP):
        kcl.errors = ["ThrottlingException"]
        with pytest.raises(TransientError):
            writer.checkpoint(str(n), T + n)
    assert kcl.held == "10"
    # A restart from the KCL's checkpoint finds its own pair.
    again = store(ddb_client, name)
    again.load()
    found = again.at("10")
    assert found is not None and found.exact, f"pair of the KCL's checkpoint lost: {again.entries}"
    assert found.last_version == T + 3


def test_a_processor_that_lost_its_lease_cannot_overwrite_the_new_owners_pairs(
    ddb_client: Any, unique_name: Any
) -> None:
    name = unique_name("leases")
    ensure_lease_table(ddb_client, name)
    old = store(ddb_client, name)
    old.load()
    old.record("10", T + 1)
    # The KCL gives the shard to another processor, which starts from the KCL's checkpoint.
    new = store(ddb_client, name)
    new.load()
    new.record("20", T + 9)
    with pytest.raises(LeaseLost):
        old.record("15", T + 2)
    fresh = store(ddb_client, name)
    fresh.load()
    assert [e.sequence for e in fresh.entries] == ["10", "20"]
    found = fresh.at("20")
    assert found is not None and found.last_version == T + 9


def test_a_child_starts_from_its_parents_shard_end_not_an_earlier_triple_of_equal_version(
    ddb_client: Any, unique_name: Any
) -> None:
    """The shard's newest version stays put while later records of earlier milliseconds
    change the item memory (found by the ordering contract: a child picked the first triple
    of the parent's top version, whose memory lacked the item, and tied its next change)."""
    name = unique_name("leases")
    ensure_lease_table(ddb_client, name)
    versions = store(ddb_client, name)
    versions.load()
    versions.record("1001", T + 1000, b"memory-after-b")
    versions.confirm("1001")
    versions.record("1004", T + 1000, b"memory-after-a")
    versions.confirm("1004")
    versions.record("SHARD_END", T + 1000, b"memory-at-end")
    found = newest_versions(ddb_client, name, ARN, SHARD)
    assert found is not None
    assert (found.last_version, found.exact, found.item_versions) == (
        T + 1000,
        True,
        b"memory-at-end",
    )
