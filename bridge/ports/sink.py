"""The sink protocol: what `apply` and `verify` need from a target database.

A sink holds one outside system (connectors/sinks/<name>.py). Contract (docs/design.md, section 11):
idempotent and order-independent — applying any events, any number of times, in any order,
leaves each row equal to the image of the highest version seen for its key; a REMOVE is a
tombstone with its version that no older write passes; a full image replaces the row.

Errors: `TransientError` means "retry the same batch later" (nothing committed is lost by
retrying, since writes are idempotent); `PermanentError` means the batch contains an event
the target will never accept — the worker then writes the batch one event at a time to
isolate the poison event(s) for the dead-letter topic; `TargetError` means the target
refuses every write whatever the event (read-only, access denied, a table gone) — never
dead-lettered: the worker waits (`retryable`) or stops.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from bridge.model.attrs import Item
from bridge.model.event import ChangeEvent

KeyType = Literal["S", "N", "B"]


@dataclass(frozen=True)
class TableSpec:
    """What a sink needs to know of one source table to create and address its target table."""

    source: str
    target: str
    hash_key: str
    hash_type: KeyType
    range_key: str | None = None
    range_type: KeyType | None = None
    # Non-key attributes with a declared typed column (CQL): attribute -> CQL type.
    columns: dict[str, str] = field(default_factory=dict)
    ttl_attribute: str | None = None

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)


@dataclass(frozen=True)
class SinkCapabilities:
    native_timestamps: bool = False  # last-write-wins done by the database (CQL USING TIMESTAMP)
    ttl: bool = False  # can expire rows by itself
    tombstones: bool = True  # keeps deleted rows with their version
    # Takes TextImageEvents from apply: images checked on their text and parsed only if
    # something reads them (docs/design.md, section 10). For a sink that stores the text
    # (bridge.codec.image_text.stored_text) or reads each image at most once.
    image_text: bool = False


class Sink(Protocol):
    capabilities: SinkCapabilities

    def open(self, tables: Sequence[TableSpec], create_schema: bool = False) -> None:
        """Connect; with `create_schema`, create missing tables (else fail if they are missing)."""

    def write_batch(self, events: Sequence[ChangeEvent]) -> None:
        """Apply events (any tables, any order, duplicates allowed). Returns when durable."""

    def read_items(self, table: str, keys: Sequence[Item]) -> list[Item | None]:
        """The live item for each key (None when missing or deleted), in order. For verify."""

    def scan_keys(self, table: str) -> Iterator[Item]:
        """The keys of every live row of the target table. For verify's reverse pass."""

    def close(self) -> None: ...
