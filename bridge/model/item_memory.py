"""What a Kinesis shard's versioner remembers of each item, bounded, and stored with checkpoints.

`KinesisVersioner` (versioning.py) orders the changes of one item that share a tick of
ApproximateCreationDateTime by their order along the shard. For that it needs, per item, the
newest version it gave the item (and the eventID of that change, so a copy of it delivered
again after a restart is recognised). This module holds that memory:

- an entry per item: 8-byte digest of the item's key, its newest version, 8-byte digest of
  the eventID of the change at that version (24 bytes packed);
- bounded twice: entries not updated within `HORIZON_US` of change time behind the shard's
  newest version are dropped, and at most `LIMIT` entries are kept (the least recently
  updated go first);
- `floor`: the highest version of any dropped entry. An item without an entry has no
  version above `floor` (it was dropped, or never seen), which keeps the rule exact for
  every change stamped after `floor`'s tick (see `KinesisVersioner.next` for the rest).

The memory is deterministic from the records (no clock, no randomness), and `pack`/`unpack`
round-trip it exactly, entry order included, so a reader restarted from a checkpoint goes on
exactly as the first one did. `merge` is what a child shard starts from: its parents'.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

# A second of change time: far beyond how late Kinesis records have been seen to arrive,
# and at Kinesis' 1,000 records a second per shard never more than `LIMIT` items anyway.
HORIZON_US = 1_000_000
# Entries kept at most: 24 bytes each, so a checkpoint carries at most ~12 KB of them.
LIMIT = 512
_HEADER = struct.Struct(">Bq")  # format, floor
_ENTRY = struct.Struct(">8sq8s")  # item digest, newest version, eventID digest
_FORMAT = 1
NO_EVENT = bytes(8)


def digest(text: bytes) -> bytes:
    """8 bytes that stand for a key or an eventID (collisions: 1 in 2^64 per pair)."""
    return hashlib.blake2b(text, digest_size=8).digest()


class ItemMemory:
    """item digest -> (newest version, eventID digest), oldest update first; and `floor`."""

    __slots__ = ("entries", "floor", "horizon_us", "limit")

    def __init__(
        self,
        entries: dict[bytes, tuple[int, bytes]] | None = None,
        floor: int = 0,
        limit: int = LIMIT,
        horizon_us: int = HORIZON_US,
    ) -> None:
        self.entries: dict[bytes, tuple[int, bytes]] = entries if entries is not None else {}
        self.floor = floor
        self.limit = limit
        self.horizon_us = horizon_us

    def newest(self, item: bytes) -> tuple[int, bytes]:
        """(the item's newest version, or `floor` when it has no entry; its eventID digest)."""
        return self.entries.get(item, (self.floor, NO_EVENT))

    def note(self, item: bytes, version: int, event: bytes, shard_newest: int) -> None:
        """`item` got `version` for the change `event`; then drop what the bounds exclude."""
        entries = self.entries
        held = entries.pop(item, None)
        if held is not None and held[0] >= version:
            entries[item] = held  # an older change (late): the newest stays, now fresh
        else:
            entries[item] = (version, event)
        cutoff = shard_newest - self.horizon_us
        while entries:
            key = next(iter(entries))
            held_version = entries[key][0]
            if held_version >= cutoff and len(entries) <= self.limit:
                break
            del entries[key]
            if held_version > self.floor:
                self.floor = held_version

    def pack(self) -> bytes:
        parts = [_HEADER.pack(_FORMAT, self.floor)]
        parts.extend(_ENTRY.pack(k, v, e) for k, (v, e) in self.entries.items())
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes, where: str = "item versions") -> ItemMemory:
        if not data:
            return cls()
        if len(data) < _HEADER.size or (len(data) - _HEADER.size) % _ENTRY.size:
            raise ValueError(f"{where}: {len(data)} bytes is not a packed item memory")
        form, floor = _HEADER.unpack_from(data)
        if form != _FORMAT:
            raise ValueError(f"{where}: unknown item memory format {form}")
        entries = {k: (v, e) for k, v, e in _ENTRY.iter_unpack(memoryview(data)[_HEADER.size :])}
        return cls(entries, floor)

    @classmethod
    def merge(cls, memories: Iterable[ItemMemory]) -> ItemMemory:
        """The memory a child shard starts with: every parent's, the newest entry per item."""
        out = cls()
        for memory in memories:
            out.floor = max(out.floor, memory.floor)
            for key, entry in memory.entries.items():
                held = out.entries.get(key)
                if held is None or entry[0] > held[0]:
                    out.entries[key] = entry
        # Oldest update first, as `note` keeps them; then the bounds of one shard.
        out.entries = dict(sorted(out.entries.items(), key=lambda kv: (kv[1][0], kv[0])))
        while len(out.entries) > out.limit:
            key = next(iter(out.entries))
            out.floor = max(out.floor, out.entries.pop(key)[0])
        return out


def child_start(parents: Iterable[tuple[int, bytes | None]]) -> tuple[int, bytes]:
    """(last version, packed memory) a child shard starts from, given each finished parent's
    (last version, packed memory or None when it stored none). ValueError if one is damaged."""
    lasts, memories = [0], []
    for last, packed in parents:
        lasts.append(last)
        # A parent without a memory: any item of it may hold a version up to its last.
        memories.append(ItemMemory(floor=last) if packed is None else ItemMemory.unpack(packed))
    return max(lasts), ItemMemory.merge(memories).pack()


__all__ = ["HORIZON_US", "LIMIT", "NO_EVENT", "ItemMemory", "child_start", "digest"]
