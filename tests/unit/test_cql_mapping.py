"""The CQL sink without a server: statements and type mapping through the driver's own code.

A recording session stands in for the cluster only where a server would answer: it reads
the column types from the DDL the sink executed and, like a server preparing a statement,
returns a real `cassandra.query.PreparedStatement` whose bind markers carry those types.
Everything else — binding, serialization to the wire bytes, deserialization — is the
driver's own code (`BoundStatement.bind`, `cqltypes.*.serialize/from_binary`). Each value of
every DynamoDB type is serialized, decoded back, and turned into an item again.
Behaviour against a real node (Cassandra from Maven Central, or ScyllaDB at SCYLLA_HOSTS) is in
tests/integration/test_sink_contract.py and tests/integration/test_cql_sink.py.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import orjson
import pytest
from cassandra import cqltypes
from cassandra.protocol import ColumnMetadata
from cassandra.query import BoundStatement, PreparedStatement
from hypothesis import given, settings

from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import ConfigError, PermanentError, TargetError, TransientError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import ScyllaTarget
from connectors.sinks import scylla
from connectors.sinks.scylla import CqlTable, ScyllaSink
from tests import strategies
from tests.samples import COLLIDING_NUMBERS, EXTREME_NUMBERS, sample_item

PROTOCOL = 4
NOW = 1_800_000_000.0
BASE = 1_700_000_000_000_000


def cql_type(text: str) -> Any:
    """A CQL type name (`map<text, text>`) as the driver's type class."""
    names = cqltypes.cql_types_from_string(text)
    base = cqltypes._cqltypes[names[0]]
    if len(names) == 1:
        return base
    return base.apply_parameters([cqltypes._cqltypes[n] for n in names[1:]])


class RecordingSession:
    """Holds the DDL it is given and prepares statements against it, as a server would."""

    def __init__(self) -> None:
        self.executed: list[str] = []
        self.columns: dict[str, dict[str, str]] = {}

    def execute(self, statement: str) -> None:
        self.executed.append(statement)
        match = re.match(r"CREATE TABLE IF NOT EXISTS (\S+) \((.*)\)", statement, re.S)
        if match:
            cols = re.findall(r'^\s+"((?:[^"]|"")+)" (.+),$', match.group(2), re.M)
            self.columns[match.group(1)] = {n.replace('""', '"'): t for n, t in cols}

    def prepare(self, cql: str) -> PreparedStatement:
        table = re.search(r"(?:INTO|FROM) (\S+\.\S+)", cql).group(1)  # type: ignore[union-attr]
        types = self.columns[table]
        markers: list[tuple[str, str]] = []
        insert = re.match(r"INSERT INTO \S+ \((.*?)\) VALUES", cql)
        if insert:
            names = [n.replace('""', '"') for n in re.findall(r'"((?:[^"]|"")+)"', insert.group(1))]
            markers += [(n, types[n]) for n in names]
        if "USING TIMESTAMP ?" in cql:
            using = [("[timestamp]", "bigint")]
            if "AND TTL ?" in cql:
                using.append(("[ttl]", "int"))
            markers = using + markers if cql.startswith("DELETE") else markers + using
        where = re.search(r"WHERE (.*)$", cql)
        if where:
            for n in re.findall(r'"((?:[^"]|"")+)" = \?', where.group(1)):
                markers.append((n.replace('""', '"'), types[n.replace('""', '"')]))
        ks, tb = table.split(".")
        meta = [ColumnMetadata(ks, tb, n, cql_type(t)) for n, t in markers]
        return PreparedStatement(meta, b"id", [], cql, ks, PROTOCOL, [], None)


def open_sink(**spec_kwargs: Any) -> tuple[ScyllaSink, RecordingSession, CqlTable]:
    spec_kwargs.setdefault("range_key", "sk")
    spec_kwargs.setdefault("range_type", "N")
    spec = TableSpec(source="orders", target="orders", hash_key="pk", hash_type="S", **spec_kwargs)
    sink = ScyllaSink(ScyllaTarget(type="scylla", keyspace="ks"), clock=lambda: NOW)
    session = RecordingSession()
    sink._session = session  # what _connect would have returned
    sink.open([spec], create_schema=True)
    return sink, session, sink._cql["orders"]


