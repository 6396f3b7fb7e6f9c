"""The versions that go with the KCL's checkpoints, kept in the bridge's lease table.

The KCL stores a checkpoint as a sequence number only, but a restart must version the
records after it exactly as before (KinesisVersioner's `last`, docs/design.md, section 5). So
before every KCL checkpoint the shard's `last` for that sequence number is written here, one
item per shard: `leaseKey = kcl-versions#<Kinesis stream ARN>#<shard>`, `entries` = the newest
(sequence, last) pairs. Several are kept because the two writes are not atomic: a crash
after this write and before the KCL's leaves the KCL at the previous sequence, which is then
still here. At shard end the pair is (SHARD_END, last): what a child shard continues from.

The item has no `shardId`/`streamArn` attributes on purpose: the bridge's own reader and
`status` read items with those as their shard leases.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from connectors.dynamodb.aws import translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

VERSIONS_PREFIX = "kcl-versions#"
KIND = "kcl-versions"
KEEP = 8  # pairs kept per shard: the current checkpoint and a few before it


def versions_key(stream_arn: str, shard_id: str) -> str:
    return f"{VERSIONS_PREFIX}{stream_arn}#{shard_id}"


@dataclass(frozen=True, slots=True)
class Found:
    """What is known of the version at a KCL checkpoint."""

    last_version: int
    exact: bool  # False: the checkpoint's own pair is gone, `last_version` is the best below


def _as_int(sequence: str) -> int | None:
    return int(sequence) if sequence.isdigit() else None


class KclVersions:
    """The (sequence, last version) pairs of one Kinesis shard, newest last."""

    def __init__(
        self, ddb: DynamoDBClient, lease_table: str, table: str, stream_arn: str, shard_id: str
    ) -> None:
        self.ddb = ddb
        self.lease_table = lease_table
        self.table = table
        self.stream_arn = stream_arn
        self.shard_id = shard_id
        self.key = versions_key(stream_arn, shard_id)
        self.entries: list[tuple[str, int]] = []

    def load(self) -> list[tuple[str, int]]:
        self.entries = read_entries(self.ddb, self.lease_table, self.key)
        return self.entries

    def at(self, checkpoint: str) -> Found | None:
        """The version recorded for `checkpoint` (a sequence number or SHARD_END).

        When the exact pair is missing (written by a processor that lost its lease, or the
        item was deleted), the newest pair at or before `checkpoint` is the safe choice: a
        lower `last` only changes how ties inside one millisecond are broken, never makes a
        version go below an earlier change of the same tick (KinesisVersioner).
        """
        for sequence, version in reversed(self.entries):
            if sequence == checkpoint:
                return Found(version, True)
        wanted = _as_int(checkpoint)
        if wanted is None:
            return None
        below = [v for s, v in self.entries if (n := _as_int(s)) is not None and n <= wanted]
        return Found(max(below), False) if below else None

    def record(self, sequence: str, last_version: int) -> None:
        """Store `last_version` for `sequence`, before the KCL is asked to checkpoint it."""
        entries = [e for e in self.entries if e[0] != sequence] + [(sequence, last_version)]
        entries = entries[-KEEP:]
        try:
            self.ddb.put_item(
                TableName=self.lease_table,
                Item={
                    "leaseKey": {"S": self.key},
                    "kind": {"S": KIND},
                    "tableName": {"S": self.table},
                    "kinesisStreamArn": {"S": self.stream_arn},
                    "kinesisShardId": {"S": self.shard_id},
                    "entries": {
                        "L": [{"M": {"s": {"S": s}, "v": {"N": str(v)}}} for s, v in entries]
                    },
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(
                exc, f"PutItem {self.lease_table} KCL versions of shard {self.shard_id}"
            ) from exc
        self.entries = entries


def read_entries(ddb: DynamoDBClient, lease_table: str, key: str) -> list[tuple[str, int]]:
    try:
        item: dict[str, Any] | None = ddb.get_item(
            TableName=lease_table, Key={"leaseKey": {"S": key}}, ConsistentRead=True
        ).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"GetItem {lease_table} {key}") from exc
    if item is None:
        return []
    return [(e["M"]["s"]["S"], int(e["M"]["v"]["N"])) for e in item.get("entries", {}).get("L", [])]


def newest_version(
    ddb: DynamoDBClient, lease_table: str, stream_arn: str, shard_id: str
) -> int | None:
    """The last version recorded for a shard (its SHARD_END pair once it ended)."""
    entries = read_entries(ddb, lease_table, versions_key(stream_arn, shard_id))
    return max(v for _, v in entries) if entries else None
