"""Helpers for the Kinesis-transport tests: a moto Kinesis data stream, putting DynamoDB-
shaped change records on it (tests/kinesis_records.py), and settings / a bridge.toml for
`[stream] transport = "kinesis"`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import boto3

from bridge.settings import Settings, StreamSettings
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


def kinesis_settings(
    endpoint: str, bootstrap: str, tables: list[str], lease_table: str, stream_name: str, **kw: Any
) -> Settings:
    settings = stream_settings(endpoint, bootstrap, tables, lease_table, **kw)
    stream: StreamSettings = settings.stream.model_copy(
        update={"transport": "kinesis", "stream_name": stream_name}
    )
    return settings.model_copy(update={"stream": stream})


def write_kinesis_config(
    path: Any, table: str, lease_table: str, stream_name: str, extra: str = ""
) -> Any:
    """A bridge.toml for `ddb-bridge stream` on the Kinesis transport (endpoints: cli_env)."""
    path.write_text(
        '[aws]\nregion = "us-east-1"\n\n'
        "[kafka]\npartitions = 3\nreplication_factor = 1\nlinger_ms = 5\n\n"
        f'[[tables]]\nname = "{table}"\nkinesis_stream = "{stream_name}"\n\n'
        f'[stream]\ntransport = "kinesis"\nlease_table = "{lease_table}"\n'
        "poll_interval_ms = 50\nidle_poll_max_ms = 200\nlease_duration_ms = 2000\n"
        "shard_sync_interval_s = 1\n" + extra,
        encoding="utf-8",
    )
    return path
