from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.apply import batching
from bridge.model.attrs import Item
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.model.versioning import StreamVersioner, backfill_version, rank, to_micros, wins
from bridge.ports.sink import TableSpec
from connectors.sinks import common


def test_stream_versions_strictly_increase_within_a_second() -> None:
    v = StreamVersioner()
    second = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    got = [v.next(second) for _ in range(3)]
    base = to_micros(second)
    assert got == [base, base + 1, base + 2]
    later = datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)
    assert v.next(later) == base + 1_000_000


def test_child_shard_continues_from_parent() -> None:
    parent = StreamVersioner()
    t = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(5):
        parent.next(t)
    child = StreamVersioner(parent.last)
    assert child.next(t) == parent.last + 1


def test_backfill_version_below_stream_versions_after_start() -> None:
    start = datetime(2026, 1, 1, 12, 0, 0, 750_000, tzinfo=UTC)
    v = backfill_version(start, margin_s=5)
    assert v == to_micros(datetime(2026, 1, 1, 11, 59, 55, tzinfo=UTC)) - 1
    # any stream record created at or after start - margin wins over the snapshot
    assert StreamVersioner().next(datetime(2026, 1, 1, 11, 59, 55, tzinfo=UTC)) > v


def event(key: str, version: int, op: Op = Op.MODIFY, table: str = "t") -> ChangeEvent:
    keys: Item = {"pk": {"S": key}}
    if op is Op.REMOVE:
        return ChangeEvent(table, op, keys, version, Origin.STREAM)
    origin = Origin.SCAN if op is Op.SNAPSHOT else Origin.STREAM
    # One state per (key, version): what the versioning guarantees for writes.
    image = {**keys, "v": {"N": str(version)}}
    return ChangeEvent(table, op, keys, version, origin, new_image=image)


def test_the_higher_version_wins_whatever_the_op() -> None:
    for old_op in Op:
        for new_op in Op:
            old, new = event("a", 1, old_op), event("a", 2, new_op)
            assert wins(new, old) and not wins(old, new)


def test_a_delete_wins_a_tie_in_both_orders() -> None:
    for write_op in (Op.INSERT, Op.MODIFY, Op.SNAPSHOT):
        write, delete = event("a", 5, write_op), event("a", 5, Op.REMOVE)
        assert wins(delete, write) and not wins(write, delete)
        assert rank(delete) > rank(write)


def test_a_duplicate_does_not_replace_what_is_held() -> None:
    for op in Op:
        assert not wins(event("a", 5, op), event("a", 5, op))


# Few keys, tables and versions, so that ties and duplicates are common.
events = st.builds(
    event,
    key=st.sampled_from(["a", "b", "c"]),
    version=st.integers(1, 4),
    op=st.sampled_from(list(Op)),
    table=st.sampled_from(["t", "u"]),
)
SPECS = [TableSpec(source=t, target=t, hash_key="pk", hash_type="S") for t in ("t", "u")]


def state(event: ChangeEvent) -> tuple[int, bool, Item | None]:
    return event.version, event.is_delete, event.new_image


def by_batching(batch: list[ChangeEvent]) -> dict[tuple[str, bytes], tuple[int, bool, Item | None]]:
    return {(e.table, e.key_bytes()): state(e) for e in batching.coalesce(batch)}


def by_sinks(batch: list[ChangeEvent]) -> dict[tuple[str, bytes], tuple[int, bool, Item | None]]:
    winners = common.coalesce(batch, common.Tables(SPECS))
    return {(t, e.key_bytes()): state(e) for t, rows in winners.items() for e in rows.values()}


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=30).flatmap(lambda b: st.tuples(st.just(b), st.permutations(b))))
def test_coalescing_by_the_rule_is_order_independent(
    batches: tuple[list[ChangeEvent], list[ChangeEvent]],
) -> None:
    batch, shuffled = batches
    # Apply's batching and the sinks' coalescing pick the same winners, in any order...
    assert by_batching(batch) == by_batching(shuffled) == by_sinks(shuffled) == by_sinks(batch)
    # ...which are the rule's maximum per key, however the events were cut into batches.
    expected: dict[tuple[str, bytes], ChangeEvent] = {}
    for e in batch:
        slot = (e.table, e.key_bytes())
        expected[slot] = max(expected.get(slot, e), e, key=rank)
    assert by_batching(batch) == {slot: state(e) for slot, e in expected.items()}
    half = len(shuffled) // 2
    rejoined = batching.coalesce(shuffled[:half]) + batching.coalesce(shuffled[half:])
    assert by_batching(rejoined) == by_batching(batch)