def decode(bound: BoundStatement) -> dict[str, Any]:
    """The bound wire bytes decoded by the driver, by bind-marker name."""
    out = {}
    for meta, raw in zip(bound.prepared_statement.column_metadata, bound.values, strict=True):
        out[meta.name] = None if raw is None else meta.type.from_binary(raw, PROTOCOL)
    return out


def row_of(table: CqlTable, values: dict[str, Any]) -> list[Any]:
    """The row a SELECT would return after this INSERT."""
    names = [c.attribute for c in table.keys + table.typed] + [table.map_column]
    return [values[n] for n in names]


def write(sink: ScyllaSink, event: ChangeEvent) -> tuple[str, dict[str, Any]]:
    ((bound, _),) = sink.statements([event])
    return bound.prepared_statement.query_string, decode(bound)


def put(item: dict[str, Any], version: int = BASE) -> ChangeEvent:
    keys = {k: item[k] for k in ("pk", "sk") if k in item}
    return ChangeEvent("orders", Op.MODIFY, keys, version, Origin.STREAM, new_image=item)


TYPED = {
    "name": "text",
    "balance": "decimal",
    "active": "boolean",
    "blob": "blob",
    "tags": "set<text>",
    "scores": "set<decimal>",
    "bins": "set<blob>",
    "count": "bigint",
}


def test_ddl_for_keys_typed_columns_and_map() -> None:
    _, session, table = open_sink(columns={"sk": "bigint", "name": "text", "tags": "set<text>"})
    assert session.executed == [
        'CREATE KEYSPACE IF NOT EXISTS "ks" WITH replication = '
        "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}",
        'CREATE TABLE IF NOT EXISTS "ks"."orders" (\n'
        '    "pk" text,\n    "sk" bigint,\n    "name" text,\n    "tags" set<text>,\n'
        '    "attrs" map<text, text>,\n    PRIMARY KEY (("pk"), "sk")\n)',
    ]
    assert table.insert_cql == (
        'INSERT INTO "ks"."orders" ("pk", "sk", "name", "tags", "attrs") '
        "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
    )
    assert table.delete_cql == (
        'DELETE FROM "ks"."orders" USING TIMESTAMP ? WHERE "pk" = ? AND "sk" = ?'
    )


@pytest.mark.parametrize("columns", [{}, TYPED], ids=["map-only", "typed"])
def test_every_type_serializes_and_reads_back(columns: dict[str, str]) -> None:
    sink, _, table = open_sink(columns=columns)
    for i in range(8):
        item = sample_item(i)
        cql, values = write(sink, put(item, BASE + i))
        assert cql == table.insert_cql
        assert values["[timestamp]"] == BASE + i
        assert values["pk"] == item["pk"]["S"] and values["sk"] == Decimal(item["sk"]["N"])
        back = table.row_to_item(row_of(table, values))
        assert attrs.items_equal(back, item), (back, item)
        for name in set(columns) & set(item):  # a fitting value: its typed column, not the map
            assert values[name] is not None and name not in values["attrs"]


@settings(max_examples=60, deadline=None)
@given(strategies.items())
def test_arbitrary_items_round_trip_through_driver_serialization(item: dict[str, Any]) -> None:
    item["sk"] = {"N": "7"}  # the table's range key is N; pk may be any type: make it S
    item["pk"] = {"S": "k"}
    sink, _, table = open_sink(columns={"a": "text", "b": "decimal", "c": "set<blob>"})
    _, values = write(sink, put(item))
    assert attrs.items_equal(table.row_to_item(row_of(table, values)), item)


@settings(max_examples=60, deadline=None)
@given(strategies.items())
def test_apply_hands_the_sink_text_images_that_bind_as_parsed_images(item: dict[str, Any]) -> None:
    """The CQL sink takes apply's text path (its images checked on their text, parsed only
    when the sink reads them): every value it binds is what the parsed event binds."""
    from bridge.apply.screening import Screen
    from bridge.codec.avro import EventCodec
    from bridge.codec.image_text import TextImageEvent, image_ok
    from bridge.dlq.writer import RawRecord

    item["pk"], item["sk"] = {"S": "k"}, {"N": "7"}
    sink, _, table = open_sink(columns={"a": "text", "b": "decimal", "c": "set<blob>"})
    codec = EventCodec()
    parsed = put(item)
    try:
        value = codec.encode(parsed)
    except (attrs.AttributeTypeError, TypeError):
        return  # numbers the strategy spells in ways DynamoDB refuses: not an event
    screen = Screen(
        codec, lambda topic: "orders", [table.spec], image_text=sink.capabilities.image_text
    )
    ((got, _),) = screen.check_batch([RawRecord("t", 0, 0, parsed.key_bytes(), value)])
    # Images of plain compact text take the text path (others, e.g. nested past
    # image_text.DEPTH, the parsing one: as for every other sink).
    if image_ok(orjson.dumps(item)):
        assert type(got) is TextImageEvent
    assert decode(sink.statements([got])[0][0]) == decode(sink.statements([parsed])[0][0])


