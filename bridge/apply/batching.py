"""Coalescing a batch to the newest version per key: pure logic, no Kafka, no sink.

Why coalesce: a hot key updated many times inside one batch needs one write, not many; and
since every sink keeps the winner by `bridge.model.versioning.rank` (the higher version; a delete
wins a tie), dropping the losers of a key inside the batch cannot change the result — the
sink would discard them anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.model.event import ChangeEvent
from bridge.model.versioning import rank


def coalesce(events: Iterable[ChangeEvent]) -> list[ChangeEvent]:
    """The newest event per (table, key), in first-seen key order.

    The result is the same for any order of the input (duplicates included), so a batch
    assembled from shuffled partitions coalesces deterministically.
    """
    return [group[0] for group in newest_first(((e.table, e.key_bytes()), e) for e in events)]


def newest(keyed: Iterable[tuple[tuple[str, bytes], ChangeEvent]]) -> list[ChangeEvent]:
    """Each (table, key)'s winner, in first-seen key order: `[g[0] for g in newest_first(..)]`
    without building the groups (they are needed only when the target refuses a winner)."""
    winners: dict[tuple[str, bytes], ChangeEvent] = {}
    setdefault = winners.setdefault
    for key, event in keyed:
        held = setdefault(key, event)
        # Strictly higher only: among equals the first seen stays, as in newest_first.
        if held is not event and rank(event) > rank(held):
            winners[key] = event
    return list(winners.values())


def newest_first(keyed: Iterable[tuple[tuple[str, bytes], ChangeEvent]]) -> list[list[ChangeEvent]]:
    """Every (table, key)'s events of a batch, newest first; `[0]` of each is the winner.

    The older ones are what a key falls back to when the target refuses its newest event:
    the row then ends where it would have ended had the batch been cut differently.
    """
    groups: dict[tuple[str, bytes], list[ChangeEvent]] = {}
    for key, event in keyed:
        group = groups.get(key)
        if group is None:
            groups[key] = [event]
        else:
            group.append(event)
    out = list(groups.values())
    for group in out:
        if len(group) > 1:
            group.sort(key=rank, reverse=True)  # stable: first seen first among equals
    return out
