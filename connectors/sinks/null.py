"""NullSink: accepts every batch and keeps nothing.

For benchmarks (the apply pipeline's own cost, without a database) and for trying the
pipeline. Delivery guarantee: none — everything written is discarded; `read_items` reports
every key missing and `scan_keys` yields nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bridge.model.attrs import Item
from bridge.model.event import ChangeEvent
from bridge.ports.sink import SinkCapabilities, TableSpec
from bridge.runtime.settings import NullTarget


class NullSink:
    # It reads no image: text ones spare apply the parsing (bridge/codec/image_text.py).
    capabilities = SinkCapabilities(tombstones=False, image_text=True)

    def __init__(self, settings: NullTarget | None = None) -> None:
        self.settings = settings
        self.tables: dict[str, TableSpec] = {}
        self.written = 0
        self.batches = 0

    def open(self, tables: Sequence[TableSpec], create_schema: bool = False) -> None:
        self.tables = {t.source: t for t in tables}

    def write_batch(self, events: Sequence[ChangeEvent]) -> None:
        self.written += len(events)
        self.batches += 1

    def read_items(self, table: str, keys: Sequence[Item]) -> list[Item | None]:
        return [None] * len(keys)

    def scan_keys(self, table: str) -> Iterator[Item]:
        return iter(())

    def close(self) -> None:
        self.tables = {}