def test_a_value_that_does_not_fit_its_typed_column_goes_to_the_map() -> None:
    sink, _, table = open_sink(columns=TYPED)
    item = {
        "pk": {"S": "k"},
        "sk": {"N": "1"},
        "count": {"N": "1.5"},  # not an integer: not for bigint
        "balance": {"S": "n/a"},
        "name": {"N": "3"},
    }
    _, values = write(sink, put(item))
    assert values["count"] is None and values["balance"] is None and values["name"] is None
    assert set(values["attrs"]) == {"count", "balance", "name"}
    assert table.row_to_item(row_of(table, values)) == item


def test_full_image_nulls_absent_typed_columns_and_writes_the_whole_map() -> None:
    sink, _, _ = open_sink(columns=TYPED)
    _, values = write(sink, put({"pk": {"S": "k"}, "sk": {"N": "1"}, "x": {"S": "y"}}))
    # Every typed column is bound (null = a tombstone at this timestamp), none left unset,
    # and the map is one whole value (CQL: collection tombstone at v-1 plus these entries).
    assert all(values[c] is None for c in TYPED)
    assert dict(values["attrs"]) == {"x": '{"S":"y"}'}


def test_remove_is_a_timestamped_delete_and_number_keys_are_canonical() -> None:
    sink, _, table = open_sink()
    spellings = ["10", "10.0", "1E+1", "10.000"]
    wire = set()
    for spelling in spellings:
        event = ChangeEvent(
            "orders", Op.REMOVE, {"pk": {"S": "k"}, "sk": {"N": spelling}}, BASE, Origin.STREAM
        )
        ((bound, _),) = sink.statements([event])
        assert bound.prepared_statement.query_string == table.delete_cql
        assert decode(bound)["[timestamp]"] == BASE
        wire.add(tuple(bound.values))
    assert len(wire) == 1  # one partition token, one clustering value


def test_coalesces_to_one_statement_per_key_and_delete_wins_a_tie() -> None:
    sink, _, table = open_sink()
    item = {"pk": {"S": "k"}, "sk": {"N": "1"}}
    remove = ChangeEvent("orders", Op.REMOVE, item, BASE + 5, Origin.STREAM)
    bound = sink.statements([put(item, BASE + 5), remove, put(item, BASE + 1)])
    assert [b.prepared_statement.query_string for b, _ in bound] == [table.delete_cql]


@pytest.mark.parametrize("text", EXTREME_NUMBERS)
def test_number_keys_bind_exactly_at_dynamodbs_limits(text: str) -> None:
    sink, _, table = open_sink()
    _, values = write(sink, put({"pk": {"S": "k"}, "sk": {"N": text}}))
    assert values["sk"] == Decimal(text)  # the driver's own decoding of the bound bytes
    back = table.row_to_item(row_of(table, values))["sk"]["N"]
    assert attrs.normalize_number(back) == attrs.normalize_number(text)
    # Another spelling of the same number binds the very same bytes (one token, one row).
    sign, digits, exponent = Decimal(text).as_tuple()
    coefficient = int("".join(map(str, digits)))
    other = strategies.spell(bool(sign), coefficient, int(exponent), style=2, zeros=2)
    assert other != text and Decimal(other) == Decimal(text)
    (other_bound, _), (bound, _) = (
        sink.statements([put({"pk": {"S": "k"}, "sk": {"N": t}})])[0] for t in (other, text)
    )
    assert other_bound.values[1] == bound.values[1]


