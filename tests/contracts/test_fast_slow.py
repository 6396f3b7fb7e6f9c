"""The fast ≡ slow contract: every fast path (bridge/codec/fast_paths.py) gives what its fully
validated reference gives — the same events and envelope bytes, the same Kafka key, the same
stored row in SQLite and PostgreSQL (through the real sinks), the same refusal — for any
DynamoDB item, written the ways another producer may write it: names duplicated at any
level, JSON escapes (\\u escapes, surrogate pairs, `\\/`), odd whitespace, other member
orders, deep nesting, numbers in every spelling, numbers DynamoDB refuses.

Rows are compared where a fast path decides what is stored (apply's text images, written
to both targets); the other paths must give byte-identical envelopes, which apply decodes
to the same row. Decisions made here, for names written twice: the export and apply refuse
them on both ways (the DLQ reason names the name); GetRecords bodies are DynamoDB's own and
botocore, the reference there, keeps the last value, so the wire parser must keep the same.

A last test scans the code for what makes a fast path and fails for one that is not in
the registry, so none can be added without joining this suite.
"""

from __future__ import annotations

import importlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.apply.screening import Rejected
from bridge.codec.avro import EventCodec
from bridge.codec.fast_paths import FAST_PATHS
from bridge.codec.image_text import image_ok
from bridge.dlq.writer import RawRecord
from bridge.model import attrs
from bridge.model.errors import AttributeTypeError, DecodeError, PermanentError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.model.versioning import StreamVersioner
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import PostgresTarget, SqliteTarget
from connectors.sinks.postgres import PostgresSink
from connectors.sinks.sqlite import SqliteSink
from connectors.sources.backfill.export_manifest import BadInputError
from connectors.sources.backfill.scan import scanned_event
from connectors.sources.stream.get_records import RAW_BODY
from connectors.sources.stream.processor import stream_events
from connectors.sources.stream.text_pages import read_text_page
from tests.strategies import items, numbers
from tests.support.compiled_core import python_path
from tests.unit.test_apply_text_images import TOPIC, screens, spec_for, with_image_text
from tests.unit.test_export_passthrough import read_events
from tests.unit.test_stream_wire_records import boto3_records, events_of, wire_records

pytestmark = pytest.mark.integration  # PostgreSQL

CODEC = EventCodec()
ROOT = Path(__file__).resolve().parents[2]

# -- what a foreign producer writes ------------------------------------------------------


class Obj:
    """A JSON object as written: a list of members, in which a name may repeat."""

    def __init__(self, members: list[tuple[str, Any]]) -> None:
        self.members = members


def as_written(value: Any) -> Any:
    if isinstance(value, dict):
        return Obj([(k, as_written(v)) for k, v in value.items()])
    if isinstance(value, list):
        return [as_written(v) for v in value]
    return value


@dataclass(frozen=True)
class Style:
    escape: str = "minimal"  # minimal | ascii | all | slash
    space: str = ""  # JSON whitespace written between tokens
    where: str = "everywhere"  # everywhere | after separators | before closers
    order_seed: int | None = None  # members shuffled by this seed; None: as built


