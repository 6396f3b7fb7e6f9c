"""The CQL sink's requests without a server: rows packed into UNLOGGED batches by owner
within the row and byte caps, and a batch's failure turned into the same errors as rows
sent alone (a refused row still named, and dead-lettered, on its own).

The double session and the statements are test_cql_mapping.py's (the driver's own binding
and BatchStatement); against a real node: tests/integration/test_cql_sink.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from cassandra import ConsistencyLevel, InvalidRequest, Unavailable
from cassandra.query import BatchStatement, BatchType, BoundStatement
from hypothesis import given
from hypothesis import strategies as st

from bridge.model.errors import PermanentError, TargetError, TransientError
from bridge.model.event import ChangeEvent, Op, Origin
from connectors.sinks.cql_batches import bound_bytes, no_owner, pack, replica_owner
from tests.unit.test_cql_mapping import BASE, AsyncSession, _open_async, put


def row_keys(statement: Any) -> list[bytes]:
    """The partition key bytes of every row a request carries (first bound value of the
    INSERTs these tests write)."""
    if isinstance(statement, BatchStatement):
        return [values[0] for _, _, values in statement._statements_and_parameters]
    return [statement.values[0]]


def events(n: int) -> list[ChangeEvent]:
    return [put({"pk": {"S": f"k{i}"}, "sk": {"N": "1"}}, BASE + i) for i in range(n)]


# -- packing ---------------------------------------------------------------------------------


def fake_row(i: int, size: int, table: str = "t") -> tuple[Any, ChangeEvent]:
    statement = SimpleNamespace(values=[b"x" * size, None], owner_hint=i)
    event = ChangeEvent(table, Op.MODIFY, {"pk": {"S": str(i)}}, BASE, Origin.STREAM, {})
    return statement, event


@given(
    sizes=st.lists(st.integers(0, 500), max_size=60),
    owners=st.lists(st.integers(0, 3), min_size=60, max_size=60),
    tables=st.lists(st.sampled_from(["a", "b"]), min_size=60, max_size=60),
    max_rows=st.integers(1, 12),
    max_bytes=st.integers(1, 2000),
)
def test_pack_keeps_every_row_once_within_the_caps_and_never_mixes_owners(
    sizes: list[int], owners: list[int], tables: list[str], max_rows: int, max_bytes: int
) -> None:
    rows = [fake_row(i, size, tables[i]) for i, size in enumerate(sizes)]
    requests = list(pack(rows, lambda s: owners[s.owner_hint], max_rows, max_bytes))
    flat = [row for request in requests for row in request.rows]
    assert sorted(id(s) for s, _ in flat) == sorted(id(s) for s, _ in rows)  # each row once
    for request in requests:
        assert 1 <= len(request.rows) <= max_rows
        assert request.bytes == sum(bound_bytes(s) for s, _ in request.rows)
        assert request.bytes <= max_bytes or len(request.rows) == 1  # a big row goes alone
        assert len({(e.table, owners[s.owner_hint]) for s, e in request.rows}) == 1
        order = [s.owner_hint for s, _ in request.rows]
        assert order == sorted(order)


def test_pack_fills_requests_to_the_row_cap_and_the_byte_cap() -> None:
    rows = [fake_row(i, 100) for i in range(25)]
    assert [len(r.rows) for r in pack(rows, no_owner, 10, 10_000)] == [10, 10, 5]
    assert [len(r.rows) for r in pack(rows, no_owner, 10, 350)] == [3] * 8 + [1]
    big = [fake_row(0, 100), fake_row(1, 5000), fake_row(2, 100)]
    # The big row goes alone (at once); the rows around it still share one request.
    assert [len(r.rows) for r in pack(big, no_owner, 10, 4096)] == [1, 2]


def test_replica_owner_reads_the_token_map_and_falls_back_to_one_owner() -> None:
    """Rows whose partitions different replica sets own are never batched together."""
    replicas = {b"a": ["h1", "h2"], b"b": ["h2", "h3"], b"c": ["h2", "h1"]}
    token_map = SimpleNamespace(
        token_class=SimpleNamespace(from_key=lambda key: key),
        get_replicas=lambda keyspace, token: replicas[token] if keyspace == "ks" else [],
    )
    owner = replica_owner(SimpleNamespace(metadata=SimpleNamespace(token_map=token_map)))
    statement = SimpleNamespace(keyspace="ks", routing_key=b"a")
    assert owner(statement) == owner(SimpleNamespace(keyspace="ks", routing_key=b"c"))
    assert owner(statement) != owner(SimpleNamespace(keyspace="ks", routing_key=b"b"))
    assert owner(SimpleNamespace(keyspace="ks", routing_key=None)) is None
    assert replica_owner(None) is no_owner
    assert replica_owner(SimpleNamespace(metadata=SimpleNamespace(token_map=None))) is no_owner


def test_replica_owner_on_a_murmur3_ring_answers_what_the_drivers_lookup_answers() -> None:
    """The ring snapshot (integer tokens, one set of hosts per range) against the driver's
    own `TokenMap.get_replicas`, for keys all around the ring, past its last token too."""
    from cassandra.metadata import Murmur3Token, TokenMap

    ring = sorted(Murmur3Token(t) for t in (-(2**62), -5, 0, 2**40, 2**62))
    hosts = ["h1", "h2", "h3"]
    token_map = TokenMap.__new__(TokenMap)
    token_map.token_class = Murmur3Token
    token_map.ring = ring
    token_map.tokens_to_hosts_by_ks = {
        "ks": {token: [hosts[i % 3], hosts[(i + 1) % 3]] for i, token in enumerate(ring)}
    }
    owner = replica_owner(SimpleNamespace(metadata=SimpleNamespace(token_map=token_map)))
    for i in range(2000):
        key = f"key-{i}".encode()
        expected = frozenset(token_map.get_replicas("ks", Murmur3Token.from_key(key)))
        assert owner(SimpleNamespace(keyspace="ks", routing_key=key)) == expected
    assert owner(SimpleNamespace(keyspace="ks", routing_key=None)) is None


# -- write_batch -----------------------------------------------------------------------------


def test_write_batch_sends_unlogged_batches_of_the_bound_rows() -> None:
    session = AsyncSession()
    sink = _open_async(session, concurrency=4, batch_rows=10)
    batch = events(60)
    sink.write_batch(batch)
    assert len(session.sent) == 6
    assert all(isinstance(s, BatchStatement) for s in session.sent)
    assert {s.batch_type for s in session.sent} == {BatchType.UNLOGGED}
    assert all(s.is_idempotent for s in session.sent)
    # The very statements a request per row would send, each with its own USING TIMESTAMP
    # value bound: nothing added, lost or changed by the batch.
    bound = sink.statements(batch)
    sent = [tuple(v) for s in session.sent for _, _, v in s._statements_and_parameters]
    assert sorted(sent) == sorted(tuple(statement.values) for statement, _ in bound)
    assert all("USING TIMESTAMP ?" in s.prepared_statement.query_string for s, _ in bound)


def test_one_row_is_sent_as_its_statement_not_a_batch() -> None:
    session = AsyncSession()
    session.overlapped.set()  # one request: no second one to wait for
    _open_async(session, concurrency=4, batch_rows=10).write_batch(events(1))
    (sent,) = session.sent
    assert isinstance(sent, BoundStatement)


def test_a_refused_batch_is_resent_row_by_row_and_the_refused_row_is_named() -> None:
    """A batch fails as a whole: only rows sent alone tell the refused row (dead-lettered
    with its own reason) from the rows the server takes (written)."""

    def refuse_k3(statement: Any) -> Exception | None:
        if b"k3" in row_keys(statement):
            return InvalidRequest("Key length of 70000 is too long")
        return None

    session = AsyncSession(refuse_k3)
    with pytest.raises(PermanentError, match=r'orders key \{"pk":\{"S":"k3"\}.*Key length'):
        _open_async(session, concurrency=4, batch_rows=10).write_batch(events(20))
    batches = [s for s in session.sent if isinstance(s, BatchStatement)]
    alone = [row_keys(s)[0] for s in session.sent if not isinstance(s, BatchStatement)]
    assert len(batches) == 2
    # Only the refused batch's rows are sent again, each once.
    assert sorted(alone) == sorted(f"k{i}".encode() for i in range(10))


@pytest.mark.parametrize(
    ("error", "raised", "message"),
    [
        (
            Unavailable("replicas down", ConsistencyLevel.LOCAL_QUORUM, 2, 1),
            TransientError,
            "10 of 20 writes failed",
        ),
        (InvalidRequest("unconfigured table orders"), TargetError, "unconfigured table"),
    ],
)
def test_a_batch_failing_for_no_rows_fault_fails_all_its_rows_without_resending(
    error: Exception, raised: type[Exception], message: str
) -> None:
    session = AsyncSession(lambda s: error if b"k7" in row_keys(s) else None)
    with pytest.raises(raised, match=message):
        _open_async(session, concurrency=4, batch_rows=10).write_batch(events(20))
    assert len(session.sent) == 2