def test_keys_differing_in_the_38th_digit_are_two_rows() -> None:
    sink, _, _ = open_sink()
    a = {"pk": {"S": "k"}, "sk": {"N": COLLIDING_NUMBERS[0]}}
    b = {"pk": {"S": "k"}, "sk": {"N": COLLIDING_NUMBERS[1]}}
    bound = sink.statements([put(a), put(b)])
    assert len(bound) == 2  # not coalesced into one
    assert sorted(decode(s)["sk"] for s, _ in bound) == sorted(
        Decimal(k["sk"]["N"]) for k in (a, b)
    )


@pytest.mark.parametrize("text", EXTREME_NUMBERS)
def test_typed_number_columns_hold_exact_values(text: str) -> None:
    columns = {"amount": "decimal", "amounts": "set<decimal>", "whole": "varint"}
    sink, _, table = open_sink(columns=columns)
    whole = "9" * 38 + "E+88"  # the largest integer DynamoDB holds, for varint
    item = {
        "pk": {"S": "k"},
        "sk": {"N": "1"},
        "amount": {"N": text},
        "amounts": {"NS": [text] + [v for v in ("1E+125", "1E-130") if v != text]},
        "whole": {"N": whole},
    }
    _, values = write(sink, put(item))
    assert values["amount"] == Decimal(text)
    assert sorted(values["amounts"]) == sorted(Decimal(v) for v in item["amounts"]["NS"])
    assert values["whole"] == int("9" * 38) * 10**88
    assert not values["attrs"]  # every number fit its typed column
    assert attrs.items_equal(table.row_to_item(row_of(table, values)), item)


def test_decimal_wire_format_at_the_exponent_limits() -> None:
    """CQL decimal = int32 scale + varint unscaled: both limits fit without rounding."""
    decimal = cqltypes.DecimalType
    for text, scale, unscaled in [
        ("1E-130", 130, 1),
        ("1.2345678901234567890123456789012345678E-130", 167, int("1234567890" * 3 + "12345678")),
        ("-9.9999999999999999999999999999999999999E+125", -88, -(10**38 - 1)),
    ]:
        raw = decimal.serialize(attrs.parse_number(text), PROTOCOL)
        assert int.from_bytes(raw[:4], "big", signed=True) == scale
        assert int.from_bytes(raw[4:], "big", signed=True) == unscaled
        assert decimal.deserialize(raw, PROTOCOL) == Decimal(text)


@pytest.mark.parametrize(
    ("expires", "expected"),
    [
        (None, 0),  # no TTL attribute: TTL 0 = never
        ({"S": "tomorrow"}, 0),  # not a Number: DynamoDB's TTL ignores it
        ({"N": str(int(NOW) + 3600)}, 3600),
        ({"N": str(NOW + 0.2)}, 1),
        # Exact: 28-digit arithmetic rounds this 38-digit expiry to 3600 seconds left.
        ({"N": f"{int(NOW) + 3600}.{'0' * 27}1"}, 3601),
        # Capped a day before 2038-01-19T03:14:07Z: Cassandra refuses a later expiry.
        ({"N": str(int(NOW) + 10**10)}, 2**31 - 2 - 86_400 - int(NOW)),
        ({"N": str(int(NOW) * 1000)}, 2**31 - 2 - 86_400 - int(NOW)),  # milliseconds
        ({"N": str(int(NOW) - 6 * 365 * 86400)}, 0),  # too old for DynamoDB's TTL to act
        ({"N": str(int(NOW) - 10)}, "delete"),
        ({"N": str(int(NOW))}, "delete"),
    ],
)
def test_ttl(expires: dict[str, str] | None, expected: Any) -> None:
    sink, _, table = open_sink(ttl_attribute="expires")
    item = {"pk": {"S": "k"}, "sk": {"N": "1"}}
    if expires is not None:
        item["expires"] = expires
    cql, values = write(sink, put(item, BASE + 3))
    if expected == "delete":
        # Not skipped: the delete at this version shadows any older live version.
        assert cql == table.delete_cql and values["[timestamp]"] == BASE + 3
    else:
        assert cql == table.insert_cql and cql.endswith("USING TIMESTAMP ? AND TTL ?")
        assert values["[ttl]"] == expected and values["[timestamp]"] == BASE + 3


def test_events_that_cannot_be_bound_are_permanent_and_name_the_key() -> None:
    sink, _, _ = open_sink(columns={"sk": "int"})
    with pytest.raises(PermanentError, match=r"orders key .*99999999999"):
        sink.statements([put({"pk": {"S": "k"}, "sk": {"N": "99999999999"}})])
    with pytest.raises(PermanentError, match="the table's key is N"):
        sink.statements([put({"pk": {"S": "k"}, "sk": {"S": "1"}})])


