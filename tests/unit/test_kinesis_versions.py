"""KinesisVersioner: per-item order from change times, never from arrival order."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.item_memory import ItemMemory
from bridge.versioning import KinesisVersioner

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
