"""Helpers for the Kinesis-transport tests: a moto Kinesis data stream, putting DynamoDB-
shaped change records on it (tests/kinesis_records.py), a scripted Kinesis client whose child
shards hold records (`ScriptedKinesis`), and settings / a bridge.toml for
`[stream] transport = "kinesis"`."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3

from bridge.runtime.config_file import write_config
from bridge.runtime.settings import Settings, StreamSettings
from tests.kinesis_records import MICROSECOND, kinesis_data
from tests.stream_helpers import stream_settings


def kinesis_client(endpoint: str) -> Any:
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1")


def create_kinesis_stream(kinesis: Any, name: str, shards: int = 1) -> str:
    """A provisioned data stream of `shards` shards; returns its ARN once it is ACTIVE."""
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.monotonic() + 30
    while True:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return str(summary["StreamARN"])
        if time.monotonic() > deadline:
            raise AssertionError(f"Kinesis stream {name} never became ACTIVE")
        time.sleep(0.2)


@dataclass(frozen=True)
class Change:
    """One change of one item, as the test means it: what reaches Kafka must match."""

    pk: str
    sk: int
    created_us: int
    event: str = "MODIFY"  # INSERT | MODIFY | REMOVE
    value: str = ""
    precision: str = MICROSECOND
    event_id: str = ""

    @property
    def keys(self) -> dict[str, Any]:
        return {"pk": {"S": self.pk}, "sk": {"N": str(self.sk)}}

    @property
    def image(self) -> dict[str, Any]:
        return {**self.keys, "v": {"S": self.value}}

    def data(self, table: str) -> bytes:
        new = None if self.event == "REMOVE" else self.image
        return kinesis_data(
            self.event,
            self.keys,
            new_image=new,
            old_image=self.image if self.event != "INSERT" else None,
            table=table,
            created_us=self.created_us,
            precision=self.precision,
            event_id=self.event_id or None,
        )


def change(pk: str, created_us: int, value: str, **kwargs: Any) -> Change:
    return Change(
        pk=pk,
        sk=kwargs.pop("sk", 1),
        created_us=created_us,
        value=value,
        event_id=kwargs.pop("event_id", uuid.uuid4().hex),
        **kwargs,
    )


def put_changes(kinesis: Any, stream: str, table: str, changes: Iterable[Change]) -> list[str]:
    """Put each change on the stream (partition key: the item's key, as DynamoDB does);
    returns the sequence numbers."""
    return [
        str(
            kinesis.put_record(
                StreamName=stream, Data=c.data(table), PartitionKey=f"{c.pk}|{c.sk}"
            )["SequenceNumber"]
        )
        for c in changes
    ]


SCRIPTED_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/scripted"


@dataclass
class ScriptedKinesisShard:
    shard_id: str
    parents: tuple[str, ...] = ()
    records: list[tuple[int, bytes]] = field(default_factory=list)  # (sequence, Data)
    closed: bool = False
    children: list[str] = field(default_factory=list)


class ScriptedKinesis:
    """ListShards (two per page), GetShardIterator, GetRecords (null iterator + ChildShards
    at a closed shard's end), DescribeStreamSummary."""

    def __init__(self, table: str, arn: str = SCRIPTED_ARN) -> None:
        self.table = table
        self.arn = arn
        self.shards: dict[str, ScriptedKinesisShard] = {}
        self.lock = threading.Lock()
        self.seq = 0

    def add(self, shard_id: str, *parents: str) -> None:
        self.shards[shard_id] = ScriptedKinesisShard(shard_id, tuple(parents))
        for parent in parents:
            self.shards[parent].children.append(shard_id)

    def put(self, shard_id: str, c: Change) -> str:
        with self.lock:
            self.seq += 1
            self.shards[shard_id].records.append((self.seq, c.data(self.table)))
            return str(self.seq)

    def close(self, shard_id: str) -> None:
        self.shards[shard_id].closed = True

    def describe_stream_summary(self, **_: Any) -> dict[str, Any]:
        return {
            "StreamDescriptionSummary": {
                "StreamARN": self.arn,
                "StreamCreationTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
                "RetentionPeriodHours": 168,
            }
        }

    def _describe(self, shard: ScriptedKinesisShard) -> dict[str, Any]:
        seqs = [s for s, _ in shard.records]
        rng: dict[str, str] = {"StartingSequenceNumber": str(seqs[0] if seqs else 0)}
        if shard.closed:
            rng["EndingSequenceNumber"] = str(seqs[-1] if seqs else 0)
        out: dict[str, Any] = {"ShardId": shard.shard_id, "SequenceNumberRange": rng}
        if shard.parents:
            out["ParentShardId"] = shard.parents[0]
        if len(shard.parents) > 1:
            out["AdjacentParentShardId"] = shard.parents[1]
        return out

    def list_shards(self, **kw: Any) -> dict[str, Any]:
        with self.lock:
            ids = sorted(self.shards)
            start = int(kw.get("NextToken", "0"))
            page = ids[start : start + 2]
            out: dict[str, Any] = {"Shards": [self._describe(self.shards[i]) for i in page]}
            if start + 2 < len(ids):
                out["NextToken"] = str(start + 2)
            return out

    def get_shard_iterator(self, **kw: Any) -> dict[str, Any]:
        kind = kw["ShardIteratorType"]
        after = int(kw["StartingSequenceNumber"]) if kind == "AFTER_SEQUENCE_NUMBER" else 0
        return {"ShardIterator": f"{kw['ShardId']}|{after}"}

    def get_records(self, **kw: Any) -> dict[str, Any]:
        shard_id, after_text = kw["ShardIterator"].split("|")
        after = int(after_text)
        with self.lock:
            shard = self.shards[shard_id]
            page = [(s, d) for s, d in shard.records if s > after][: kw["Limit"]]
            records = [{"SequenceNumber": str(s), "Data": d, "PartitionKey": "p"} for s, d in page]
            last = page[-1][0] if page else after
            if shard.closed and not page:
                children = [
                    {"ShardId": c, "ParentShards": list(self.shards[c].parents)}
                    for c in shard.children
                ]
                return {"Records": [], "NextShardIterator": None, "ChildShards": children}
            return {"Records": records, "NextShardIterator": f"{shard_id}|{last}"}


def kinesis_settings(
    endpoint: str, bootstrap: str, tables: list[str], lease_table: str, stream_name: str, **kw: Any
) -> Settings:
    settings = stream_settings(endpoint, bootstrap, tables, lease_table, **kw)
    stream: StreamSettings = settings.stream.model_copy(
        update={"transport": "kinesis", "stream_name": stream_name}
    )
    return settings.model_copy(update={"stream": stream})


def write_kinesis_config(path: Any, table: str, lease_table: str, stream_name: str) -> Any:
    """A bridge.toml for `ddb-bridge stream` on the Kinesis transport (endpoints: cli_env)."""
    return write_config(
        path,
        aws={"region": "us-east-1"},
        kafka={"partitions": 3, "replication_factor": 1, "linger_ms": 5},
        tables=[{"name": table, "kinesis_stream": stream_name}],
        stream={
            "transport": "kinesis",
            "lease_table": lease_table,
            "poll_interval_ms": 50,
            "idle_poll_max_ms": 200,
            "lease_duration_ms": 2000,
            "shard_sync_interval_s": 1,
        },
    )
