"""The CQL sink's own rules against a real CQL server (Cassandra, or ScyllaDB at SCYLLA_HOSTS).

What the shared contract suite (test_sink_contract.py) does not cover: TTL written as CQL
TTLs (expiring for real, far-future expiry times the server must accept, expired images as
timestamped deletes), and typed columns beside the catch-all map, read back with plain CQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.ports.sink import TableSpec
from connectors.sinks.scylla import ScyllaSink

pytestmark = pytest.mark.integration

BASE = 1_700_000_000_000_000
KEYS = {"pk": {"S": "k"}, "sk": {"N": "1"}}


def same(got: list[Any], want: list[Any]) -> bool:
    return len(got) == len(want) and all(
        (g is None and w is None) or (g is not None and w is not None and attrs.items_equal(g, w))
        for g, w in zip(got, want, strict=True)
    )


def put(spec: TableSpec, item: dict[str, Any], version: int) -> ChangeEvent:
    keys = {k: item[k] for k in spec.key_names}
    return ChangeEvent(spec.source, Op.MODIFY, keys, version, Origin.STREAM, new_image=item)


@pytest.fixture
def cql_sink(cql_endpoint: Any, unique_name: Any) -> Iterator[Any]:
    """A function (spec kwargs; `target`: sink settings) -> (opened sink, spec) on a fresh
    table; all closed at the end."""
    opened: list[ScyllaSink] = []

    def make(
        keyspace_suffix: bool = False, target: dict[str, Any] | None = None, **spec_kwargs: Any
    ) -> tuple[ScyllaSink, TableSpec]:
        name = unique_name("c").replace("-", "_")
        # A keyspace of its own, for a test that drops it.
        keyspace = f"ks_{name}" if keyspace_suffix else "ddb_bridge_test"
        spec = TableSpec(
            source=name,
            target=name,
            hash_key="pk",
            hash_type="S",
            range_key="sk",
            range_type="N",
            **spec_kwargs,
        )
        sink = ScyllaSink(cql_endpoint.target(keyspace=keyspace, **(target or {})))
        opened.append(sink)
        sink.open([spec], create_schema=True)
        return sink, spec

    yield make
    for sink in opened:
        sink.close()


def select(sink: ScyllaSink, spec: TableSpec, columns: str, pk: str) -> Any:
    """One row read with plain CQL, outside the sink's own mapping."""
    table = f'"{sink.settings.keyspace}"."{spec.target}"'
    session = sink._session  # the sink's own connection: no second cluster handshake
    return session.execute(f'SELECT {columns} FROM {table} WHERE "pk" = %s', (pk,)).one()


def test_ttl_expires_rows_and_far_future_expiry_is_accepted(cql_sink: Any) -> None:
    """DynamoDB takes any expiry time; Cassandra (before 5.0's new storage format) and
    ScyllaDB's sstables hold expiry as 32-bit seconds, so a CQL TTL reaching past
    2038-01-19 is refused (Cassandra) or capped (ScyllaDB). Far-future expiry times are
    common (a TTL attribute written in milliseconds never expires in DynamoDB)."""
    sink, spec = cql_sink(ttl_attribute="expires", columns={"n": "bigint"})
    now = int(time.time())
    soon = {"pk": {"S": "soon"}, "sk": {"N": "1"}, "n": {"N": "1"}, "expires": {"N": str(now + 3)}}
    items = {
        "soon": soon,
        "none": {"pk": {"S": "none"}, "sk": {"N": "1"}, "n": {"N": "2"}},
        "year2040": {
            "pk": {"S": "year2040"},
            "sk": {"N": "1"},
            "n": {"N": "3"},
            "expires": {"N": "2208988800"},
        },
        "millis": {
            "pk": {"S": "millis"},
            "sk": {"N": "1"},
            "n": {"N": "4"},
            "expires": {"N": str(now * 1000)},
        },
    }
    sink.write_batch([put(spec, item, BASE + 1) for item in items.values()])
    keys = [{"pk": item["pk"], "sk": item["sk"]} for item in items.values()]
    assert same(sink.read_items(spec.source, keys), list(items.values()))

    assert select(sink, spec, 'TTL("n")', "none")[0] is None
    assert 0 < select(sink, spec, 'TTL("n")', "soon")[0] <= 3
    for far in ("year2040", "millis"):
        ttl = select(sink, spec, 'TTL("n")', far)[0]
        # Capped to expire a day before the last second the server can store.
        limit = 2**31 - 1 - now
        assert limit - 2 * 86400 <= ttl <= limit, (far, ttl, limit)

    deadline = time.monotonic() + 20
    while sink.read_items(spec.source, [keys[0]]) != [None]:
        assert time.monotonic() < deadline, "the row with a 3 s TTL did not expire"
        time.sleep(0.5)
    # An older image arriving after expiry cannot bring the row back: the expired cells are
    # tombstones at the newer write's timestamp.
    sink.write_batch([put(spec, dict(soon, expires={"N": str(now + 3600)}), BASE)])
    assert sink.read_items(spec.source, [keys[0]]) == [None]


