"""Which dead letters a re-drive takes: positions, reason filter, ledger, undecodable."""

from __future__ import annotations

import pytest

from bridge.codec.avro import EventCodec
from bridge.dlq.redrive import change_time_ms, select
from bridge.dlq.topic import DlqRecord, parse_position
from bridge.dlq.writer import HEADER_REASON
from bridge.model import attrs
from bridge.model.errors import ConfigError
from bridge.model.event import ChangeEvent, Op, Origin

CODEC = EventCodec()


def _record(offset: int, reason: str, value: bytes | None) -> DlqRecord:
    return DlqRecord(0, offset, None, b"k", value, ((HEADER_REASON, reason.encode()),))


def _event(version: int) -> ChangeEvent:
    keys = {"pk": {"S": "a"}}
    return ChangeEvent(table="t", op=Op.REMOVE, keys=keys, version=version, origin=Origin.SCAN)


def test_parse_position() -> None:
    assert parse_position(" 3:17 ") == (3, 17)
    for bad in ("3", "a:1", "1:-2", ""):
        with pytest.raises(ConfigError, match="PARTITION:OFFSET|negative"):
            parse_position(bad)


def test_select_sorts_out_redriven_and_undecodable() -> None:
    good = CODEC.encode(_event(5_000_000))
    records = [
        _record(0, "PostgreSQL [23514] check", good),
        _record(1, "PostgreSQL [23514] check", good),
        _record(2, "undecodable value", b"junk"),
        _record(3, "other", good),
        _record(4, "no value", None),
    ]
    chosen = select(records, {"0:1": "{}"}, CODEC, None, "23514")
    assert [(c.record.offset, c.verdict) for c in chosen] == [(0, "redrive"), (1, "already")]
    every = select(records, {}, CODEC, None, None)
    assert [c.verdict for c in every] == [
        "redrive",
        "redrive",
        "undecodable",
        "redrive",
        "undecodable",
    ]
    assert every[4].why == "no value" and "leading bytes" in every[2].why
    assert [c.record.offset for c in select(records, {}, CODEC, {(0, 3), (0, 9)}, None)] == [3]
    assert attrs.dumps(every[0].event.keys) == '{"pk":{"S":"a"}}'  # type: ignore[union-attr]


def test_change_time_is_the_events() -> None:
    assert change_time_ms(_event(5_000_000)) == 5_000
    stream = ChangeEvent(
        table="t",
        op=Op.REMOVE,
        keys={},
        version=9,
        origin=Origin.STREAM,
        approximate_creation_time_ms=1234,
    )
    assert change_time_ms(stream) == 1234
    assert change_time_ms(None) is None


def test_a_bad_export_line_is_never_taken_for_a_change_record() -> None:
    line = DlqRecord(
        0,
        7,
        None,
        b"data/x.json.gz:3",
        b'{"Item": ',
        (("ddb.file", b"data/x.json.gz"), ("ddb.line", b"3"), ("ddb.reason", b"bad JSON")),
    )
    assert (line.reason, line.error, line.export_line) == (
        "bad JSON",
        "BadExportLine",
        ("data/x.json.gz", 3),
    )
    (c,) = select([line], {}, CODEC, None, None)
    assert c.verdict == "undecodable" and "export file data/x.json.gz line 3" in c.why