@pytest.mark.parametrize(
    ("spec_kwargs", "message"),
    [
        ({"columns": {"price": "double"}}, "hold a DynamoDB value exactly"),
        ({"columns": {"sk": "text"}}, "key 'sk' is DynamoDB type N"),
        ({"columns": {"attrs": "text"}}, "map column"),
    ],
)
def test_mapping_config_errors(spec_kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_sink(**spec_kwargs)
    with pytest.raises(ConfigError, match="not a valid CQL table name"):
        CqlTable(TableSpec("orders-v2", "orders-v2", "pk", "S"), "ks")


def test_driver_errors_are_classified() -> None:
    from cassandra import (
        AuthenticationFailed,
        ConsistencyLevel,
        InvalidRequest,
        OperationTimedOut,
        Unavailable,
        WriteTimeout,
    )
    from cassandra.cluster import NoHostAvailable

    transient = [
        Unavailable("x", ConsistencyLevel.LOCAL_QUORUM, 2, 1),
        WriteTimeout("x", consistency=ConsistencyLevel.LOCAL_QUORUM, write_type=0),
        OperationTimedOut("x"),
        NoHostAvailable("down", {"10.0.0.1": ConnectionRefusedError()}),
    ]
    for exc in transient:
        assert isinstance(scylla.translate(exc, "w"), TransientError), exc
    assert type(scylla.translate(InvalidRequest("bad"), "w")) is PermanentError
    # A dropped table, in Cassandra 5.0's words (seen on a real node) and in ScyllaDB's.
    for gone in ("table t1 does not exist", "unconfigured table t1"):
        assert type(scylla.translate(InvalidRequest(gone), "w")) is TargetError, gone
    auth = NoHostAvailable("auth", {"10.0.0.1": AuthenticationFailed("no")})
    # The cluster refusing us is the target's fault, not an event's: never dead-lettered.
    assert isinstance(scylla.translate(auth, "connect"), TargetError)


def test_connection_options_reach_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    import cassandra.cluster

    seen: dict[str, Any] = {}

    class FakeCluster:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

        def connect(self) -> Any:
            return RecordingSession()

    monkeypatch.setattr(cassandra.cluster, "Cluster", FakeCluster)
    settings_ = ScyllaTarget(
        type="scylla",
        hosts=["h1", "h2"],
        username="u",
        password="p",  # type: ignore[arg-type]
        consistency="local_one",
    )
    ScyllaSink(settings_)._connect()
    profile = seen["execution_profiles"][cassandra.cluster.EXEC_PROFILE_DEFAULT]
    assert seen["contact_points"] == ["h1", "h2"]
    assert seen["auth_provider"].username == "u" and seen["auth_provider"].password == "p"
    assert profile.consistency_level == cassandra.ConsistencyLevel.LOCAL_ONE
    assert seen["ssl_context"] is None
    with pytest.raises(ConfigError, match="consistency"):
        ScyllaSink(ScyllaTarget(type="scylla", consistency="MOST"))._connect()


def test_tls_context_from_ca_and_client_certificate(tmp_path: Any) -> None:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=scylla",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    sink = ScyllaSink(
        ScyllaTarget(
            type="scylla",
            tls_ca_file=str(cert),
            tls_cert_file=str(cert),
            tls_key_file=str(key),
            tls_check_hostname=False,
        )
    )
    context = sink._ssl_context()
    assert context is not None and context.check_hostname is False
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "scylla"),),)


# -- the statements under CQL's reconciliation rules ----------------------------------------