def test_an_image_already_expired_is_a_delete_that_shadows_older_writes(cql_sink: Any) -> None:
    sink, spec = cql_sink(ttl_attribute="expires")
    live = {**KEYS, "v": {"S": "live"}}
    expired = {**KEYS, "v": {"S": "expired"}, "expires": {"N": str(int(time.time()) - 60)}}
    sink.write_batch([put(spec, live, BASE + 1)])
    sink.write_batch([put(spec, expired, BASE + 2)])
    assert sink.read_items(spec.source, [KEYS]) == [None]
    sink.write_batch([put(spec, live, BASE + 1)])  # replayed late
    assert sink.read_items(spec.source, [KEYS]) == [None]
    assert list(sink.scan_keys(spec.source)) == []


def test_typed_columns_and_the_catch_all_map(cql_sink: Any) -> None:
    columns = {
        "price": "decimal",
        "qty": "bigint",
        "small": "tinyint",
        "name": "text",
        "code": "ascii",
        "ok": "boolean",
        "raw": "blob",
        "tags": "set<text>",
        "sizes": "set<decimal>",
    }
    sink, spec = cql_sink(columns=columns)
    full = {
        **KEYS,
        "price": {"N": "12345678901234567890123456789012345678E-2"},
        "qty": {"N": "-9223372036854775808"},
        "small": {"N": "300"},  # does not fit tinyint: kept in the map
        "name": {"S": "Zoë 名"},
        "code": {"S": "é"},  # not ASCII: kept in the map
        "ok": {"BOOL": True},
        "raw": {"B": "AAEC/w=="},
        "tags": {"SS": ["a", "b"]},
        "sizes": {"NS": ["1.5", "-1E+125"]},
        "other": {"M": {"x": {"L": [{"NULL": True}]}}},
    }
    sink.write_batch([put(spec, full, BASE + 1)])
    assert same(sink.read_items(spec.source, [KEYS]), [full])
    row = select(sink, spec, '"price", "qty", "small", "code", "tags", "sizes", "attrs"', "k")
    assert row.price == Decimal("123456789012345678901234567890123456.78")
    assert row.qty == -(2**63)
    assert row.small is None and row.code is None
    assert set(row.tags) == {"a", "b"} and set(row.sizes) == {Decimal("1.5"), Decimal("-1E+125")}
    assert set(row.attrs) == {"small", "code", "other"}

    # A typed attribute with another DynamoDB type goes to the map; absent ones disappear.
    narrow = {**KEYS, "price": {"S": "free"}, "name": {"S": "n2"}}
    sink.write_batch([put(spec, narrow, BASE + 2)])
    sink.write_batch([put(spec, full, BASE + 1)])  # the older image, late: changes nothing
    assert same(sink.read_items(spec.source, [KEYS]), [narrow])
    row = select(sink, spec, '"price", "qty", "tags", "attrs"', "k")
    assert row.price is None and row.qty is None and row.tags is None
    assert set(row.attrs) == {"price"}


@pytest.mark.parametrize(
    "change",
    [
        "DROP TABLE {table}",
        'ALTER TABLE {table} DROP "n"',
        "DROP KEYSPACE {keyspace}",
    ],
)
def test_a_schema_changed_under_the_sink_stops_apply_not_dead_letters(
    cql_sink: Any, cql_endpoint: Any, change: str
) -> None:
    """TargetError (apply stops and waits for an operator) for every event, never
    PermanentError (each event dead-lettered): no event is at fault."""
    from cassandra.cluster import Cluster

    from bridge.model.errors import TargetError

    sink, spec = cql_sink(columns={"n": "bigint"}, keyspace_suffix=True)
    item = {**KEYS, "n": {"N": "1"}}
    sink.write_batch([put(spec, item, BASE)])
    keyspace = f'"{sink.settings.keyspace}"'
    cluster = Cluster(cql_endpoint.hosts, port=cql_endpoint.port)
    try:
        cluster.connect().execute(
            change.format(table=f'{keyspace}."{spec.target}"', keyspace=keyspace)
        )
    finally:
        cluster.shutdown()
    with pytest.raises(TargetError, match=spec.source):
        sink.write_batch([put(spec, item, BASE + 1)])