def _all_escaped(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if code > 0xFFFF:  # a surrogate pair
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def _string(text: str, style: Style) -> str:
    if style.escape == "ascii":
        return json.dumps(text)  # \u escapes, surrogate pairs beyond the BMP
    if style.escape == "all":
        return _all_escaped(text)
    minimal = json.dumps(text, ensure_ascii=False)
    return minimal.replace("/", "\\/") if style.escape == "slash" else minimal


def write(value: Any, style: Style, rng: Random | None = None) -> str:
    """`value` (from `as_written`) as JSON text in `style`."""
    if rng is None and style.order_seed is not None:
        rng = Random(style.order_seed)
    sp = style.space
    before = sp if style.where == "everywhere" else ""  # before `:` `,` and after openers
    after = sp if style.where != "before closers" else ""  # after `:` and `,`
    close = sp if style.where != "after separators" else ""  # before closers
    if isinstance(value, Obj):
        members = list(value.members)
        if rng is not None:
            rng.shuffle(members)
        inner = f"{before},{after}".join(
            f"{_string(k, style)}{before}:{after}{write(v, style, rng)}" for k, v in members
        )
        return "{" + before + inner + close + "}"
    if isinstance(value, list):
        items = f"{before},{after}".join(write(v, style, rng) for v in value)
        return "[" + before + items + close + "]"
    if isinstance(value, str):
        return _string(value, style)
    return json.dumps(value)  # true, false


def _respell(number: str, how: str) -> str:
    sign, rest = (number[0], number[1:]) if number[:1] in "+-" else ("", number)
    if how == "zeros":
        return sign + "00" + rest
    if how == "plus" and not sign:
        return "+" + rest
    return number


def _maps(value: Any) -> Iterator[Obj]:
    """Every object that holds attributes: the item and each M map in it."""
    if isinstance(value, Obj):
        tags = dict(value.members)
        if len(value.members) == 1 and "M" in tags and isinstance(tags["M"], Obj):
            yield tags["M"]
            yield from _maps(tags["M"])
        elif len(value.members) == 1 and isinstance(tags.get("L"), list):
            for element in tags["L"]:
                yield from _maps(element)
        else:
            for _, v in value.members:
                yield from _maps(v)


def _numbers(value: Any) -> Iterator[tuple[list[Any], int]]:
    """Every N value and NS member, as (container, index) to replace it in place."""
    if isinstance(value, Obj):
        for i, (k, v) in enumerate(value.members):
            if k == "N" and isinstance(v, str):
                yield value.members, i
            elif k == "NS" and isinstance(v, list):
                for j in range(len(v)):
                    yield v, j
            else:
                yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)


@dataclass
class Case:
    item: dict[str, Any]
    written: Obj  # the item as the producer writes it
    style: Style
    duplicated: str | None = None  # the name written twice in one object, if any
    notes: list[str] = field(default_factory=list)
    raw: str | None = None  # the text itself, for fixed examples
    kafka_key: bytes | None = None  # the producer's Kafka key; None: the canonical key

    def __repr__(self) -> str:
        return f"Case(text={self.text()!r}, duplicated={self.duplicated!r}, notes={self.notes})"

    def text(self, newlines: bool = True) -> str:
        if self.raw is not None:
            return self.raw
        style = self.style
        if not newlines:  # an export line ends at a newline: the layout has none inside
            style = Style(
                style.escape, style.space.replace("\n", " "), style.where, style.order_seed
            )
        return write(self.written, style)