class CqlRowModel:
    """CQL's documented last-write-wins rules for one partition, enough to check the
    statements' reasoning (not a server): a cell or row tombstone shadows data with a
    timestamp <= its own; a non-null collection in an INSERT writes a collection tombstone
    at ts-1 plus its elements at ts; null writes a cell (or collection) tombstone at ts;
    between equal timestamps a tombstone wins, then the greater value."""

    def __init__(self, table: CqlTable) -> None:
        self.table = table
        self.rows: dict[tuple[Any, ...], dict[str, Any]] = {}

    def apply(self, cql: str, values: dict[str, Any]) -> None:
        ts = values["[timestamp]"]
        key = tuple(values[c.attribute] for c in self.table.keys)
        row = self.rows.setdefault(key, {"marker": None, "deleted": None, "cells": {}})
        if cql.startswith("DELETE"):
            row["deleted"] = max(row["deleted"] or ts, ts)
            return
        row["marker"] = max(row["marker"] or ts, ts)
        for column in [*self.table.typed, None]:
            name = column.attribute if column else self.table.map_column
            value = values[name]
            collection = column is None or column.cql_type.startswith("set")
            if collection:
                cell = row["cells"].setdefault(name, {"tomb": None, "elements": {}})
                tomb = ts if value is None else ts - 1
                cell["tomb"] = max(cell["tomb"] or tomb, tomb)
                items = dict(value).items() if column is None else ((v, True) for v in value or ())
                for k, v in items:
                    held = cell["elements"].get(k)
                    if held is None or (ts, v) > held:
                        cell["elements"][k] = (ts, v)
            else:
                held = row["cells"].get(name)
                new = (ts, 1, None) if value is None else (ts, 0, value)  # tombstone wins ties
                if held is None or new[:2] > held[:2] or (new[:2] == held[:2] and new > held):
                    row["cells"][name] = new

    def read(self, key: tuple[Any, ...]) -> Item | None:
        row = self.rows.get(key)
        if row is None:
            return None
        dead = row["deleted"] if row["deleted"] is not None else -1
        values: list[Any] = []
        live = row["marker"] is not None and row["marker"] > dead
        for column in [*self.table.typed, None]:
            name = column.attribute if column else self.table.map_column
            cell = row["cells"].get(name)
            if column is None or column.cql_type.startswith("set"):
                floor = max(dead, cell["tomb"]) if cell and cell["tomb"] is not None else dead
                els = {
                    k: v
                    for k, (t, v) in (cell or {"elements": {}})["elements"].items()
                    if t > floor
                }
                live = live or bool(els)
                values.append((els if column is None else sorted(els)) or None)
            else:
                ok = cell is not None and cell[1] == 0 and cell[0] > dead
                live = live or ok
                values.append(cell[2] if ok else None)
        if not live:
            return None
        return self.table.row_to_item([*key, *values])


