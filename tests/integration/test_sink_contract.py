"""The sink contract (docs/design.md §11), the same tests for every sink against its service.

Idempotent, order-independent, deletes never undone by older writes, which event wins is
`bridge.model.versioning.rank` (in one batch and across batches, in every arrival order), a full
image replaces the row, every DynamoDB type round-trips losslessly, create_schema is idempotent.
SQLite, PostgreSQL (local cluster or PG_DSN), moto as Alternator (or DYNAMODB_ENDPOINT_URL),
and the CQL sink against a real Apache Cassandra node (or ScyllaDB at SCYLLA_HOSTS).
"""

from __future__ import annotations

import base64
import itertools
import os
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import ConfigError, PermanentError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.model.versioning import rank
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import AlternatorTarget, PostgresTarget, ScyllaTarget, SqliteTarget
from ddb_bridge.registry import sink_class
from tests import strategies
from tests.samples import sample_item

pytestmark = pytest.mark.integration

SINKS = ["sqlite", "postgres", "alternator", "scylla"]
BASE = 1_700_000_000_000_000


def make_settings(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if kind == "sqlite":
        return SqliteTarget(type="sqlite", path=str(tmp_path / "target.db"))
    if kind == "postgres":
        return PostgresTarget(type="postgres", dsn=request.getfixturevalue("pg_dsn"))
    if kind == "alternator":
        return AlternatorTarget(
            type="alternator", endpoint_url=request.getfixturevalue("dynamodb_endpoint")
        )
    target: ScyllaTarget = request.getfixturevalue("cql_endpoint").target()
    return target


SinkFactory = Callable[..., Any]


@pytest.fixture(params=SINKS)
def open_sink(
    request: pytest.FixtureRequest, tmp_path: Path, unique_name: Any
) -> Iterator[SinkFactory]:
    """A function (spec kwargs) -> an opened sink on a fresh table; closes them all at the end."""
    kind = request.param
    target = make_settings(kind, request, tmp_path)
    opened: list[Any] = []

    def factory(create_schema: bool = True, **spec_kwargs: Any) -> Any:
        name = unique_name("t").replace("-", "_")
        spec_kwargs.setdefault("hash_key", "pk")
        spec_kwargs.setdefault("hash_type", "S")
        spec_kwargs.setdefault("range_key", "sk")
        spec_kwargs.setdefault("range_type", "N")
        spec = TableSpec(source=name, target=name, **spec_kwargs)
        sink = sink_class(kind)(target)
        opened.append(sink)
        sink.open([spec], create_schema=create_schema)
        sink.spec = spec  # the tests' handle on the table they write
        return sink

    yield factory
    for sink in opened:
        sink.close()


def put(spec: TableSpec, item: Item, version: int, op: Op = Op.MODIFY) -> ChangeEvent:
    keys = {k: item[k] for k in spec.key_names}
    origin = Origin.SCAN if op is Op.SNAPSHOT else Origin.STREAM
    return ChangeEvent(spec.source, op, keys, version, origin, new_image=item)


def remove(spec: TableSpec, keys: Item, version: int) -> ChangeEvent:
    return ChangeEvent(spec.source, Op.REMOVE, keys, version, Origin.STREAM)


def assert_state(sink: Any, final: dict[bytes, tuple[Item, Item | None]]) -> None:
    """read_items equals the expected item (or None) per key; scan_keys lists the live keys."""
    spec = sink.spec
    entries = list(final.values())
    got = sink.read_items(spec.source, [k for k, _ in entries])
    for (key, want), have in zip(entries, got, strict=True):
        if want is None:
            assert have is None, f"key {key}: expected absent, found {have}"
        else:
            assert have is not None, f"key {key}: expected {want}, found nothing"
            assert attrs.items_equal(have, want), f"key {key}:\n want {want}\n have {have}"
    live = {attrs.canonical_key(k) for k, v in entries if v is not None}
    scanned = [attrs.canonical_key(k) for k in sink.scan_keys(spec.source)]
    assert len(scanned) == len(set(scanned))
    assert set(scanned) == live


# Random items: every type, NUL and non-BMP characters, 38-digit numbers, nesting, empties.
def rand_text(rng: random.Random) -> str:
    alphabet = "ab Zë名\x00\U0001f600\"\\'\n"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))


