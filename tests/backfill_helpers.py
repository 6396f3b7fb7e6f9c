"""Settings and read-back helpers shared by the back-fill tests."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bridge.avro_codec import EventCodec
from bridge.event import ChangeEvent
from bridge.settings import (
    AwsSettings,
    BackfillSettings,
    KafkaSettings,
    Settings,
    StreamSettings,
    TableSettings,
)


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
