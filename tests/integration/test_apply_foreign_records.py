"""Records another producer put on a changes topic, through a real broker into SQLite.

Whatever a foreign producer writes — a value that does not decode, no key, another item's
key, keys with two type tags or a billion-digit exponent, a missing or mistyped key
attribute, a malformed image, an event of another table — goes to the DLQ with its
reason, and apply goes on (on main, a malformed key crashed apply, again after every
restart). The same topic content applied with batches of 1, 7 and 500 records dead-letters
the same records and leaves the same target: which records are dead-lettered does not
depend on batch boundaries.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Producer

from bridge.apply.app import group_id
from bridge.codec.avro import SINGLE_OBJECT_MAGIC, EventCodec, event_to_record
from bridge.dlq.writer import HEADER_ERROR, HEADER_REASON, HEADER_TARGET
from bridge.kafka.lag import group_lag
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.model.versioning import wins
from bridge.runtime.settings import NullTarget, SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from tests.apply_harness import (
    History,
    apply_settings,
    assert_target_matches,
    produce,
    run_in_process,
    table_spec,
)
from tests.kafka_helpers import consume_all, drain_more

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CODEC = EventCodec()


def _keys(pk: str, sk: str = "1") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": sk}}


def _event(table: str, keys: Any, version: int, **kw: Any) -> ChangeEvent:
    kw.setdefault("op", Op.MODIFY)
    if "new_image" not in kw and kw["op"] is not Op.REMOVE:
        kw["new_image"] = {**keys, "v": {"N": str(version)}}
    return ChangeEvent(table=table, keys=keys, version=version, origin=Origin.STREAM, **kw)


def _valid(table: str) -> list[ChangeEvent]:
    """Ordinary traffic: 20 keys, a few versions each, some deleted."""
    out = []
    for i in range(60):
        key = _keys(f"g{i % 20}")
        if i % 11 == 5:
            out.append(_event(table, key, 1000 + i, op=Op.REMOVE))
        else:
            out.append(_event(table, key, 1000 + i))
    return out


def _with_image_text(event: ChangeEvent, image_text: str) -> bytes:
    """The event's record with `new_image` as given JSON text: nesting deeper than orjson
    (255 levels) would encode, as another producer may send."""
    record = event_to_record(event)
    record["new_image"] = image_text
    out = io.BytesIO()
    out.write(SINGLE_OBJECT_MAGIC + CODEC.schema.fingerprint)
    fastavro.schemaless_writer(out, CODEC.schema.parsed, record)
    return out.getvalue()


def _deep_image(pk: str, levels: int) -> str:
    head = '{"pk":{"S":"' + pk + '"},"d":'
    return head + '{"M":{"a":' * levels + '{"S":"x"}' + "}}" * levels + "}"


def _foreign(table: str) -> list[tuple[str, bytes | None, bytes | None, str | None]]:
    """(case, Kafka key, value, expected reason fragment; None: must be applied)."""
    good_key = attrs.canonical_key(_keys("f0"))

    def enc(event: ChangeEvent) -> bytes:
        return CODEC.encode(event)

    def wire(keys: Any) -> bytes:
        return attrs.dumps(keys).encode() if isinstance(keys, dict) else b"[]"

    two_tags = {"pk": {"S": "f1", "N": "1"}, "sk": {"N": "1"}}
    huge = _keys("f2", "1e999999999")
    no_sk = {"pk": {"S": "f3"}}
    sk_as_s = {"pk": {"S": "f4"}, "sk": {"S": "1"}}
    extra = {**_keys("f5"), "x": {"S": "y"}}
    return [
        ("undecodable", good_key, b"\xc3\x01not avro", "undecodable"),
        ("no value", good_key, None, "no value"),
        ("no Kafka key", None, enc(_event(table, _keys("f0"), 7)), "no key"),
        (
            "another item's Kafka key",
            attrs.canonical_key(_keys("g1")),
            enc(_event(table, _keys("f0"), 7)),
            "another key",
        ),
        ("two type tags", wire(two_tags), enc(_event(table, two_tags, 7)), "type tag"),
        ("huge exponent", wire(huge), enc(_event(table, huge, 7, op=Op.REMOVE)), "malformed"),
        ("missing key attribute", wire(no_sk), enc(_event(table, no_sk, 7)), "key attributes"),
        ("mistyped key", wire(sk_as_s), enc(_event(table, sk_as_s, 7)), "type S"),
        ("extra key attribute", wire(extra), enc(_event(table, extra, 7)), "key attributes"),
        ("keys not an object", b"[]", enc(_event(table, [], 7, op=Op.REMOVE)), "object"),
        (
            "malformed image",
            attrs.canonical_key(_keys("f6")),
            enc(_event(table, _keys("f6"), 7, new_image={**_keys("f6"), "a": {"S": 5}})),
            "S value",
        ),
        (
            "MODIFY without image",
            attrs.canonical_key(_keys("f7")),
            enc(_event(table, _keys("f7"), 7, new_image=None)),
            "without new image",
        ),
        (
            "image of another key",
            attrs.canonical_key(_keys("f8")),
            enc(_event(table, _keys("f8"), 7, new_image={**_keys("f9"), "a": {"S": "x"}})),
            "not the event's key",
        ),
        (
            "another table's event",
            attrs.canonical_key(_keys("f10")),
            enc(_event("someone_else", _keys("f10"), 7)),
            "topic of table",
        ),
        (
            "nested 300 deep",
            attrs.canonical_key(_keys("f12")),
            _with_image_text(_event(table, _keys("f12"), 7), _deep_image("f12", 300)),
            "levels deep",
        ),
        # JSON allows a name twice in one object; readers then disagree on the item.
        (
            "a name written twice",
            attrs.canonical_key(_keys("f13")),
            _with_image_text(
                _event(table, _keys("f13"), 7),
                '{"pk":{"S":"f13"},"sk":{"N":"1"},"price":{"N":"100"},"price":{"N":"5"}}',
            ),
            "attribute name 'price' appears twice",
        ),
        (
            "a name written twice in a map",
            attrs.canonical_key(_keys("f14")),
            _with_image_text(
                _event(table, _keys("f14"), 7),
                '{"pk":{"S":"f14"},"sk":{"N":"1"},"m":{"M":{"q":{"S":"x"},"q":{"S":"y"}}}}',
            ),
            "attribute name 'q' appears twice",
        ),
        # Well formed, only spelt differently by its producer: applied, not dead-lettered.
        (
            "number key spelt 1.0",
            b'{"sk":{"N":"1.0"},"pk":{"S":"f11"}}',
            enc(_event(table, _keys("f11", "1.0"), 7)),
            None,
        ),
    ]


def test_foreign_records_go_to_the_dlq_whatever_the_batch_size(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table = unique_name("foreign").replace("-", "_")
    settings = apply_settings(kafka_bootstrap, "t", NullTarget(type="null"), [table])
    topic = settings.kafka.changes_topic(table)
    valid = _valid(table)
    foreign = _foreign(table)
    # Foreign records between two halves of the ordinary traffic.
    produce(settings.kafka, valid[:30])
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for case, key, value, _ in foreign:
        producer.produce(topic, key=key, value=value, headers=[("case", case.encode())])
    assert producer.flush(30) == 0
    produce(settings.kafka, valid[30:])
    total = len(valid) + len(foreign)
    messages = consume_all(kafka_bootstrap, topic, total)
    ends: dict[int, int] = {}
    for m in messages:
        ends[m.partition()] = max(ends.get(m.partition(), 0), m.offset() + 1)

    accepted = [CODEC.decode(value) for _, _, value, reason in foreign if reason is None and value]
    every_key = [*valid, *accepted, *(_event(table, _keys(f"f{i}"), 0) for i in range(15))]
    final: dict[bytes, attrs.Item | None] = {e.key_bytes(): None for e in every_key}
    newest: dict[bytes, ChangeEvent] = {}
    for e in [*valid, *accepted]:
        if e.key_bytes() not in newest or wins(e, newest[e.key_bytes()]):
            newest[e.key_bytes()] = e
    final.update({k: None if e.is_delete else e.new_image for k, e in newest.items()})
    expected = History(table, [attrs.loads(k) for k in final], [], final)

    runs: dict[int, dict[str, tuple[str, str]]] = {}
    for batch_size in (1, 7, 500):
        target = f"b{batch_size}-{uuid.uuid4().hex[:6]}"
        conf = apply_settings(
            kafka_bootstrap,
            target,
            NullTarget(type="null"),
            [table],
            batch_size=batch_size,
        )
        path = tmp_path / f"{batch_size}.db"
        sink = SqliteSink(SqliteTarget(type="sqlite", path=str(path)))
        code, worker = run_in_process(
            conf,
            [table_spec(table)],
            sink,
            until=lambda w: w.records_applied >= total,
            create_schema=True,
        )
        assert code == 0 and worker.records_applied == total, batch_size
        # Every record is committed: written, or its dead letter durable.
        committed = {
            p.partition: p.committed for p in group_lag(conf.kafka, group_id(target), [topic])
        }
        assert {p: c for p, c in committed.items() if c is not None} == ends, batch_size
        reader = SqliteSink(SqliteTarget(type="sqlite", path=str(path)))
        reader.open([table_spec(table)])
        try:
            assert_target_matches(reader, expected)
        finally:
            reader.close()

        dlq = drain_more(kafka_bootstrap, conf.kafka.dlq_topic(table))
        letters: dict[str, tuple[str, str]] = {}
        for m in dlq:
            headers = dict(m.headers())
            if headers[HEADER_TARGET] != target.encode():
                continue
            case = headers["case"].decode()
            assert case not in letters, f"{case} dead-lettered twice"
            letters[case] = (headers[HEADER_ERROR].decode(), headers[HEADER_REASON].decode())
        runs[batch_size] = letters

    wanted = {case: reason for case, _, _, reason in foreign if reason is not None}
    assert set(runs[1]) == set(wanted), sorted(set(runs[1]) ^ set(wanted))
    for case, fragment in wanted.items():
        assert fragment in runs[1][case][1], (case, runs[1][case])
    assert runs[7] == runs[1]
    assert runs[500] == runs[1]
