"""PostgreSQL-specific behaviour of the sink: outages, jsonb exactness, the live view, NUL."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from bridge.model import attrs
from bridge.model.errors import TransientError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import PostgresTarget
from connectors.sinks.postgres import PostgresSink
from tests.samples import COLLIDING_NUMBERS, EXTREME_NUMBERS, sample_item

pytestmark = pytest.mark.integration

BASE = 1_700_000_000_000_000


def _open(dsn: str, name: str) -> tuple[PostgresSink, TableSpec]:
    spec = TableSpec(
        source=name, target=name, hash_key="pk", hash_type="S", range_key="sk", range_type="N"
    )
    sink = PostgresSink(PostgresTarget(type="postgres", dsn=dsn))
    sink.open([spec], create_schema=True)
    return sink, spec


def _put(spec: TableSpec, item: dict[str, Any], version: int) -> ChangeEvent:
    keys = {"pk": item["pk"], "sk": item["sk"]}
    return ChangeEvent(spec.source, Op.MODIFY, keys, version, Origin.STREAM, new_image=item)


def test_server_down_is_transient_and_the_sink_reconnects(
    pg_cluster: Any, pg_dsn: str, unique_name: Any
) -> None:
    if pg_cluster is None:
        pytest.skip(
            "PG_DSN points at an external server: this test stops and starts its own cluster"
        )
    sink, spec = _open(pg_dsn, unique_name("down"))
    try:
        sink.write_batch([_put(spec, sample_item(1), BASE)])
        pg_cluster.stop()
        try:
            with pytest.raises(TransientError):
                sink.write_batch([_put(spec, sample_item(2), BASE)])
            with pytest.raises(TransientError):  # still down: connecting fails, also transient
                sink.write_batch([_put(spec, sample_item(2), BASE)])
        finally:
            pg_cluster.start()
        sink.write_batch([_put(spec, sample_item(2), BASE)])
        got = sink.read_items(
            spec.source, [{"pk": sample_item(i)["pk"], "sk": sample_item(i)["sk"]} for i in (1, 2)]
        )
        assert [
            attrs.items_equal(g, sample_item(i)) for g, i in zip(got, (1, 2), strict=True) if g
        ] == [True, True]
    finally:
        sink.close()


def test_jsonb_keeps_numbers_exact_and_view_hides_tombstones(pg_dsn: str, unique_name: Any) -> None:
    sink, spec = _open(pg_dsn, unique_name("exact"))
    try:
        live, gone = sample_item(1), sample_item(2)
        gone_keys = {"pk": gone["pk"], "sk": gone["sk"]}
        sink.write_batch(
            [
                _put(spec, live, BASE),
                _put(spec, gone, BASE),
                ChangeEvent(spec.source, Op.REMOVE, gone_keys, BASE + 1, Origin.STREAM),
            ]
        )
        with psycopg.connect(pg_dsn) as conn:
            view = f'"{spec.target}_live"'
            row = conn.execute(
                f"SELECT item->'balance'->>'N', pg_typeof(item)::text, version FROM {view}"
            ).fetchall()
            assert row == [("12345678901234567890.123456789012345678", "jsonb", BASE)]
            tomb = conn.execute(
                f'SELECT deleted, item, version, sk FROM "{spec.target}" WHERE pk = %s',
                (gone["pk"]["S"],),
            ).fetchone()
            assert tomb is not None and tomb[:3] == (True, None, BASE + 1)
            assert str(tomb[3]) == gone["sk"]["N"]
    finally:
        sink.close()


def test_nul_characters_survive_beside_a_readable_jsonb_copy(pg_dsn: str, unique_name: Any) -> None:
    sink, spec = _open(pg_dsn, unique_name("nul"))
    try:
        keys = {"pk": {"S": "k"}, "sk": {"N": "1"}}
        item = {**keys, "a\x00": {"S": "x\x00y"}, "l": {"L": [{"SS": ["\x00"]}]}}
        sink.write_batch([_put(spec, item, BASE)])
        assert sink.read_items(spec.source, [keys]) == [item]
        with psycopg.connect(pg_dsn) as conn:
            readable = conn.execute(
                f"SELECT item->'a\ufffd'->>'S' FROM \"{spec.target}\""
            ).fetchone()
        assert readable == ("x\ufffdy",)
    finally:
        sink.close()


def test_a_key_postgres_text_cannot_hold_is_permanent_and_named(
    pg_dsn: str, unique_name: Any
) -> None:
    from bridge.model.errors import PermanentError

    sink, spec = _open(pg_dsn, unique_name("nulkey"))
    try:
        item = {"pk": {"S": "a\x00b"}, "sk": {"N": "1"}}
        with pytest.raises(PermanentError, match=r"key .*a\\u0000b"):
            sink.write_batch([_put(spec, item, BASE)])
        sink.write_batch([_put(spec, sample_item(3), BASE)])  # the connection is still usable
    finally:
        sink.close()


def test_numeric_keys_hold_exact_values_at_dynamodbs_limits(pg_dsn: str, unique_name: Any) -> None:
    """Issue 9, item 1: keys differing in the 38th digit are two rows, each value exact."""
    sink, spec = _open(pg_dsn, unique_name("numbers"))
    items = [{"pk": {"S": "k"}, "sk": {"N": n}, "v": {"S": n}} for n in EXTREME_NUMBERS]
    try:
        sink.write_batch([_put(spec, it, BASE) for it in items])
        keys = [{"pk": it["pk"], "sk": it["sk"]} for it in items]
        assert sink.read_items(spec.source, keys) == items
        scanned = sorted(attrs.normalize_number(k["sk"]["N"]) for k in sink.scan_keys(spec.source))
        assert scanned == sorted(attrs.normalize_number(n) for n in EXTREME_NUMBERS)
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute(
                f"SELECT sk::text, item->'v'->>'S', pg_typeof(sk)::text FROM \"{spec.target}\""
            ).fetchall()
    finally:
        sink.close()
    assert len(rows) == len(EXTREME_NUMBERS)
    for numeric_text, written, column_type in rows:
        assert column_type == "numeric"
        assert attrs.normalize_number(numeric_text) == attrs.normalize_number(written)
    by_value = {written: numeric_text for numeric_text, written, _ in rows}
    assert by_value[COLLIDING_NUMBERS[0]] == COLLIDING_NUMBERS[0]
    assert by_value["1E-130"] == "0." + "0" * 129 + "1"
    assert by_value["9.9999999999999999999999999999999999999E+125"] == "9" * 38 + "0" * 88
