"""KinesisVersioner: per-item order from change times, never from arrival order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.model.item_memory import ItemMemory, child_start
from bridge.model.versioning import KinesisVersioner

MS = 1000
T0 = 1_700_000_000_000_000  # µs


def test_a_record_takes_its_own_change_time() -> None:
    v = KinesisVersioner()
    assert v.next(T0, MS) == T0
    assert v.next(T0 + 5 * MS, MS) == T0 + 5 * MS
    assert v.last == T0 + 5 * MS


def test_later_records_of_one_millisecond_take_the_next_microseconds() -> None:
    v = KinesisVersioner()
    assert [v.next(T0, MS) for _ in range(3)] == [T0, T0 + 1, T0 + 2]
    # ...but never reach into the next millisecond, which belongs to later changes.
    v = KinesisVersioner(last=T0 + MS - 1)
    assert v.next(T0, MS) == T0


def test_at_microsecond_precision_equal_times_share_a_version() -> None:
    v = KinesisVersioner()
    assert v.next(T0, 1) == T0
    assert v.next(T0, 1) == T0


def test_a_late_record_loses_to_the_newer_change_before_it() -> None:
    v = KinesisVersioner()
    newer = v.next(T0 + 7 * MS, MS)
    older = v.next(T0 + 2 * MS, MS)
    assert older < newer
    assert v.last == newer


def test_a_duplicate_gets_the_version_of_its_first_copy() -> None:
    v = KinesisVersioner()
    first = v.next(T0, MS, "a")
    second = v.next(T0, MS, "b")
    assert v.next(T0, MS, "a") == first
    assert second > first


def test_duplicate_memory_is_bounded() -> None:
    v = KinesisVersioner(remember=2)
    v.next(T0, MS, "a")
    v.next(T0 + MS, MS, "b")
    v.next(T0 + 2 * MS, MS, "c")
    # "a" was forgotten: versioned afresh, as the oldest tick's lowest slot.
    assert v.next(T0, MS, "a") == T0


def test_a_restart_from_a_checkpoint_reproduces_the_versions_after_it() -> None:
    times = [T0, T0, T0 + 3 * MS, T0 + MS, T0 + 3 * MS, T0 + 3 * MS]
    first = KinesisVersioner()
    versions, states = [], []
    for n, t in enumerate(times):
        versions.append(first.next(t, MS, f"e{n}", b"x" if n % 2 else b"y"))
        states.append((first.last, first.memory_state()))
    for cut in range(len(times)):
        last, memory = states[cut]
        again = KinesisVersioner(last=last, memory=ItemMemory.unpack(memory))
        assert [
            again.next(t, MS, f"e{n}", b"x" if n % 2 else b"y")
            for n, t in enumerate(times)
            if n > cut
        ] == versions[cut + 1 :]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=30),
    st.randoms(use_true_random=False),
    st.sampled_from([1, MS]),
)
def test_newest_change_wins_whatever_the_arrival_order(
    ticks: list[int], rnd: random.Random, slots: int
) -> None:
    """Changes of one item at distinct ticks, delivered shuffled and with duplicates: the
    change with the latest time gets the highest version."""
    changes = sorted(set(ticks))
    delivered = [(t, f"e{t}") for t in changes]
    delivered += [rnd.choice(delivered) for _ in range(len(delivered))]
    rnd.shuffle(delivered)
    v = KinesisVersioner()
    got: dict[str, int] = {}
    for tick, event_id in delivered:
        version = v.next(T0 + tick * slots, slots, event_id)
        assert got.setdefault(event_id, version) == version  # duplicates are true duplicates
    newest = f"e{changes[-1]}"
    assert max(got, key=lambda e: got[e]) == newest
    assert sorted(got.values()) == [got[f"e{t}"] for t in changes]


# -- per-item memory: what it orders, its bounds, and what it cannot order ------------------


def test_another_items_later_millisecond_between_two_changes_does_not_reorder_them() -> None:
    v = KinesisVersioner()
    assert v.next(T0, MS, "x1", b"x") == T0
    assert v.next(T0 + MS, MS, "z1", b"z") == T0 + MS
    assert v.next(T0, MS, "x2", b"x") == T0 + 1  # after x1, though z's version is higher
    assert v.next(T0, MS, "x1", b"x") == T0  # x1 again: its first version


def test_a_copy_of_an_items_newest_change_after_a_restart_keeps_its_version() -> None:
    v = KinesisVersioner()
    v.next(T0, MS, "x1", b"x")
    second = v.next(T0, MS, "x2", b"x")
    again = KinesisVersioner(v.last, memory=ItemMemory.unpack(v.memory_state()))
    assert again.next(T0, MS, "x2", b"x") == second  # the eventID was stored with the item
    assert again.next(T0, MS, "x3", b"x") == second + 1


def test_memory_is_bounded_by_count_and_by_change_time() -> None:
    memory = ItemMemory(limit=3, horizon_us=10 * MS)
    v = KinesisVersioner(memory=memory)
    for n in range(5):
        v.next(T0 + n * MS, MS, f"e{n}", f"item{n}".encode())
    assert len(memory.entries) == 3
    assert memory.floor == T0 + MS  # the newest version of an entry let go
    v.next(T0 + 20 * MS, MS, "late-enough", b"other")
    assert len(memory.entries) == 1  # the rest are over 10 ms of change time behind
    assert len(v.memory_state()) < 60


def test_an_item_let_go_is_bumped_above_the_floor_in_the_floors_millisecond() -> None:
    memory = ItemMemory(limit=1)
    v = KinesisVersioner(memory=memory)
    x1 = v.next(T0, MS, "x1", b"x")
    v.next(T0, MS, "y1", b"y")  # x's entry goes: the floor is its version
    assert memory.floor == x1
    assert v.next(T0, MS, "x2", b"x") > x1


def test_what_a_dropped_memory_cannot_order() -> None:
    """Documented (README, "Versions on Kinesis"): once entries of a later millisecond were
    let go, an item's change in an earlier millisecond whose earlier change there was let go
    too takes its millisecond's first µs, and ties with that earlier change."""
    v = KinesisVersioner(memory=ItemMemory(limit=1))
    x1 = v.next(T0, MS, "x1", b"x")
    v.next(T0 + MS, MS, "y1", b"y")
    v.next(T0 + MS, MS, "z1", b"z")  # y's entry (T0 + 1 ms) goes: the floor passes x's ms
    assert v.next(T0, MS, "x2", b"x") == x1


def test_a_checkpoint_written_before_item_memories_bumps_from_its_last_version() -> None:
    v = KinesisVersioner(last=T0 + 3)  # no memory stored: any item may be at T0 + 3
    assert v.next(T0, MS, "x", b"x") == T0 + 4


def test_children_start_from_their_parents_memories_merged() -> None:
    left, right = KinesisVersioner(), KinesisVersioner()
    left.next(T0, MS, "x1", b"x")
    right.next(T0 + MS, MS, "y1", b"y")
    right.next(T0 + MS, MS, "y2", b"y")
    last, packed = child_start(
        [(left.last, left.memory_state()), (right.last, right.memory_state()), (T0, None)]
    )
    child = KinesisVersioner(last, memory=ItemMemory.unpack(packed))
    assert child.next(T0, MS, "x2", b"x") == T0 + 1
    assert child.next(T0 + MS, MS, "y3", b"y") == T0 + MS + 2


def test_a_damaged_memory_is_refused_naming_where_it_was_read() -> None:
    with pytest.raises(ValueError, match="lease L: 5 bytes is not a packed item memory"):
        ItemMemory.unpack(b"\x01\x00\x00\x00\x00", "lease L")