def test_items_at_dynamodbs_size_limit_round_trip(cql_sink: Any) -> None:
    """~390 KB items whose encodings grow most: control characters (six bytes each in the
    map's JSON), binary (base64), and a typed blob column."""
    import base64

    sink, spec = cql_sink(columns={"raw": "blob"})
    blob = base64.b64encode(bytes(range(256)) * 1500).decode()
    items = [
        {"pk": {"S": "ctl"}, "sk": {"N": "1"}, "s": {"S": "\x01" * 390_000}},
        {"pk": {"S": "bin"}, "sk": {"N": "1"}, "b": {"B": blob}},
        {"pk": {"S": "typed"}, "sk": {"N": "1"}, "raw": {"B": blob}},
        {
            "pk": {"S": "many"},
            "sk": {"N": "1"},
            **{f"a{i}": {"N": "-1E-130"} for i in range(30_000)},
        },
    ]
    sink.write_batch([put(spec, item, BASE) for item in items])
    keys = [{"pk": item["pk"], "sk": item["sk"]} for item in items]
    assert same(sink.read_items(spec.source, keys), items)


@pytest.fixture(scope="module")
def cql_auth_endpoint() -> Iterator[Any]:
    """A second Cassandra node, with PasswordAuthenticator (superuser cassandra/cassandra),
    for this module's authentication tests only."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    from ddb_bridge.services import cassandra_node

    missing = cassandra_node.missing_tools()
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: needed to run Cassandra", pytrace=False)
    with cassandra_node.running_node(password_auth=True) as endpoint:
        # The node creates its superuser just after start-up: wait until it can log in.
        deadline = time.monotonic() + 60
        while True:
            cluster = Cluster(
                endpoint.hosts,
                port=endpoint.port,
                auth_provider=PlainTextAuthProvider("cassandra", "cassandra"),
            )
            try:
                cluster.connect()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
            finally:
                cluster.shutdown()
        yield endpoint


def test_password_authentication_right_wrong_and_missing(
    cql_auth_endpoint: Any, unique_name: Any
) -> None:
    """The sink's username/password reach PasswordAuthenticator; a wrong or missing password
    fails at open, fast, as a TargetError saying to check the credentials (apply stops)."""
    from bridge.model.errors import TargetError

    name = unique_name("auth").replace("-", "_")
    spec = TableSpec(source=name, target=name, hash_key="pk", hash_type="S")
    sink = ScyllaSink(cql_auth_endpoint.target(username="cassandra", password="cassandra"))
    try:
        sink.open([spec], create_schema=True)
        item = {"pk": {"S": "a"}, "v": {"N": "1"}}
        sink.write_batch([put(spec, item, BASE)])
        assert sink.read_items(name, [{"pk": {"S": "a"}}]) == [item]
    finally:
        sink.close()
    for credentials in ({"username": "cassandra", "password": "wrong"}, {}):
        refused = ScyllaSink(cql_auth_endpoint.target(**credentials))
        started = time.monotonic()
        with pytest.raises(TargetError, match="authentication failed"):
            refused.open([spec])
        assert time.monotonic() - started < 15, credentials
        refused.close()


def test_scan_keys_pages_through_more_rows_than_a_page(cql_sink: Any) -> None:
    sink, spec = cql_sink()
    items = [{"pk": {"S": f"p{i % 50}"}, "sk": {"N": str(i)}} for i in range(2600)]  # page: 2000
    for start in range(0, len(items), 500):
        sink.write_batch([put(spec, item, BASE) for item in items[start : start + 500]])
    scanned = [attrs.canonical_key(k) for k in sink.scan_keys(spec.source)]
    assert len(scanned) == len(set(scanned)) == len(items)
    assert set(scanned) == {attrs.canonical_key(item) for item in items}


# -- UNLOGGED batches (connectors/sinks/cql_batches.py) --------------------------------------


def shop_item(i: int, pk: str, sk: int, n: int) -> dict[str, Any]:
    """~350 bytes of DynamoDB JSON, the benchmarks' item shape."""
    return {
        "pk": {"S": pk},
        "sk": {"N": str(sk)},
        "n": {"N": str(n)},
        "name": {"S": f"Customer number {i} with a longish display name"},
        "email": {"S": f"customer{i}@example.com"},
        "balance": {"N": f"{i * 7 % 100000}.{i % 100:02d}"},
        "active": {"BOOL": i % 3 == 0},
        "tags": {"SS": ["retail", f"tier{i % 5}"]},
        "address": {"M": {"city": {"S": "Lisbon"}, "zip": {"S": f"{i % 99999:05d}"}}},
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_batched_writes_keep_last_write_wins_and_lose_no_row(cql_sink: Any, seed: int) -> None:
    """Random histories (writes, deletes, version ties) over 40 partitions of 3 rows, shuffled,
    duplicated and cut into write_batch calls of any size, sent as UNLOGGED batches: each row
    ends as the highest-ranked event for its key, and every live row's cell carries that
    event's version as its write time — each statement's own USING TIMESTAMP, never a
    batch's."""
    import random

    from bridge.model.versioning import rank

    rng = random.Random(seed)
    sink, spec = cql_sink(columns={"n": "bigint"})
    history: list[ChangeEvent] = []
    for p in range(40):
        for sk in range(3):
            keys = {"pk": {"S": f"p{p}"}, "sk": {"N": str(sk)}}
            for _ in range(rng.randint(1, 4)):
                version = BASE + rng.randint(0, 5)  # small range: ties happen
                if rng.random() < 0.3:
                    history.append(
                        ChangeEvent(spec.source, Op.REMOVE, keys, version, Origin.STREAM)
                    )
                else:
                    # One image per (key, version): two different images at one version
                    # are what versioning never makes (docs/design.md, section 5), and CQL
                    # would settle such a tie cell by cell.
                    item = shop_item(version - BASE, f"p{p}", sk, version)
                    history.append(put(spec, item, version))
    winners: dict[bytes, ChangeEvent] = {}
    for event in history:
        key = attrs.canonical_key(event.keys)
        if key not in winners or rank(event) > rank(winners[key]):
            winners[key] = event
    # Batching really happens against this node's token map: fewer requests than rows.
    assert len(sink.requests(list(winners.values()))) < len(winners) / 5

    arrivals = history + rng.sample(history, len(history) // 3)
    rng.shuffle(arrivals)
    at = 0
    while at < len(arrivals):
        size = rng.choice([1, 7, 10, 33, 150])
        sink.write_batch(arrivals[at : at + size])
        at += size

    keys = [event.keys for event in winners.values()]
    want = [None if e.is_delete else e.new_image for e in winners.values()]
    assert same(sink.read_items(spec.source, keys), want)
    live = {attrs.canonical_key(e.keys) for e in winners.values() if not e.is_delete}
    assert {attrs.canonical_key(k) for k in sink.scan_keys(spec.source)} == live
    table = f'"{sink.settings.keyspace}"."{spec.target}"'
    rows = sink._session.execute(f'SELECT "pk", "sk", WRITETIME("n") FROM {table}')
    written = {(row[0], int(row[1])): row[2] for row in rows}
    for event in winners.values():
        if not event.is_delete:
            where = (event.keys["pk"]["S"], int(event.keys["sk"]["N"]))
            assert written[where] == event.version, (where, written[where], event.version)


def test_a_row_the_server_refuses_inside_a_batch_is_named_and_the_rest_written(
    cql_sink: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Cassandra refuses a partition key over 65,535 bytes, and with it the whole batch the
    row is in: the sink sends that batch's rows again one by one, so the nine good rows are
    written and the error (the event apply then dead-letters) names the refused one."""
    from bridge.model.errors import PermanentError

    sink, spec = cql_sink(target={"batch_bytes": 1_000_000})
    good = [shop_item(i, f"good{i}", 1, i) for i in range(9)]
    bad = shop_item(9, "x" * 70_000, 1, 9)
    events = [put(spec, item, BASE) for item in [*good[:4], bad, *good[4:]]]
    assert len(sink.requests(events)) == 1  # all ten in one batch
    with pytest.raises(PermanentError, match=r"key \{\"pk\":\{\"S\":\"xxx.*[Kk]ey length"):
        sink.write_batch(events)
    keys = [{"pk": item["pk"], "sk": item["sk"]} for item in good]
    assert same(sink.read_items(spec.source, keys), good)
    assert "writing their rows one by one" in caplog.text


def test_batches_at_the_default_caps_draw_no_server_warning(
    cql_sink: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Cassandra warns (the driver logs 'Server warning', once per request) when an unlogged
    batch spans more than 10 partitions or passes 5 KiB; apply must not log that per
    request. The same rows with the caps raised draw the warning, so the check can fail."""
    items = [shop_item(i, f"w{i}", 1, i) for i in range(200)]
    sink, spec = cql_sink()
    with caplog.at_level("WARNING", logger="cassandra"):
        sink.write_batch([put(spec, item, BASE) for item in items])
    assert "Server warning" not in caplog.text
    loose, spec = cql_sink(target={"batch_rows": 40, "batch_bytes": 100_000})
    with caplog.at_level("WARNING", logger="cassandra"):
        loose.write_batch([put(spec, item, BASE) for item in items])
    assert "Server warning" in caplog.text
