"""Whose fault is it: one event's (dead letter) or the target's (wait or stop, never DLQ)?

BatchProcessor with in-memory fakes; the sinks' translations with the drivers' own
exception types (cassandra-driver, botocore, sqlite3). PostgreSQL and SQLite refusing
through Kafka are in tests/integration/test_apply_refusals.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bridge.apply.app import table_resolver
from bridge.apply.processor import BLOCKED, TARGET_ERRORS, BatchProcessor
from bridge.apply.retry import Backoff
from bridge.codec.avro import EventCodec
from bridge.dlq.writer import HEADER_OFFSET, HEADER_REASON, DeadLetter, RawRecord
from bridge.model.errors import PermanentError, TargetError, TransientError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.metrics import Metrics
from bridge.runtime.settings import KafkaSettings, Settings
from tests.apply_harness import MemorySink, table_spec

CODEC = EventCodec()


def ev(key: str, version: int, table: str = "t", **image: Any) -> ChangeEvent:
    keys = {"pk": {"S": key}, "sk": {"N": "1"}}
    return ChangeEvent(
        table=table,
        op=Op.MODIFY,
        keys=keys,
        version=version,
        origin=Origin.STREAM,
        new_image={**keys, "v": {"N": str(version)}, **image},
    )


def records(events: Sequence[ChangeEvent]) -> list[RawRecord]:
    return [
        RawRecord("ddb.t.changes", 0, i, e.key_bytes(), CODEC.encode(e))
        for i, e in enumerate(events)
    ]


class Letters:
    def __init__(self) -> None:
        self.sent: list[DeadLetter] = []

    def send(self, letter: DeadLetter) -> None:
        self.sent.append(letter)

    def flush(self) -> None:
        pass


class RefusingSink(MemorySink):
    """Refuses every write with `error` while `refusals` > 0 (then writes normally)."""

    def __init__(self, error: Exception, refusals: int = 10**6) -> None:
        super().__init__()
        self.error = error
        self.refusals = refusals

    def write_batch(self, events: Sequence[ChangeEvent]) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            self.calls += 1
            raise self.error
        super().write_batch(events)


def processor(sink: Any, letters: Letters, metrics: Metrics, **kw: Any) -> BatchProcessor:
    sink.open([table_spec("t")])
    return BatchProcessor(
        sink,
        "mem",
        letters,
        table_resolver(Settings(kafka=KafkaSettings()), [table_spec("t")]),
        backoff=Backoff(1, 2, **kw),
        metrics=metrics,
        specs=[table_spec("t")],
    )


def test_a_target_wide_refusal_stops_the_batch_without_dead_letters() -> None:
    sink = RefusingSink(TargetError("permission denied for table t", table="t"))
    letters, metrics = Letters(), Metrics()
    with pytest.raises(TargetError, match="permission denied"):
        processor(sink, letters, metrics).process(records([ev("a", 1), ev("b", 2)]))
    assert letters.sent == []
    assert sink.calls == 1  # not written one event at a time: no event is to blame
    assert metrics.get(TARGET_ERRORS, target="mem") == 1


def test_a_retryable_refusal_is_waited_for_and_then_written() -> None:
    sink = RefusingSink(TargetError("read-only", retryable=True), refusals=3)
    letters, metrics = Letters(), Metrics()
    result = processor(sink, letters, metrics).process(records([ev("a", 1)]))
    assert result.written == 1 and letters.sent == []
    assert sink.version_of("t", ev("a", 1).key_bytes()) == 1
    assert metrics.get(TARGET_ERRORS, target="mem") == 3
    assert metrics.get(BLOCKED, target="mem") == 0  # cleared by the successful write


def test_a_retryable_refusal_that_persists_past_max_retries_stops() -> None:
    sink = RefusingSink(TargetError("read-only", retryable=True))
    letters = Letters()
    with pytest.raises(TargetError):
        processor(sink, letters, Metrics(), max_retries=2).process(records([ev("a", 1)]))
    assert letters.sent == [] and sink.calls == 3


def test_a_refused_newest_event_falls_back_to_the_keys_next_newest() -> None:
    """As if the batch had ended before the refused event: the row ends where batches of
    one event would leave it, and only the refused event is dead-lettered."""
    sink = MemorySink(poison=lambda e: e.version == 5)
    letters = Letters()
    batch = records([ev("a", 3), ev("a", 5), ev("b", 4), ev("a", 2)])
    result = processor(sink, letters, Metrics()).process(batch)
    assert [dict(x.headers("mem"))[HEADER_OFFSET] for x in letters.sent] == [b"1"]
    assert sink.version_of("t", ev("a", 1).key_bytes()) == 3
    assert sink.version_of("t", ev("b", 1).key_bytes()) == 4
    assert result.written == 2 and result.dead == 1


def test_malformed_records_are_dead_lettered_one_by_one_and_the_rest_written() -> None:
    good = ev("ok", 7)
    two_tags = ChangeEvent(
        table="t",
        op=Op.MODIFY,
        keys={"pk": {"S": "x", "N": "1"}, "sk": {"N": "1"}},
        version=1,
        origin=Origin.STREAM,
        new_image={"pk": {"S": "x"}, "sk": {"N": "1"}},
    )
    huge = ChangeEvent(
        table="t",
        op=Op.REMOVE,
        keys={"pk": {"S": "x"}, "sk": {"N": "1e999999999"}},
        version=1,
        origin=Origin.STREAM,
    )
    batch = [
        *records([good]),
        RawRecord("ddb.t.changes", 0, 1, b"k", CODEC.encode(two_tags)),
        RawRecord("ddb.t.changes", 0, 2, b"k", CODEC.encode(huge)),
    ]
    sink, letters = MemorySink(), Letters()
    result = processor(sink, letters, Metrics()).process(batch)
    assert result.dead == 2 and result.written == 1
    reasons = {dict(x.headers("mem"))[HEADER_OFFSET]: x.reason for x in letters.sent}
    assert set(reasons) == {b"1", b"2"}
    assert all(r.startswith("malformed event") for r in reasons.values())
    assert sink.version_of("t", good.key_bytes()) == 7
    assert all(dict(x.headers("mem"))[HEADER_REASON] for x in letters.sent)


# -- the sinks' translations, with the drivers' own exception types --------------------------


def test_cql_refusals_of_the_cluster_are_target_errors() -> None:
    from cassandra import (
        AuthenticationFailed,
        ConfigurationException,
        InvalidRequest,
        Unauthorized,
    )
    from cassandra.cluster import NoHostAvailable

    from connectors.sinks import scylla

    target = [
        Unauthorized(
            "User app has no MODIFY permission on <table ks.orders> or any of its parents"
        ),
        InvalidRequest(
            'Error from server: code=2200 [Invalid query] message="unconfigured table orders"'
        ),
        InvalidRequest("Keyspace 'migrated' does not exist"),
        InvalidRequest("Undefined column name attrs"),
        ConfigurationException("Cannot add column to a dropped table"),
        NoHostAvailable("auth", {"10.0.0.1": AuthenticationFailed("bad credentials")}),
    ]
    for exc in target:
        error = scylla.translate(exc, "write 3 statements")
        assert isinstance(error, TargetError) and not error.retryable, exc
    value = scylla.translate(InvalidRequest("Key length of 70000 is longer than maximum"), "w")
    assert type(value) is PermanentError


def _client_error(code: str, operation: str = "PutItem") -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": f"{code} (test)"}}, operation)


def test_alternator_refusals_of_the_endpoint_are_target_errors() -> None:
    from connectors.sinks import alternator

    for code in (
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ResourceNotFoundException",
    ):
        error = alternator.translate(_client_error(code), "PutItem orders")
        assert isinstance(error, TargetError) and not error.retryable, code
    for code in ("ExpiredTokenException", "ExpiredToken"):
        error = alternator.translate(_client_error(code), "PutItem orders")
        assert isinstance(error, TargetError) and error.retryable, code
    assert type(alternator.translate(_client_error("ValidationException"), "w")) is PermanentError
    throttled = alternator.translate(_client_error("ProvisionedThroughputExceededException"), "w")
    assert isinstance(throttled, TransientError)


def test_alternator_batch_with_one_access_denied_raises_the_target_error_naming_the_table() -> None:
    from connectors.sinks import alternator
    from connectors.sinks.common import raise_failures

    failures = [
        (ev("a", 1), _client_error("ValidationException")),
        (ev("b", 1), _client_error("AccessDeniedException")),
    ]
    with pytest.raises(TargetError) as caught:
        raise_failures(failures, 2, alternator.translate)
    assert caught.value.table == "t"


def _sqlite_readonly_file(path: Path) -> None:
    """A database SQLite opens read-only whoever we are (root included): a file format
    write version above 2 (header byte 18) makes every connection that opens it read-only."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with path.open("r+b") as f:
        f.seek(18)
        f.write(b"\x03")


def test_sqlite_refusals_of_the_database_are_target_errors(tmp_path: Path) -> None:
    from connectors.sinks import sqlite

    path = tmp_path / "ro.db"
    _sqlite_readonly_file(path)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.Error) as readonly:
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.Error) as missing:
        conn.execute("INSERT INTO gone VALUES (1)")
    conn.close()
    assert isinstance(sqlite._translate(readonly.value, "write", "t"), TargetError)
    assert isinstance(sqlite._translate(missing.value, "write", "gone"), TargetError)
    mem = sqlite3.connect(":memory:")
    mem.execute("CREATE TABLE c (x TEXT CHECK (length(x) < 3))")
    with pytest.raises(sqlite3.Error) as value:
        mem.execute("INSERT INTO c VALUES ('long')")
    assert type(sqlite._translate(value.value, "write")) is PermanentError
