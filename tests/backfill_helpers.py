"""Settings and read-back helpers shared by the back-fill tests."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bridge.codec.avro import EventCodec
from bridge.model.event import ChangeEvent
from bridge.runtime.settings import (
    AwsSettings,
    BackfillSettings,
    KafkaSettings,
    Settings,
    StreamSettings,
    TableSettings,
)
from tests.stream_helpers import create_stream_table


def backfill_settings(
    endpoint: str,
    bootstrap: str,
    lease_table: str,
    table: str,
    *,
    declared_keys: bool = True,
    lease_ms: int = 3000,
    **backfill: Any,
) -> Settings:
    tables = []
    if declared_keys:
        tables.append(
            TableSettings(
                name=table,
                hash_key="pk",
                range_key="sk",
                range_key_type="N",
                ttl_attribute="expires",
            )
        )
    return Settings(
        aws=AwsSettings(endpoint_url=endpoint),
        kafka=KafkaSettings(bootstrap_servers=bootstrap, partitions=4, replication_factor=1),
        stream=StreamSettings(lease_table=lease_table, lease_duration_ms=lease_ms),
        backfill=BackfillSettings(**backfill),
        tables=tables,
    )


def decode_all(messages: list[Any]) -> list[tuple[bytes, ChangeEvent]]:
    codec = EventCodec()
    return [(m.key(), codec.decode(m.value())) for m in messages]


def duplicates(keys: list[bytes]) -> dict[bytes, int]:
    return {k: n for k, n in Counter(keys).items() if n > 1}


def say_nothing(_text: str) -> None:
    """A `say` callback for run_backfill that discards operator messages."""


def create_table(ddb: Any, name: str, stream: bool = True) -> None:
    """A pk (S) / sk (N) table, with a NEW_AND_OLD_IMAGES stream unless `stream` is False."""
    create_stream_table(ddb, name, "NEW_AND_OLD_IMAGES" if stream else None)


def write_items(
    ddb_factory: Any, table: str, items: list[dict[str, Any]], threads: int = 4
) -> None:
    """BatchWriteItem in 25-item batches from a few threads (boto3 form items)."""
    from concurrent.futures import ThreadPoolExecutor

    batches = [items[i : i + 25] for i in range(0, len(items), 25)]

    def write(chunk: list[list[dict[str, Any]]]) -> None:
        ddb = ddb_factory()
        for batch in chunk:
            request = {table: [{"PutRequest": {"Item": it}} for it in batch]}
            while request:
                resp = ddb.batch_write_item(RequestItems=request)
                request = resp.get("UnprocessedItems") or {}

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, [batches[n::threads] for n in range(threads)]))
