"""Shard leases in a DynamoDB table, with the KCL's attribute names and fencing.

One item per shard: `leaseKey = "<stream ARN>#<shard id>"` (the ARN keeps a re-enabled stream,
which has a new ARN, apart from the old one; `capture#...` items share the table), plus
`leaseOwner`, `leaseCounter`, `checkpoint` (a sequence number or `TRIM_HORIZON` / `SHARD_END`;
`LATEST` only in leases written by earlier versions, read as `TRIM_HORIZON`),
`checkpointSubSequenceNumber`, `ownerSwitchesSinceCheckpoint`, `parentShardId` (a string set),
and ours: `lastVersion` (bridge.model.versioning), `itemVersions` (the Kinesis versioner's per-item
memory at the checkpoint, packed: bridge.model.item_memory), `streamArn`, `shardId`, `tableName`,
`dataLoss`.

Leases follow the one discipline of `connectors.dynamodb.leases` (shared with the back-fill's
part claims): every holder write is fenced on `leaseOwner` and `leaseCounter` and bumps the
counter, expiry is judged on the observer's own clock, and a holder stops before any other
worker can see its lease expire. This module adds what is the stream's own: checkpoints,
parents, SHARD_END, the last version, and balancing leases across workers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bridge.model.errors import PermanentError
from bridge.model.item_memory import child_start
from connectors.dynamodb.aws import error_code, translate
from connectors.dynamodb.leases import CONDITION_FAILED, ExpiryWatch, FencedLeases
from connectors.sources.stream.shards import SHARD_END, Shard

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)


def lease_key(stream_arn: str, shard_id: str) -> str:
    return f"{stream_arn}#{shard_id}"


@dataclass
class Lease:
    """One lease item as read, plus (for leases this worker holds) its local validity."""

    key: str
    stream_arn: str
    shard_id: str
    table: str
    owner: str | None
    counter: int
    checkpoint: str
    last_version: int | None
    parent_ids: tuple[str, ...]
    # The Kinesis versioner's per-item memory stored with the checkpoint (None: not stored).
    item_versions: bytes | None = None
    data_loss: str | None = None
    checkpoint_at_ms: int | None = None  # wall clock of the last checkpoint, for `status`
    # Monotonic time until which the holder may process; 0 for leases not held here.
    valid_until: float = 0.0
    # Monotonic time before which a stolen lease must not be processed (fencing wait).
    start_after: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END

    def held(self, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) < self.valid_until

    @property
    def token(self) -> int:
        """What a renewal changes, for `ExpiryWatch`."""
        return self.counter

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Lease:
        return cls(
            key=item["leaseKey"]["S"],
            stream_arn=item["streamArn"]["S"],
            shard_id=item["shardId"]["S"],
            table=item["tableName"]["S"],
            owner=item["leaseOwner"]["S"] if "leaseOwner" in item else None,
            counter=int(item["leaseCounter"]["N"]),
            checkpoint=item["checkpoint"]["S"],
            last_version=int(item["lastVersion"]["N"]) if "lastVersion" in item else None,
            parent_ids=tuple(sorted(item.get("parentShardId", {}).get("SS", []))),
            item_versions=bytes(item["itemVersions"]["B"]) if "itemVersions" in item else None,
            data_loss=item["dataLoss"]["S"] if "dataLoss" in item else None,
            checkpoint_at_ms=int(item["checkpointAtMs"]["N"]) if "checkpointAtMs" in item else None,
        )


class LeaseTable:
    """Reads and conditional writes on the lease table for one worker."""

    def __init__(
        self,
        ddb: DynamoDBClient,
        table_name: str,
        worker_id: str,
        lease_duration_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ddb = ddb
        self.name = table_name
        self.worker_id = worker_id
        self.lease_duration_s = lease_duration_s
        self.clock = clock
        # One attempt per write: the coordinator and the checkpointer retry in their loops.
        self.fenced = FencedLeases(ddb, table_name, worker_id, lease_duration_s, clock)

    # -- reading ----------------------------------------------------------------------------

    def list(self, stream_arns: set[str]) -> list[Lease]:
        """Every shard lease of these streams (a consistent scan; capture items are skipped)."""
        leases: list[Lease] = []
        kwargs: dict[str, Any] = {"TableName": self.name, "ConsistentRead": True}
        while True:
            try:
                page = self.ddb.scan(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, f"Scan {self.name}") from exc
            for item in page.get("Items", []):
                if "shardId" in item and item.get("streamArn", {}).get("S") in stream_arns:
                    leases.append(Lease.from_item(item))
            if "LastEvaluatedKey" not in page:
                return leases
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get(self, stream_arn: str, shard_id: str) -> Lease | None:
        try:
            item = self.ddb.get_item(
                TableName=self.name,
                Key={"leaseKey": {"S": lease_key(stream_arn, shard_id)}},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"GetItem {self.name}") from exc
        return Lease.from_item(item) if item else None

    # -- writing ----------------------------------------------------------------------------

    def create(self, table: str, stream_arn: str, shard: Shard, checkpoint: str) -> bool:
        """Create the lease of a newly discovered shard; False if it already exists."""
        item: dict[str, Any] = {
            "leaseKey": {"S": lease_key(stream_arn, shard.shard_id)},
            "streamArn": {"S": stream_arn},
            "shardId": {"S": shard.shard_id},
            "tableName": {"S": table},
            "leaseCounter": {"N": "0"},
            "checkpoint": {"S": checkpoint},
            "checkpointSubSequenceNumber": {"N": "0"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
        }
        if shard.parent_ids:
            item["parentShardId"] = {"SS": list(shard.parent_ids)}
        try:
            self.ddb.put_item(
                TableName=self.name,
                Item=item,
                ConditionExpression="attribute_not_exists(leaseKey)",
            )
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise translate(exc, f"PutItem {self.name} lease") from exc
        log.info("created lease", extra={"lease": item["leaseKey"]["S"], "checkpoint": checkpoint})
        return True

    def take(self, lease: Lease, wait_for_fence: bool) -> None:
        """Take a free, expired or stolen lease; raises LeaseLost if someone was faster.

        `wait_for_fence`: the previous owner may still be processing (a steal, not an
        expiry), so processing must wait one lease duration, by which time it has stopped.
        """
        sent = self.clock()
        self.fenced.take(
            lease,
            "ownerSwitchesSinceCheckpoint = "
            "if_not_exists(ownerSwitchesSinceCheckpoint, :zero) + :one",
            {":zero": {"N": "0"}, ":one": {"N": "1"}},
        )
        lease.start_after = sent + self.lease_duration_s if wait_for_fence else sent

    def renew(self, lease: Lease) -> None:
        self.fenced.renew(lease)

    def checkpoint(
        self,
        lease: Lease,
        checkpoint: str,
        last_version: int | None,
        item_versions: bytes = b"",
    ) -> None:
        """Record the position (and its last version and item memory) all of whose records
        Kafka acknowledged."""
        values: dict[str, Any] = {
            ":cp": {"S": checkpoint},
            ":zero": {"N": "0"},
            ":at": {"N": str(int(time.time() * 1000))},
        }
        set_expr = "checkpoint = :cp, ownerSwitchesSinceCheckpoint = :zero, checkpointAtMs = :at"
        if last_version is not None:
            set_expr += ", lastVersion = :v"
            values[":v"] = {"N": str(last_version)}
        remove = ""
        if item_versions:
            set_expr += ", itemVersions = :iv"
            values[":iv"] = {"B": item_versions}
        else:
            remove = "itemVersions"  # one of another position would be wrong here
        self.fenced.write_held(lease, set_expr, values, remove=remove)
        lease.checkpoint = checkpoint
        lease.last_version = last_version
        lease.item_versions = item_versions or None

    def mark_data_loss(self, lease: Lease, message: str) -> None:
        """Stop the shard for every worker until an operator clears `dataLoss`."""
        self.fenced.end(lease, "dataLoss = :m", {":m": {"S": message}})
        lease.data_loss = message

    def delete_finished(self, lease: Lease) -> bool:
        """Delete a SHARD_END lease nobody needs any more; False if it changed meanwhile."""
        try:
            self.ddb.delete_item(
                TableName=self.name,
                Key={"leaseKey": {"S": lease.key}},
                ConditionExpression="checkpoint = :end AND leaseCounter = :counter",
                ExpressionAttributeValues={
                    ":end": {"S": SHARD_END},
                    ":counter": {"N": str(lease.counter)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise translate(exc, f"DeleteItem {self.name} lease {lease.key}") from exc
        log.info("deleted finished lease", extra={"lease": lease.key})
        return True

    def release(self, lease: Lease) -> None:
        """Give a lease up after a clean stop, so another worker can take it at once."""
        self.fenced.end(lease)


def starting_versions(lease: Lease, parents: Iterable[Lease | None]) -> tuple[int, bytes | None]:
    """The last version and item memory a shard's processing starts from: those stored with
    its checkpoint; for a fresh child shard, its parents' (the highest last version, their
    memories merged, so a change in the child is ordered after its item's in a parent)."""
    if lease.last_version is not None:
        return lease.last_version, lease.item_versions
    done = [(p.key, p.last_version, p.item_versions) for p in parents if p is not None]
    try:
        return child_start((last, memory) for _k, last, memory in done if last is not None)
    except ValueError as exc:
        keys = ", ".join(k for k, _l, _m in done)
        raise PermanentError(f"leases {keys}: the stored item versions are damaged: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Claim:
    lease: Lease
    steal: bool  # the owner is alive: wait out the fence before processing


def ready(lease: Lease, by_key: dict[str, Lease]) -> bool:
    """Processable at all: not finished, no data-loss stop, every known parent done."""
    if lease.finished or lease.data_loss is not None:
        return False
    for parent in lease.parent_ids:
        parent_lease = by_key.get(lease_key(lease.stream_arn, parent))
        # A parent with no lease is older than the capture (or trimmed): nothing to wait for.
        # A parent stopped by data loss (continue_on_data_loss) is already recorded as a gap;
        # holding its children back too would silently stall their part of the key space.
        if (
            parent_lease is not None
            and not parent_lease.finished
            and parent_lease.data_loss is None
        ):
            return False
    return True


def obsolete(leases: list[Lease], stream_arn: str, in_stream: set[str]) -> list[Lease]:
    """Finished leases of `stream_arn` safe to delete (the KCL's lease clean-up).

    A finished shard's lease is kept while DescribeStream still lists the shard (it would be
    re-created at TRIM_HORIZON otherwise) and until every child has checkpointed a version of
    its own (a child starting later reads its first version from this lease).
    """
    mine = [lease for lease in leases if lease.stream_arn == stream_arn]
    out = []
    for lease in mine:
        if not lease.finished or lease.shard_id in in_stream:
            continue
        children = [c for c in mine if lease.shard_id in c.parent_ids]
        if all(child.last_version is not None for child in children):
            out.append(lease)
    return out


def plan_claims(
    leases: list[Lease], held: set[str], worker_id: str, expiry: ExpiryWatch
) -> list[Claim]:
    """Which leases to take now, balancing ready shards evenly across the live workers.

    The KCL's rule: target = ceil(ready leases / live workers). Below target, take expired or
    free leases first; if there are none, steal one lease from the most loaded worker, and
    only if it holds more than the target (so two workers never trade a lease back and forth).
    """
    by_key = {lease.key: lease for lease in leases}
    candidates = [lease for lease in leases if ready(lease, by_key)]
    if not candidates:
        return []
    counts: dict[str, int] = {}
    for lease in candidates:
        if lease.key in held or lease.owner is None or expiry.expired(lease):
            continue
        if lease.owner != worker_id:  # our own id on a lease we do not hold: a dead incarnation
            counts[lease.owner] = counts.get(lease.owner, 0) + 1
    mine = sum(1 for lease in candidates if lease.key in held)
    workers = len(counts) + 1
    target = -(-len(candidates) // workers)
    if mine >= target:
        return []
    free = [lease for lease in candidates if lease.key not in held and expiry.expired(lease)]
    # Unowned leases first (no wait), then expired ones; oldest shards first within each.
    free.sort(key=lambda lease: (lease.owner is not None, lease.shard_id))
    claims = [Claim(lease, steal=False) for lease in free[: target - mine]]
    if claims:
        return claims
    if not counts:
        return []
    victim, load = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    if load <= target:
        return []
    theirs = sorted(
        (lease for lease in candidates if lease.owner == victim and not expiry.expired(lease)),
        key=lambda lease: lease.shard_id,
    )
    return [Claim(theirs[-1], steal=True)]