@pytest.mark.parametrize("seed", range(5))
def test_statements_give_last_write_wins_and_full_replacement_under_cql_rules(seed: int) -> None:
    import random

    rng = random.Random(seed)
    sink, _, table = open_sink(columns={"name": "text", "n": "bigint", "tags": "set<text>"})
    model = CqlRowModel(table)
    values_pool: list[dict[str, Any]] = [
        {"S": "x"},
        {"S": "y"},
        {"N": "5"},
        {"N": "2.5"},
        {"SS": ["a", "b"]},
        {"SS": ["c"]},
        {"M": {"q": {"BOOL": True}}},
        {"BOOL": False},
    ]
    events, final = [], {}
    for k in range(6):
        keys = {"pk": {"S": f"k{k}"}, "sk": {"N": "1"}}
        version, state = BASE, None
        for _ in range(rng.randint(1, 6)):
            version += rng.randint(1, 3)  # neighbouring versions: the v-1 tombstone matters
            if rng.random() < 0.25:
                events.append(ChangeEvent("orders", Op.REMOVE, keys, version, Origin.STREAM))
                state = None
            else:
                names = rng.sample(["name", "n", "tags", "other", "more"], rng.randint(0, 5))
                state = {**keys, **{n: rng.choice(values_pool) for n in names}}
                events.append(put(state, version))
        final[k] = (keys, state)
    events += rng.sample(events, len(events) // 2)
    rng.shuffle(events)
    for event in events:
        for bound, _ in sink.statements([event]):
            model.apply(bound.prepared_statement.query_string, decode(bound))
    for keys, state in final.values():
        got = model.read(tuple(table.key_values(keys)))
        assert (got is None) == (state is None), (keys, got, state)
        if state is not None:
            assert got is not None and attrs.items_equal(got, state), (got, state)


# -- write_batch through the driver's concurrent executor -----------------------------------


class _Future:
    """What `execute_concurrent` needs of a ResponseFuture; completed later by a thread.

    Like the driver's ResponseFuture, callbacks added after completion run at once: on a
    loaded machine the timer can complete a request before the sink attaches its callbacks,
    and a double that dropped that completion would hang the sink (not a sink bug).
    """

    _col_names = None
    _col_types = None
    has_more_pages = False

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self.callbacks: tuple[Any, ...] = ()
        self._outcome: tuple[bool, Any] | None = None

    def add_callbacks(  # the driver's ResponseFuture.add_callbacks signature
        self,
        callback: Any,
        errback: Any,
        callback_args: Any = (),
        callback_kwargs: Any = None,
        errback_args: Any = (),
        errback_kwargs: Any = None,
    ) -> None:
        with self._lock:
            self.callbacks = (callback, callback_args, errback, errback_args)
            outcome = self._outcome
        if outcome is not None:
            self._deliver(*outcome)

    def clear_callbacks(self) -> None:
        pass

    def complete(self, ok: bool, value: Any) -> None:
        with self._lock:
            self._outcome = (ok, value)
            ready = bool(self.callbacks)
        if ready:
            self._deliver(ok, value)

    def _deliver(self, ok: bool, value: Any) -> None:
        callback, args, errback, eargs = self.callbacks
        if ok:
            callback(value, *args)
        else:
            errback(value, *eargs)


class AsyncSession(RecordingSession):
    """Completes each request on a timer thread, counting how many are in flight."""

    def __init__(self, fail: Any = None) -> None:
        super().__init__()
        import threading

        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.sent: list[Any] = []
        self.fail = fail
        # Completions wait until a second request is in flight (or 5 s pass): on a loaded
        # machine a 2 ms timer could otherwise finish each request before the next is sent,
        # and a sink that does send concurrently would look serial.
        self.overlapped = threading.Event()

    def execute_async(self, statement: Any, params: Any, **_: Any) -> _Future:
        import threading

        future = _Future()
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.sent.append(statement)
            if self.in_flight > 1:
                self.overlapped.set()

        def complete() -> None:
            self.overlapped.wait(5)
            with self.lock:
                self.in_flight -= 1
            error = self.fail(statement) if self.fail else None
            future.complete(error is None, [] if error is None else error)

        threading.Timer(0.002, complete).start()
        return future


def _open_async(session: AsyncSession, concurrency: int, batch_rows: int = 1) -> ScyllaSink:
    """A sink on a double session; one request per row unless `batch_rows` says otherwise
    (tests/unit/test_cql_batches.py covers the batches)."""
    spec = TableSpec("orders", "orders", "pk", "S", "sk", "N")
    target = ScyllaTarget(
        type="scylla", keyspace="ks", concurrency=concurrency, batch_rows=batch_rows
    )
    sink = ScyllaSink(target)
    sink._session = session
    sink.open([spec], create_schema=True)
    return sink


def test_write_batch_bounds_requests_in_flight() -> None:
    session = AsyncSession()
    sink = _open_async(session, concurrency=4)
    sink.write_batch([put({"pk": {"S": f"k{i}"}, "sk": {"N": "1"}}) for i in range(60)])
    assert len(session.sent) == 60
    assert 1 < session.max_in_flight <= 4


def test_write_batch_failures_transient_first_then_permanent() -> None:
    from cassandra import ConsistencyLevel, InvalidRequest, Unavailable

    events = [put({"pk": {"S": f"k{i}"}, "sk": {"N": "1"}}) for i in range(10)]

    def some_unavailable(statement: Any) -> Exception | None:
        if statement.values[0] == b"k3":
            return InvalidRequest("rejected")
        if statement.values[0] == b"k7":
            return Unavailable("replicas down", ConsistencyLevel.LOCAL_QUORUM, 2, 1)
        return None

    with pytest.raises(TransientError, match="2 of 10 writes failed"):
        _open_async(AsyncSession(some_unavailable), 8).write_batch(events)

    def rejected(statement: Any) -> Exception | None:
        return InvalidRequest("rejected") if statement.values[0] == b"k3" else None

    with pytest.raises(PermanentError, match=r'orders key \{"pk":\{"S":"k3"\}'):
        _open_async(AsyncSession(rejected), 8).write_batch(events)


# -- identifiers --------------------------------------------------------------------------

_CQL_IDENT = re.compile(r'"((?:[^"]|"")*)"|([A-Za-z_][A-Za-z0-9_]*)')


def resolve(identifier: str) -> str:
    """A CQL identifier as the server reads it: unquoted names fold to lower case, quoted
    names keep every character ("" stands for one quote)."""
    match = _CQL_IDENT.fullmatch(identifier)
    assert match is not None, identifier
    quoted, bare = match.groups()
    return quoted.replace('""', '"') if quoted is not None else bare.lower()


def table_of(statement: str) -> tuple[str, str]:
    """The (keyspace, table) a statement addresses, resolved by CQL rules."""
    name = r'(?:"(?:[^"]|"")*"|\w+)'
    match = re.search(rf"(?:TABLE IF NOT EXISTS|INTO|FROM) ({name})\.({name})", statement)
    assert match is not None, statement
    return resolve(match.group(1)), resolve(match.group(2))


def test_keyspace_and_table_names_keep_their_case_in_every_statement() -> None:
    """`Orders` unquoted is `orders` to the server, which the sink then reports missing."""
    spec = TableSpec(source="Orders", target="Orders", hash_key="pk", hash_type="S")
    settings = ScyllaTarget(type="scylla", keyspace="Migrated_KS")
    keyspace_ddl, table_ddl = scylla.ddl(spec, settings)
    ks = re.match(r"CREATE KEYSPACE IF NOT EXISTS (\S+) WITH", keyspace_ddl)
    assert ks is not None and resolve(ks.group(1)) == "Migrated_KS"
    table = CqlTable(spec, "Migrated_KS")
    statements = [table_ddl, table.insert_cql, table.delete_cql, table.select_cql]
    statements.append(table.scan_cql)
    for statement in statements:
        assert table_of(statement) == ("Migrated_KS", "Orders"), statement


def test_open_without_create_finds_a_table_by_its_exact_name() -> None:
    class Meta:
        def __init__(self, tables: list[str]) -> None:
            self.tables = dict.fromkeys(tables)

    class Cluster:
        def __init__(self, keyspaces: dict[str, Meta]) -> None:
            self.metadata = type("M", (), {"keyspaces": keyspaces})()

    spec = TableSpec(source="Orders", target="Orders", hash_key="pk", hash_type="S")
    sink = ScyllaSink(ScyllaTarget(type="scylla", keyspace="KS"))
    session = RecordingSession()
    sink._session = session
    sink.open([spec], create_schema=True)  # records the table's columns for prepare
    sink._cluster = Cluster({"KS": Meta(["orders"])})  # what unquoted DDL would have made
    with pytest.raises(ConfigError, match="does not exist"):
        sink.open([spec])
    sink._cluster = Cluster({"KS": Meta(["Orders"])})
    sink.open([spec])


def test_any_attribute_name_as_key_typed_and_map_column() -> None:
    """Quotes, spaces, dots, non-ASCII and upper case in key, typed and map column names:
    each statement names exactly those columns, and an item round-trips through them."""
    hash_key, range_key, typed = 'Id "x" é.名', "Sort Key", "Price.Ü"
    spec = TableSpec(
        source="orders",
        target="orders",
        hash_key=hash_key,
        hash_type="S",
        range_key=range_key,
        range_type="N",
        columns={typed: "decimal"},
    )
    sink = ScyllaSink(ScyllaTarget(type="scylla", keyspace="ks", map_column="All Attrs"))
    session = RecordingSession()
    sink._session = session
    sink.open([spec], create_schema=True)
    table = sink._cql["orders"]
    (columns,) = session.columns.values()
    assert list(columns) == [hash_key, range_key, typed, "All Attrs"]
    primary = re.search(r"PRIMARY KEY \(\((.+)\), (.+)\)", session.executed[1])
    assert primary is not None
    assert [resolve(primary.group(1)), resolve(primary.group(2))] == [hash_key, range_key]

    item = {hash_key: {"S": "a"}, range_key: {"N": "2"}, typed: {"N": "1.5"}, "x y": {"S": "z"}}
    event = ChangeEvent(
        "orders",
        Op.MODIFY,
        {hash_key: item[hash_key], range_key: item[range_key]},
        BASE,
        Origin.STREAM,
        new_image=item,
    )
    ((bound, _),) = sink.statements([event])
    values = decode(bound)
    assert attrs.items_equal(table.row_to_item(row_of(table, values)), item)
    where = re.findall(r'("(?:[^"]|"")*") = \?', table.select_cql)
    assert [resolve(w) for w in where] == [hash_key, range_key]