def _nest(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "deep"}
    for level in range(depth):
        value = {"L": [value]} if level % 2 else {"M": {"d": value}}
    return value


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Half the time the item as DynamoDB writes it (compact, canonical numbers: what the
    text paths are built to take), else in a foreign producer's ways; a third of either
    with one name written twice."""
    native = draw(st.booleans())
    item = draw(items())
    if not native and draw(st.integers(0, 4)) == 0:
        item["deep"] = _nest(draw(st.sampled_from([4, 40, 63, 64, 70])))
    written = as_written(item)
    notes: list[str] = []
    spots = list(_numbers(written))
    if native:
        for container, index in spots:
            old = container[index]
            if isinstance(old, tuple):
                container[index] = ("N", attrs.normalize_number(old[1]))
            else:
                container[index] = attrs.normalize_number(old)
    elif spots and draw(st.booleans()):
        container, index = spots[draw(st.integers(0, len(spots) - 1))]
        how = draw(st.sampled_from(["zeros", "plus", "other", "39 digits", "40 digits"]))
        old = container[index]
        number = old[1] if isinstance(old, tuple) else old
        if how == "other":
            number = draw(numbers)
        elif how == "39 digits":
            number = "-1." + "2" * 38  # 39 significant digits: DynamoDB refuses it
        elif how == "40 digits":
            number = "1" * 40
        else:
            number = _respell(number, how)
        container[index] = ("N", number) if isinstance(old, tuple) else number
        notes.append(f"number {number}")
    duplicated = None
    if draw(st.integers(0, 2)) == 0:
        targets = [m for m in (written, *_maps(written)) if m.members]
        target = targets[draw(st.integers(0, len(targets) - 1))]
        name, value = target.members[draw(st.integers(0, len(target.members) - 1))]
        other = draw(st.sampled_from([value, as_written({"N": "5"}), as_written({"S": "x"})]))
        target.members.insert(draw(st.integers(0, len(target.members))), (name, other))
        duplicated = name
    order_seed = draw(st.one_of(st.none(), st.integers(0, 2**16)))
    if native:  # compact, or with whitespace bytes the text paths must notice alone
        style = Style(
            space=draw(st.sampled_from(["", "", "", "\t", "\r"])),
            where=draw(st.sampled_from(["after separators", "before closers"])),
            order_seed=order_seed,
        )
    else:
        style = Style(
            escape=draw(st.sampled_from(["minimal", "minimal", "ascii", "all", "slash"])),
            space=draw(st.sampled_from(["", " ", "\t", "\t", "\n", "\r", "\r\n", " \t\r\n"])),
            where=draw(st.sampled_from(["everywhere", "after separators", "before closers"])),
            order_seed=order_seed,
        )
    return Case(item, written, style, duplicated, notes)


# -- what each path gives ----------------------------------------------------------------


@dataclass
class Outcome:
    refusal: str | None = None  # the refusal as the path reports it
    category: str | None = None  # its class or DLQ error header
    events: list[ChangeEvent] = field(default_factory=list)
    envelopes: list[bytes] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    rows: dict[str, Any] = field(default_factory=dict)


def _event_outcome(events: list[ChangeEvent], codec: EventCodec = CODEC) -> Outcome:
    return Outcome(
        events=events,
        envelopes=[codec.encode(e) for e in events],
        keys=[e.key_bytes() for e in events],
    )


def _pairs(text: str | bytes | None) -> Any:
    """A stored item as its JSON says it, repeated names and all (what json_extract and
    other readers of the raw text may see)."""
    if text is None:
        return None
    return json.loads(text, object_pairs_hook=lambda members: ("object", members))


class Targets:
    """SQLite and PostgreSQL through the real sinks, a fresh table per write."""

    def __init__(self, sqlite_dir: Path, pg_dsn: str) -> None:
        self.sqlite_path = str(sqlite_dir / "contract.db")
        self.pg_dsn = pg_dsn
        self.count = 0

    def rows(self, event: ChangeEvent, spec: TableSpec) -> dict[str, Any]:
        """What each target stores for `event` (a sink's refusal: its message)."""
        self.count += 1
        target = f"fs_{self.count}"
        table = TableSpec(
            "t", target, spec.hash_key, spec.hash_type, spec.range_key, spec.range_type
        )
        out: dict[str, Any] = {}
        lite = SqliteSink(SqliteTarget(type="sqlite", path=self.sqlite_path))
        lite.open([table], create_schema=True)
        try:
            lite.write_batch([event])
        except PermanentError as exc:
            out["sqlite"] = f"refused: {exc}"
        finally:
            lite.close()
        if "sqlite" not in out:
            with sqlite3.connect(self.sqlite_path) as db:
                (stored,) = db.execute(f'SELECT item FROM "{target}"').fetchone()
            out["sqlite"] = _pairs(stored)
        pg = PostgresSink(PostgresTarget(type="postgres", dsn=self.pg_dsn))
        pg.open([table], create_schema=True)
        try:
            pg.write_batch([event])
        except PermanentError as exc:
            out["postgres"] = f"refused: {exc}"
        finally:
            pg.close()
        with psycopg.connect(self.pg_dsn) as conn:
            row = conn.execute(f'SELECT item::text, item_exact FROM public."{target}"').fetchone()
            conn.execute(f'DROP TABLE public."{target}" CASCADE')
        if "postgres" not in out:
            assert row is not None
            jsonb, exact = row
            out["postgres"] = (_pairs(jsonb), _pairs(bytes(exact)) if exact is not None else None)
        return out


def _keys(item: dict[str, Any]) -> dict[str, Any]:
    return {"pk": item["pk"], "sk": item["sk"]}


def export_paths(case: Case, _targets: Targets) -> tuple[Outcome, Outcome]:
    line = b'{"Item":' + case.text(newlines=False).encode("utf-8") + b"}\n"
    out = []
    for passthrough in (True, False):
        try:
            out.append(_event_outcome(read_events([line], passthrough)))
        except BadInputError as exc:
            out.append(Outcome(refusal=str(exc), category=type(exc).__name__))
    return out[0], out[1]


def apply_paths(case: Case, targets: Targets) -> tuple[Outcome, Outcome]:
    keys = _keys(case.item)
    spec = spec_for(case.item)
    kafka_key = case.kafka_key or attrs.canonical_key(keys)
    event = ChangeEvent("t", Op.MODIFY, keys, 1, Origin.STREAM, new_image=keys)
    rec = RawRecord(TOPIC, 0, 0, kafka_key, with_image_text(event, case.text()))
    out = []
    for screen in screens(spec):
        got = screen.check(rec)
        if isinstance(got, Rejected):
            out.append(Outcome(refusal=got.reason, category=got.error))
            continue
        admitted, key = got
        outcome = _event_outcome([admitted])
        outcome.keys = [key]
        outcome.rows = targets.rows(admitted, spec)
        out.append(outcome)
    return out[0], out[1]


def _getrecords_body(case: Case) -> bytes:
    ddb = (
        '{"ApproximateCreationDateTime":1700000000,"Keys":'
        + orjson.dumps(_keys(case.item)).decode()
        + ',"NewImage":'
        + case.text()
        + ',"SequenceNumber":"42","SizeBytes":10,"StreamViewType":"NEW_AND_OLD_IMAGES"}'
    )
    return (
        '{"Records":[{"awsRegion":"us-east-1","eventID":"e1","eventName":"MODIFY",'
        '"eventSource":"aws:dynamodb","eventVersion":"1.1","dynamodb":'
        + ddb
        + '}],"NextShardIterator":"iterator-2"}'
    ).encode("utf-8")


def wire_paths(case: Case, _targets: Targets) -> tuple[Outcome, Outcome]:
    body = _getrecords_body(case)
    out = []
    for wire in (True, False):
        try:
            records = wire_records(body) if wire else boto3_records(body)
            out.append(_event_outcome(events_of(records, wire=wire)))
        except PermanentError as exc:
            out.append(Outcome(refusal=str(exc), category=type(exc).__name__))
    return out[0], out[1]


def _decoded(decode: Callable[[bytes], ChangeEvent], data: bytes) -> Outcome:
    try:
        return _event_outcome([decode(data)])
    except DecodeError as exc:
        return Outcome(refusal="undecodable", category=type(exc).__name__)
    except ValueError:  # orjson's JSONDecodeError: apply files both under DecodeError
        return Outcome(refusal="undecodable", category="DecodeError")


def envelope_paths(case: Case, _targets: Targets) -> tuple[Outcome, Outcome]:
    keys = _keys(case.item)
    event = ChangeEvent("t", Op.MODIFY, keys, 1, Origin.STREAM, new_image=keys)
    data = with_image_text(event, case.text())
    fast, slow = _decoded(CODEC.decode, data), _decoded(CODEC.decode_generic, data)
    if slow.refusal is None:
        (decoded,) = slow.events
        assert CODEC.encode(decoded) == CODEC.encode_generic(decoded)
    return fast, slow


with python_path():
    PYTHON_CODEC = EventCodec()  # its encoder is the Python one


def text_records(body: bytes) -> list[Any]:
    """The worker's reading of a GetRecords body: as text by the core where it can."""
    records, _ = read_text_page({RAW_BODY: body}, "stream arn shard shard-1")
    return records


def _core_or_python(case: Case, codec: EventCodec) -> Outcome:
    """The three producer paths the core takes, on the case's text, as one outcome: an
    export line, a GetRecords body (wire records one by one, and the whole page read as
    text), a scanned item (boto3's form)."""
    parts: list[Outcome] = []
    line = b'{"Item":' + case.text(newlines=False).encode("utf-8") + b"}\n"
    try:
        parts.append(_event_outcome(read_events([line], True), codec))
    except BadInputError as exc:
        parts.append(Outcome(refusal=str(exc), category=type(exc).__name__))
    body = _getrecords_body(case)
    for read in (wire_records, text_records):  # a record at a time; the page as text
        try:
            records = read(body)
            events = stream_events(records, "t", "shard-1", StreamVersioner(5), wire=True)
            parts.append(_event_outcome(events, codec))
        except PermanentError as exc:
            parts.append(Outcome(refusal=str(exc), category=type(exc).__name__))
    try:
        raw = attrs.to_boto(orjson.loads(case.text()))
    except (TypeError, ValueError, AttributeError):
        raw = None  # not an item boto3 could have returned: no scan of it
    if raw is not None:
        try:
            event, _ = scanned_event(raw, "t", ("pk", "sk"), 7, "segment 0/1")
            assert event is not None
            parts.append(_event_outcome([event], codec))
        except AttributeTypeError as exc:
            parts.append(Outcome(refusal=str(exc), category=type(exc).__name__))
    refusals = [p.refusal for p in parts if p.refusal is not None]
    return Outcome(
        refusal=" | ".join(refusals) if refusals else None,
        category=" | ".join(p.category for p in parts if p.category is not None) or None,
        events=[e for p in parts for e in p.events],
        envelopes=[e for p in parts for e in p.envelopes],
        keys=[k for p in parts for k in p.keys],
    )


def compiled_paths(case: Case, _targets: Targets) -> tuple[Outcome, Outcome]:
    """The core's events, keys and envelopes (its own bytes) against the Python path's,
    encoded by the Python encoder; the same refusals."""
    fast = _core_or_python(case, CODEC)
    with python_path():
        slow = _core_or_python(case, PYTHON_CODEC)
    return fast, slow


def _screened(verdicts: list[Any], targets: Targets, spec: TableSpec) -> Outcome:
    refusals = [v for v in verdicts if isinstance(v, Rejected)]
    if refusals:
        return Outcome(
            refusal=" | ".join(v.reason for v in refusals),
            category=" | ".join(v.error for v in refusals),
        )
    outcome = _event_outcome([event for event, _ in verdicts])
    outcome.keys = [key for _, key in verdicts]
    # Each admitted event's texts as carried, and the first as the SQL sinks store it.
    outcome.rows = {
        "texts": [(e.new_image_json, e.old_image_json, type(e).__name__) for e, _ in verdicts],
        **targets.rows(verdicts[0][0], spec),
    }
    return outcome


def apply_screen_paths(case: Case, targets: Targets) -> tuple[Outcome, Outcome]:
    """The case's text as a new image, as an old image, and as the old image of a delete:
    a batch screened in one compiled call against each record through `Screen.check`."""
    keys = _keys(case.item)
    spec = spec_for(case.item)
    kafka_key = case.kafka_key or attrs.canonical_key(keys)
    event = ChangeEvent("t", Op.MODIFY, keys, 1, Origin.STREAM, new_image=keys)
    delete = ChangeEvent("t", Op.REMOVE, keys, 2, Origin.STREAM, old_image=keys, event_id="e")
    values = [
        with_image_text(event, case.text()),
        with_image_text(event, case.text(), field="old_image"),
        with_image_text(delete, case.text(), field="old_image"),
    ]
    records = [RawRecord(TOPIC, 0, i, kafka_key, v) for i, v in enumerate(values)]
    screen, _ = screens(spec)
    fast = _screened(screen.check_batch(records), targets, spec)
    slow = _screened([screen.check(r) for r in records], targets, spec)
    return fast, slow


DRIVERS: dict[str, Callable[[Case, Targets], tuple[Outcome, Outcome]]] = {
    "export pass-through": export_paths,
    "apply text images": apply_paths,
    "GetRecords wire parser": wire_paths,
    "compiled Avro envelope": envelope_paths,
    "compiled core": compiled_paths,
    "compiled apply screen": apply_screen_paths,
}


def assert_same(fast: Outcome, slow: Outcome) -> None:
    assert fast.refusal == slow.refusal
    assert fast.category == slow.category
    assert fast.rows == slow.rows
    assert fast.events == slow.events
    for a, b in zip(fast.events, slow.events, strict=True):
        assert a.new_image == b.new_image and a.old_image == b.old_image
    assert fast.envelopes == slow.envelopes
    assert fast.keys == slow.keys


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory, pg_dsn: str) -> Targets:
    return Targets(tmp_path_factory.mktemp("contract"), pg_dsn)


