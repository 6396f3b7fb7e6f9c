"""The versions that go with the KCL's checkpoints, kept in the bridge's lease table.

The KCL stores a checkpoint as a sequence number only, but a restart must version the
records after it exactly as before (KinesisVersioner's `last` and per-item memory,
docs/design.md, section 5). So before every KCL checkpoint the shard's state for that
sequence number is written here, one item per shard: `leaseKey = kcl-versions#<Kinesis
stream ARN>#<shard>`, `entries` = (sequence, last, packed item memory) triples. At shard end
the triple is (SHARD_END, ...): what a child shard continues from.

Which triples are kept: the two writes (this one, then the KCL's) are not atomic, and a KCL
checkpoint may fail (throttled lease table, lost lease) after its triple is written. So the
triple of the checkpoint the KCL is known to hold (the one it started this processor from,
or the last one it accepted) is never dropped; older ones go at the next write, and of the
triples written since, the newest `KEEP` stay (one of them may be the KCL's if it applied a
checkpoint whose answer was lost).

Fenced like every lease write of the project (connectors.dynamodb.leases): `load` takes the
item for this processor (a new `leaseOwner`, the counter bumped), and every write after is
conditional on owner and counter, so a processor whose shard the KCL gave to another can
never overwrite the new owner's triples (`LeaseLost`). The item has no `shardId`/`streamArn`
attributes on purpose: the bridge's own reader and `status` read items with those as their
shard leases.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from connectors.dynamodb.aws import translate
from connectors.dynamodb.leases import FencedLeases, HeldLease

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

VERSIONS_PREFIX = "kcl-versions#"
KIND = "kcl-versions"
KEEP = 8  # triples written since the KCL's known checkpoint that are kept


def versions_key(stream_arn: str, shard_id: str) -> str:
    return f"{VERSIONS_PREFIX}{stream_arn}#{shard_id}"


@dataclass(frozen=True, slots=True)
class Entry:
    sequence: str
    last_version: int
    item_versions: bytes | None  # None: written before item memories existed


@dataclass(frozen=True, slots=True)
class Found:
    """What is known of the versions at a KCL checkpoint."""

    last_version: int
    exact: bool  # False: the checkpoint's own triple is gone, this is the best below it
    item_versions: bytes | None = None


def _as_int(sequence: str) -> int | None:
    return int(sequence) if sequence.isdigit() else None


class KclVersions:
    """The (sequence, last version, item memory) triples of one Kinesis shard, newest last."""

    def __init__(
        self, ddb: DynamoDBClient, lease_table: str, table: str, stream_arn: str, shard_id: str
    ) -> None:
        self.ddb = ddb
        self.lease_table = lease_table
        self.table = table
        self.stream_arn = stream_arn
        self.shard_id = shard_id
        self.key = versions_key(stream_arn, shard_id)
        self.entries: list[Entry] = []
        # The sequence the KCL is known to hold a checkpoint at (its triple is never dropped).
        self.held: str | None = None
        self.lease = HeldLease(self.key, None, 0)
        # No lapse here: the KCL times the lease; the fence only keeps a stale writer out.
        self.fenced = FencedLeases(
            ddb, lease_table, f"kcl-{uuid.uuid4().hex}", 0.0, stop_at_lapse=False
        )

    def load(self, kcl_checkpoint: str | None = None) -> list[Entry]:
        """Read the triples and take the item for this processor, which the KCL started at
        `kcl_checkpoint`; LeaseLost if another processor took it meanwhile."""
        item = read_item(self.ddb, self.lease_table, self.key)
        self.entries = entries_of(item)
        self.held = kcl_checkpoint
        self.lease.owner = item["leaseOwner"]["S"] if item and "leaseOwner" in item else None
        self.lease.counter = (
            int(item["leaseCounter"]["N"]) if item and "leaseCounter" in item else 0
        )
        self.fenced.take(self.lease, *self._attributes())
        return self.entries

    def at(self, checkpoint: str) -> Found | None:
        """The versions recorded for `checkpoint` (a sequence number or SHARD_END).

        When the exact triple is missing (the item was deleted, or written by a version that
        dropped it), the newest at or before `checkpoint` is the best choice left: its item
        memory is older than the checkpoint's, so a change in the same millisecond as an
        earlier one of its item may tie with it (a warning is logged).
        """
        for entry in reversed(self.entries):
            if entry.sequence == checkpoint:
                return Found(entry.last_version, True, entry.item_versions)
        wanted = _as_int(checkpoint)
        if wanted is None:
            return None
        below = [e for e in self.entries if (n := _as_int(e.sequence)) is not None and n <= wanted]
        if not below:
            return None
        best = max(below, key=lambda e: e.last_version)
        return Found(best.last_version, False, best.item_versions)

    def record(self, sequence: str, last_version: int, item_versions: bytes = b"") -> None:
        """Store the versions for `sequence`, before the KCL is asked to checkpoint it."""
        entries = [e for e in self.entries if e.sequence != sequence]
        held = next((i for i, e in enumerate(entries) if e.sequence == self.held), None)
        kept = [] if held is None else [entries[held]]
        since = entries if held is None else entries[held + 1 :]
        entries = kept + since[-(KEEP - 1) :] + [Entry(sequence, last_version, item_versions)]
        set_expr, values = self._attributes()
        # checkpointAtMs: when, for `status` (the checkpoint's age).
        set_expr += ", entries = :entries, checkpointAtMs = :at"
        values[":entries"] = {"L": [_entry_value(e) for e in entries]}
        values[":at"] = {"N": str(int(time.time() * 1000))}
        with self.lease.lock:
            self.fenced.write(self.lease, self.fenced.owner, set_expr, values)
        self.entries = entries

    def confirm(self, sequence: str) -> None:
        """The KCL accepted a checkpoint at `sequence`: older triples may go at the next write."""
        self.held = sequence

    def _attributes(self) -> tuple[str, dict[str, Any]]:
        return (
            "kind = :kind, tableName = :table, kinesisStreamArn = :arn, kinesisShardId = :shard",
            {
                ":kind": {"S": KIND},
                ":table": {"S": self.table},
                ":arn": {"S": self.stream_arn},
                ":shard": {"S": self.shard_id},
            },
        )


def _entry_value(entry: Entry) -> dict[str, Any]:
    fields: dict[str, Any] = {"s": {"S": entry.sequence}, "v": {"N": str(entry.last_version)}}
    if entry.item_versions:
        fields["m"] = {"B": entry.item_versions}
    return {"M": fields}


def read_item(ddb: DynamoDBClient, lease_table: str, key: str) -> dict[str, Any] | None:
    try:
        item: dict[str, Any] | None = ddb.get_item(
            TableName=lease_table, Key={"leaseKey": {"S": key}}, ConsistentRead=True
        ).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"GetItem {lease_table} {key}") from exc
    return item


def entries_of(item: dict[str, Any] | None) -> list[Entry]:
    if item is None:
        return []
    out = []
    for value in item.get("entries", {}).get("L", []):
        fields = value["M"]
        memory = bytes(fields["m"]["B"]) if "m" in fields else None
        out.append(Entry(fields["s"]["S"], int(fields["v"]["N"]), memory))
    return out


def newest_versions(
    ddb: DynamoDBClient, lease_table: str, stream_arn: str, shard_id: str
) -> Found | None:
    """The versions recorded at a shard's newest triple (its SHARD_END once it ended)."""
    entries = entries_of(read_item(ddb, lease_table, versions_key(stream_arn, shard_id)))
    if not entries:
        return None
    # By position along the shard, not by last version: the shard's newest version can stay
    # the same over many records (an earlier record of a later millisecond), while the item
    # memory keeps changing, and a child must start from the memory at its parent's end.
    ended = [e for e in entries if e.sequence == "SHARD_END"]
    if ended:
        newest = ended[-1]
    else:
        newest = max(entries, key=lambda e: (_as_int(e.sequence) or -1, e.last_version))
    return Found(newest.last_version, newest.sequence == "SHARD_END", newest.item_versions)