def rand_number(rng: random.Random) -> str:
    digits = str(rng.randint(0, 10**38 - 1))
    return ("-" if rng.random() < 0.3 else "") + str(Decimal(digits).scaleb(rng.randint(-40, 40)))


def rand_av(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kinds = ["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"] + (["L", "M"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "S":
        return {"S": rand_text(rng)}
    if kind == "N":
        return {"N": rand_number(rng)}
    if kind == "B":
        return {"B": base64.b64encode(rng.randbytes(rng.randint(0, 6))).decode()}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "SS":
        return {"SS": sorted({rand_text(rng) + str(i) for i in range(rng.randint(1, 3))})}
    if kind == "NS":
        return {"NS": sorted({str(rng.randint(-99, 99)) for _ in range(rng.randint(1, 3))})}
    if kind == "BS":
        return {"BS": sorted({base64.b64encode(bytes([i])).decode() for i in range(3)})}
    if kind == "L":
        return {"L": [rand_av(rng, depth + 1) for _ in range(rng.randint(0, 3))]}
    return {"M": {rand_text(rng) + "k": rand_av(rng, depth + 1) for _ in range(rng.randint(0, 3))}}


def rand_item(rng: random.Random, keys: Item) -> Item:
    names = ["a", "b", "c", "d", "e", "f"]
    item = {n: rand_av(rng) for n in rng.sample(names, rng.randint(0, len(names)))}
    item.update(keys)
    return item


@pytest.mark.parametrize("seed", [1, 2])
def test_random_histories_shuffled_duplicated_batched(open_sink: SinkFactory, seed: int) -> None:
    rng = random.Random(seed)
    sink = open_sink()
    spec = sink.spec
    events: list[ChangeEvent] = []
    final: dict[bytes, tuple[Item, Item | None]] = {}
    for i in range(40):
        # N range keys written in varying spellings: 7, 7.0, 70E-1 are one key.
        keys = {"pk": {"S": f"user#{i % 13}"}, "sk": {"N": str(i // 13)}}
        spelled = {
            "pk": keys["pk"],
            "sk": {"N": rng.choice(["{}", "{}.0", "{}0E-1"]).format(i // 13)},
        }
        version = BASE + rng.randint(0, 10**6)
        state: Item | None = None
        for _ in range(rng.randint(1, 6)):
            version += rng.randint(1, 10**7)
            if rng.random() < 0.25:
                events.append(remove(spec, spelled, version))
                state = None
            else:
                state = rand_item(rng, keys)
                op = rng.choice([Op.INSERT, Op.MODIFY, Op.SNAPSHOT])
                events.append(put(spec, {**state, **spelled}, version, op))
        final[attrs.canonical_key(keys)] = (keys, state)
    events += rng.sample(events, len(events) // 2)  # duplicates
    rng.shuffle(events)
    while events:
        n = rng.randint(1, 25)
        sink.write_batch(events[:n])
        events = events[n:]
    assert_state(sink, final)


def test_replay_of_everything_changes_nothing(open_sink: SinkFactory) -> None:
    sink = open_sink()
    spec = sink.spec
    history = [put(spec, sample_item(i), BASE + i) for i in range(30)]
    history += [
        remove(spec, {"pk": sample_item(i)["pk"], "sk": sample_item(i)["sk"]}, BASE + 100 + i)
        for i in range(0, 30, 3)
    ]
    sink.write_batch(history)
    sink.write_batch(list(reversed(history)))
    sink.write_batch(history[:7])
    final = {}
    for i in range(30):
        item = sample_item(i)
        keys = {"pk": item["pk"], "sk": item["sk"]}
        final[attrs.canonical_key(keys)] = (keys, None if i % 3 == 0 else item)
    assert_state(sink, final)


def test_tombstone_beats_older_write(open_sink: SinkFactory) -> None:
    sink = open_sink()
    spec = sink.spec
    keys = {"pk": {"S": "k"}, "sk": {"N": "1"}}
    item = {**keys, "v": {"S": "new"}}
    sink.write_batch([put(spec, item, BASE + 20)])
    sink.write_batch([remove(spec, keys, BASE + 30)])
    sink.write_batch([put(spec, {**keys, "v": {"S": "old"}}, BASE + 10)])
    sink.write_batch([put(spec, item, BASE + 29)])
    assert sink.read_items(spec.source, [keys]) == [None]
    assert list(sink.scan_keys(spec.source)) == []
    # A newer write resurrects it; a delete at an equal version wins the tie.
    sink.write_batch([put(spec, item, BASE + 40)])
    assert_state(sink, {b"k": (keys, item)})
    sink.write_batch([remove(spec, keys, BASE + 40), put(spec, item, BASE + 40)])
    assert_state(sink, {b"k": (keys, None)})


# Histories of one item as (op, version); what each must end in is computed from
# `bridge.model.versioning.rank`, so a sink whose conditional write drifts from the rule fails here.
RANK_CASES: dict[str, list[tuple[Op, int]]] = {
    "write and delete at an equal version": [(Op.MODIFY, 5), (Op.REMOVE, 5)],
    "snapshot and delete at an equal version": [(Op.SNAPSHOT, 5), (Op.REMOVE, 5)],
    "older write after a newer one": [(Op.MODIFY, 7), (Op.INSERT, 3)],
    "older write after a delete": [(Op.REMOVE, 7), (Op.MODIFY, 3)],
    "newer write after a delete": [(Op.REMOVE, 3), (Op.INSERT, 7)],
    "snapshot below a stream write": [(Op.SNAPSHOT, 2), (Op.MODIFY, 3)],
    "write, delete, newer write": [(Op.MODIFY, 4), (Op.REMOVE, 5), (Op.MODIFY, 6)],
    "delete, its duplicate, write at its version": [
        (Op.REMOVE, 5),
        (Op.REMOVE, 5),
        (Op.MODIFY, 5),
    ],
    "duplicate write": [(Op.MODIFY, 5), (Op.MODIFY, 5)],
}


def test_which_event_wins_follows_bridge_versioning(open_sink: SinkFactory) -> None:
    """Every case in every arrival order, delivered in one batch (the sink's coalescing decides)
    and one event per batch (the target's conditional write decides), ends in the rule's winner.
    """
    sink = open_sink()
    spec = sink.spec
    one_batch: list[ChangeEvent] = []
    rounds: list[list[ChangeEvent]] = []  # round r: the r-th event of every one-by-one history
    final: dict[bytes, tuple[Item, Item | None]] = {}
    for c, (name, history) in enumerate(RANK_CASES.items()):
        for p, order in enumerate(dict.fromkeys(itertools.permutations(history))):
            for mode in ("batch", "one-by-one"):
                keys = {"pk": {"S": f"{name} #{p} {mode}"}, "sk": {"N": str(c)}}
                # One state per version, as the versioning guarantees for writes.
                events = [
                    remove(spec, keys, BASE + v)
                    if op is Op.REMOVE
                    else put(spec, {**keys, "v": {"N": str(v)}}, BASE + v, op)
                    for op, v in order
                ]
                if mode == "batch":
                    one_batch.extend(events)
                else:
                    for r, event in enumerate(events):
                        if r == len(rounds):
                            rounds.append([])
                        rounds[r].append(event)
                winner = max(events, key=rank)
                final[attrs.canonical_key(keys)] = (
                    keys,
                    None if winner.is_delete else winner.new_image,
                )
    sink.write_batch(one_batch)
    for batch in rounds:
        sink.write_batch(batch)
    assert_state(sink, final)


def test_full_image_replaces_row(open_sink: SinkFactory) -> None:
    sink = open_sink()
    spec = sink.spec
    keys = {"pk": {"S": "k"}, "sk": {"N": "1"}}
    wide = {**keys, "a": {"S": "x"}, "b": {"N": "1"}, "c": {"M": {"x": {"S": "y"}}}}
    narrow = {**keys, "b": {"N": "2"}}
    sink.write_batch([put(spec, wide, BASE + 1)])
    sink.write_batch([put(spec, narrow, BASE + 2)])
    sink.write_batch([put(spec, wide, BASE + 1)])  # an old full image arriving late
    assert_state(sink, {b"k": (keys, narrow)})


def test_every_type_round_trips(open_sink: SinkFactory) -> None:
    sink = open_sink()
    spec = sink.spec
    items = [sample_item(i) for i in range(5)]
    items[0]["huge"] = {"N": "-9.9999999999999999999999999999999999999E+125"}
    items[0]["tiny"] = {"N": "1E-130"}
    items[1]["nul"] = {"S": "a\x00b"}
    sink.write_batch([put(spec, item, BASE + 1) for item in items])
    final = {}
    for item in items:
        keys = {"pk": item["pk"], "sk": item["sk"]}
        final[attrs.canonical_key(keys)] = (keys, item)
    assert_state(sink, final)


def moto_can_scan(item: Item) -> bool:
    """Whether moto (the Alternator stand-in) can answer a Scan with a ProjectionExpression
    (scan_keys) over this item: it decodes items with boto3's TypeDeserializer, whose decimal
    context (Emin -128, Rounded trapped) fails with a 500 on numbers DynamoDB holds, such as
    1E-130 or 1E+125 written out. Real DynamoDB and Alternator take them."""
    from boto3.dynamodb.types import TypeDeserializer

    try:
        for av in attrs.to_boto(item).values():
            TypeDeserializer().deserialize(av)
    except ArithmeticError:
        return False
    return True


def test_arbitrary_values_round_trip(open_sink: SinkFactory) -> None:
    sink = open_sink()
    spec = sink.spec
    versions = itertools.count(BASE)
    keys = {"pk": {"S": "hyp"}, "sk": {"N": "1"}}

    on_moto = isinstance(sink.settings, AlternatorTarget) and not os.environ.get(
        "DYNAMODB_ENDPOINT_URL"
    )

    # Hypothesis inside the test, so that all examples share one opened table.
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(strategies.attribute_values, min_size=1, max_size=4))
    def check(values: list[dict[str, Any]]) -> None:
        item = {**keys, **{f"a{i}": v for i, v in enumerate(values)}}
        assume(not on_moto or moto_can_scan(item))
        sink.write_batch([put(spec, item, next(versions))])
        assert_state(sink, {b"hyp": (keys, item)})

    check()


def test_binary_hash_key_without_range(open_sink: SinkFactory) -> None:
    sink = open_sink(hash_key="id", hash_type="B", range_key=None, range_type=None)
    spec = sink.spec
    final = {}
    events = []
    for i in range(10):
        keys = {"id": {"B": base64.b64encode(bytes([i, 0, 255])).decode()}}
        item = {**keys, "n": {"N": str(i)}}
        events.append(put(spec, item, BASE + i))
        if i % 4 == 0:
            events.append(remove(spec, keys, BASE + 50))
        final[attrs.canonical_key(keys)] = (keys, None if i % 4 == 0 else item)
    sink.write_batch(events)
    assert_state(sink, final)


def test_create_schema_is_idempotent_and_required(open_sink: SinkFactory, tmp_path: Path) -> None:
    sink = open_sink()
    spec = sink.spec
    keys = {"pk": {"S": "k"}, "sk": {"N": "1"}}
    sink.write_batch([put(spec, {**keys, "x": {"S": "y"}}, BASE)])
    sink.open([spec], create_schema=True)  # again: keeps the data
    assert sink.read_items(spec.source, [keys]) == [{**keys, "x": {"S": "y"}}]
    sink.open([spec], create_schema=False)  # exists: fine
    with pytest.raises(ConfigError, match="does not exist"):
        open_sink(create_schema=False)


def test_events_the_table_cannot_take_are_permanent(open_sink: SinkFactory) -> None:
    sink = open_sink()
    spec = sink.spec
    bad_type = {"pk": {"S": "k"}, "sk": {"S": "not a number"}}
    with pytest.raises(PermanentError, match=spec.source):
        sink.write_batch([put(spec, {**bad_type, "x": {"S": "y"}}, BASE)])
    with pytest.raises(PermanentError, match="not opened"):
        sink.write_batch([ChangeEvent("nope", Op.REMOVE, bad_type, BASE, Origin.STREAM)])