@pytest.mark.parametrize("path", [p.name for p in FAST_PATHS])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=cases())
def test_the_fast_path_gives_what_the_validated_path_gives(
    path: str, case: Case, targets: Targets
) -> None:
    fast, slow = DRIVERS[path](case, targets)
    assert_same(fast, slow)


DUPLICATED = [
    ('{"pk":{"S":"a"},"sk":{"N":"1"},"price":{"N":"100"},"price":{"N":"5"}}', "price"),
    ('{"pk":{"S":"a"},"sk":{"N":"1"},"m":{"M":{"q":{"S":"x"},"q":{"S":"y"}}}}', "q"),
    ('{"pk":{"S":"a"},"sk":{"N":"1"},"l":{"L":[{"M":{"r":{"N":"1"},"r":{"N":"1"}}}]}}', "r"),
    ('{"pk":{"S":"a"},"sk":{"N":"1"},"M":{"S":"1"},"M":{"S":"2"}}', "M"),
    ('{"pk":{"S":"a"},"sk":{"N":"1"},"p\\u0072ice":{"N":"1"},"price":{"N":"2"}}', "price"),
    ('{"pk":{"S":"a"},"sk":{"N":"1"},"pk":{"S":"a"}}', "pk"),
]


@pytest.mark.parametrize("driver", [apply_paths, export_paths], ids=["apply", "export"])
@pytest.mark.parametrize(("text", "name"), DUPLICATED)
def test_a_duplicated_attribute_name_is_refused_naming_it(
    driver: Callable[[Case, Targets], tuple[Outcome, Outcome]],
    text: str,
    name: str,
    targets: Targets,
) -> None:
    """DynamoDB never writes one name twice in an object; parsers keep one of the two (which
    one differs), stored text keeps both. Both the export and apply refuse it, naming it, at
    the top level and inside a map, on the fast path and the validated one alike."""
    item = orjson.loads(text)
    fast, slow = driver(Case(item, as_written(item), Style(), raw=text), targets)
    assert_same(fast, slow)
    assert slow.refusal is not None
    assert f"attribute name {name!r} appears twice" in slow.refusal, slow.refusal


