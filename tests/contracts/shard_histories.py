"""Generated shard histories for the source ordering contract (test_source_ordering.py).

A history is what one table's stream holds, as AWS documents it can be:

- the changes of a few items in DynamoDB's own order, many of them in the same millisecond
  or microsecond, stamped at MILLISECOND or MICROSECOND precision;
- shards: one, a split (a parent, two children) or a merge (two parents, one child), every
  change of an item before the reshard in a parent and every later one in a child;
- on Kinesis only (`Guarantees`): late records, a change delivered after a newer change of
  its own item; duplicates, a change delivered twice (same eventID, new sequence number);
- restarts: the reader stops after any page and a new one resumes from the checkpoint of
  that moment (which trails what was published by the acknowledgements still in flight).

What stays out is what no rule can order, or what a transport's documented rule does not
promise (README, "Versions on Kinesis"): two changes of one item in one tick whose shard
order is not their change order; two changes of one item in one tick that both arrive after
a newer change of that item; a duplicate after a restart with another change of its item
between the two copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

MILLISECOND = "MILLISECOND"
MICROSECOND = "MICROSECOND"
T0 = 1_790_000_000_000_000  # µs, on a millisecond
# Gaps between consecutive changes of the table, in µs: mostly within one millisecond.
GAPS = (0, 0, 0, 1, 3, 250, 999, 1000, 1000, 1001, 2500)


@dataclass(frozen=True)
class Guarantees:
    """What a transport's source promises (AWS's documentation of each)."""

    late: bool  # a change may reach the shard after a newer change of its item
    duplicates: bool  # a change may be delivered twice
    merges: bool  # a shard may have two parents


DYNAMODB_STREAMS = Guarantees(late=False, duplicates=False, merges=False)
KINESIS = Guarantees(late=True, duplicates=True, merges=True)


@dataclass(frozen=True)
class Change:
    """One change of one item in DynamoDB: `index` is its place in the item's own order."""

    item: str
    index: int
    event: str  # INSERT | MODIFY | REMOVE
    created_us: int  # as the record carries it (whole milliseconds at MILLISECOND)
    event_id: str
    value: str

    def tick(self, precision: str) -> int:
        return self.created_us // 1000 if precision == MILLISECOND else self.created_us


@dataclass
class ShardPlan:
    shard_id: str
    parents: tuple[str, ...] = ()
    records: list[Change] = field(default_factory=list)  # shard order


@dataclass
class History:
    precision: str
    changes: list[Change]  # DynamoDB's order
    shards: list[ShardPlan]  # parents before children
    page_sizes: list[int]  # cycled: how many records each read returns
    ack_lag: int  # pages published but not yet acknowledged when the reader stops
    stops: list[int]  # after how many pages (counted over the whole run) a reader stops
    # Which checkpoints (counted over the run) the KCL refuses as its lease moved to another
    # processor, which then resumes from the KCL's checkpoint (the KCL path only).
    refused: list[int]

    def last_changes(self) -> dict[str, Change]:
        last: dict[str, Change] = {}
        for c in self.changes:
            last[c.item] = c
        return last


def _deliver_late(
    draw: st.DrawFn, records: list[Change], changes: list[Change], precision: str
) -> list[Change]:
    """The shard's order when records arrive out of change-time order: the items' changes
    merged in any interleaving (so records of other items, stamped later, sit between or
    before an item's changes of one tick), each item's changes keeping their order, except
    that a change alone in its tick (among its item's) may arrive after newer changes of
    its item. No rule orders two changes of one tick of an item that both arrive after a
    newer change of it, or a tick's changes arriving out of their order."""
    queues: dict[str, list[Change]] = {}
    for c in records:
        queues.setdefault(c.item, []).append(c)
    for item, queue in queues.items():
        for n in range(len(queue) - 2, -1, -1):
            c = queue[n]
            alone = not any(
                o.item == item and o.tick(precision) == c.tick(precision) and o is not c
                for o in changes
            )
            if alone and draw(st.booleans()):
                passed = draw(st.integers(1, len(queue) - 1 - n))
                queue.insert(n + passed, queue.pop(n))
    out: list[Change] = []
    while queues:
        item = draw(st.sampled_from(sorted(queues)))
        out.append(queues[item].pop(0))
        if not queues[item]:
            del queues[item]
    return out


def _duplicate(draw: st.DrawFn, records: list[Change], across_stops: bool) -> None:
    """Deliver one record a second time, later on the same shard. With restarts in the run,
    only where no other change of its item lies between the copies (the versioner's memory
    of eventIDs does not survive a restart, see the module docstring)."""
    if not records:
        return
    i = draw(st.integers(0, len(records) - 1))
    j = draw(st.integers(i + 1, len(records)))
    original = records[i]
    if across_stops and any(
        c.item == original.item and c.event_id != original.event_id for c in records[i + 1 : j]
    ):
        return
    records.insert(j, original)


@st.composite
def histories(draw: st.DrawFn, guarantees: Guarantees) -> History:
    # MILLISECOND twice as often: only there do ticks hold several changes of one item.
    precision = draw(st.sampled_from([MILLISECOND, MILLISECOND, MICROSECOND]))
    items = draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=3, unique=True))
    count = draw(st.integers(1, 18))
    changes: list[Change] = []
    now = T0
    last_us: dict[str, int] = {}
    live: dict[str, bool] = {}
    for n in range(count):
        now += draw(st.sampled_from(GAPS))
        item = draw(st.sampled_from(items))
        stamp = now
        if precision == MICROSECOND and last_us.get(item, -1) >= stamp:
            stamp = last_us[item] + 1  # DynamoDB never stamps two changes of an item alike
            now = stamp
        last_us[item] = stamp
        exists = live.get(item, False)
        event = draw(st.sampled_from(["MODIFY", "REMOVE"])) if exists else "INSERT"
        live[item] = event != "REMOVE"
        created = stamp - stamp % 1000 if precision == MILLISECOND else stamp
        index = sum(1 for c in changes if c.item == item)
        changes.append(Change(item, index, event, created, f"event-{n}", f"{item}{n}"))

    layouts = ["one", "split", "merge"] if guarantees.merges else ["one", "split"]
    layout = draw(st.sampled_from(layouts))
    if layout == "one":
        before, after = [ShardPlan("shardId-000")], []
    elif layout == "split":
        before = [ShardPlan("shardId-000")]
        after = [ShardPlan(f"shardId-00{n}", ("shardId-000",)) for n in (1, 2)]
    else:
        before = [ShardPlan("shardId-000"), ShardPlan("shardId-001")]
        after = [ShardPlan("shardId-002", ("shardId-000", "shardId-001"))]
    cut = draw(st.integers(0, count)) if after else count
    home = {item: draw(st.integers(0, 3)) for item in items}
    for k, c in enumerate(changes):
        side = before if k < cut else after
        side[home[c.item] % len(side)].records.append(c)
    shards = before + after
    stops = sorted(set(draw(st.lists(st.integers(1, 12), max_size=3))))
    refused = sorted(set(draw(st.lists(st.integers(1, 8), max_size=2))))

    for shard in shards:
        if guarantees.late:
            shard.records = _deliver_late(draw, shard.records, changes, precision)
        if guarantees.duplicates:
            for _ in range(draw(st.integers(0, 3))):
                _duplicate(draw, shard.records, across_stops=bool(stops or refused))
    page_sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    ack_lag = draw(st.integers(0, 2))
    return History(precision, changes, shards, page_sizes, ack_lag, stops, refused)