@pytest.mark.parametrize(("text", "name"), DUPLICATED)
def test_the_getrecords_paths_agree_on_a_duplicated_name(text: str, name: str) -> None:
    """GetRecords bodies are DynamoDB's own; the reference there is botocore's parser, which
    keeps the last of two members: the wire parser must keep the same one."""
    item = orjson.loads(text)
    fast, slow = wire_paths(Case(item, as_written(item), Style(), raw=text), None)  # type: ignore[arg-type]
    assert_same(fast, slow)


PATHS = {
    "export": export_paths,
    "apply": apply_paths,
    "GetRecords": wire_paths,
    "envelope": envelope_paths,
    "compiled core": compiled_paths,
    "apply screen": apply_screen_paths,
}
PLAIN = {"pk": {"S": "a/b"}, "sk": {"N": "1.5"}, "m": {"M": {"x": {"L": [{"NS": ["1", "2"]}]}}}}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("where", ["everywhere", "after separators", "before closers"])
@pytest.mark.parametrize("space", ["\t", "\r", "\n", " ", "\t\r\n "])
def test_json_whitespace_anywhere_gives_what_the_validated_path_gives(
    path: str, where: str, space: str, targets: Targets
) -> None:
    """Each JSON whitespace byte alone, placed where a producer may put it: a fast path that
    takes the text as it is must notice every one (the export pass-through once missed tabs)."""
    case = Case(PLAIN, as_written(PLAIN), Style(space=space, where=where))
    fast, slow = PATHS[path](case, targets)
    assert_same(fast, slow)
    assert slow.refusal is None


def _spelled(digits: str, sign: str, point: int | None) -> str:
    """`digits` with a sign and a decimal point after `point` digits (None: no point)."""
    body = digits if point is None else digits[:point] + "." + digits[point:]
    return sign + body


# Numbers at DynamoDB's 38-digit precision limit, as plain text (what the text paths take):
# (text, valid). Trailing zeros are not significant: 39 digits ending in 0 still fit.
BOUNDARY_NUMBERS = [
    (_spelled(digits, sign, point), valid)
    for digits, valid in [
        ("12345678901234567890123456789012345678", True),  # 38 significant digits
        ("123456789012345678901234567890123456789", False),  # 39
        ("1234567890123456789012345678901234567891", False),  # 40
        ("123456789012345678901234567890123456780", True),  # 39 digits, 38 significant
    ]
    for sign in ("", "-")
    for point in (None, 1, 20)
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("tag", ["N", "NS"])
@pytest.mark.parametrize(("number", "valid"), BOUNDARY_NUMBERS)
def test_numbers_at_the_precision_limit_get_the_validated_verdict(
    path: str, tag: str, number: str, valid: bool, targets: Targets
) -> None:
    value = {"N": number} if tag == "N" else {"NS": ["7", number]}
    item = {"pk": {"S": "a"}, "sk": {"N": "1"}, "n": value}
    text = orjson.dumps(item).decode()
    fast, slow = PATHS[path](Case(item, as_written(item), Style(), raw=text), targets)
    assert_same(fast, slow)
    if path != "envelope":  # decoding an envelope does not validate numbers; the rest do
        assert (slow.refusal is None) is valid, slow.refusal
    # The text check vouches only for what validation accepts.
    assert not image_ok(text.encode()) or valid


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("spelling", ["-0", "1.0", "01", "1E0", "0.0", "-0.0", "+1", "0E+5"])
def test_key_number_spellings_give_the_canonical_key_on_every_path(
    path: str, spelling: str, targets: Targets
) -> None:
    """A key number spelt otherwise (the producer's Kafka key and image spelling it so too)
    gives the canonical key of design §4 — `1.0`, `01`, `1E0` become `1`; `-0`, `0.0`
    become `0` — on the fast path as on the validated one."""
    keys = {"pk": {"S": "a"}, "sk": {"N": spelling}}
    item = {**keys, "v": {"N": spelling}}
    text = orjson.dumps(item).decode()
    case = Case(item, as_written(item), Style(), raw=text, kafka_key=orjson.dumps(keys))
    fast, slow = PATHS[path](case, targets)
    assert_same(fast, slow)
    assert slow.refusal is None, slow.refusal
    canonical = orjson.dumps({"pk": {"S": "a"}, "sk": {"N": attrs.normalize_number(spelling)}})
    assert slow.keys and set(slow.keys) == {canonical}  # the core's driver runs three paths


# -- no fast path outside the registry ---------------------------------------------------

# What makes a fast path: a compiled codec, a hook that replaces a parser, an event carrying
# its source text instead of re-serialising it, a check made on text instead of the parsed
# value. Modules that only define or consume these are listed below with the reason.
SIGNS = {
    "compiled codec": re.compile(r"^def compile_\w+", re.M),
    "compiled core": re.compile(r"\bcompiled\.CORE\b"),
    "parser hook": re.compile(r"before-parse|events\.register\("),
    "carries source text": re.compile(r"new_image_json=|set_new_json\(|passthrough"),
    "checks text": re.compile(r"\bimage_ok\(|KeyShape\(|decode_text\("),
}
NOT_FAST_PATHS = {
    "bridge/model/event.py": "declares the text fields and the reference constructors",
    "bridge/codec/fast_paths.py": "the registry itself",
    "bridge/codec/compiled.py": "loads the compiled core, which its users register",
}


def _registered_modules() -> set[str]:
    out = set()
    for path in FAST_PATHS:
        for entry in path.entries:
            module = entry.split(":")[0]
            out.add(module.replace(".", "/") + ".py")
    return out


def test_every_fast_path_in_the_code_is_registered_and_in_this_suite() -> None:
    assert set(DRIVERS) == {p.name for p in FAST_PATHS}
    for path in FAST_PATHS:
        for entry in path.entries:
            module, qualname = entry.split(":")
            target: Any = importlib.import_module(module)
            for part in qualname.split("."):
                target = getattr(target, part)  # AttributeError: the entry is stale
            assert callable(target), entry
    registered = _registered_modules()
    found = {}
    for source in sorted([*ROOT.glob("bridge/**/*.py"), *ROOT.glob("connectors/**/*.py")]):
        rel = source.relative_to(ROOT).as_posix()
        text = source.read_text()
        signs = [name for name, sign in SIGNS.items() if sign.search(text)]
        if signs and rel not in registered and rel not in NOT_FAST_PATHS:
            found[rel] = signs
    assert not found, f"fast paths missing from bridge/codec/fast_paths.py: {found}"
    assert all((ROOT / module).is_file() for module in registered)
