"""Export back-fill pass-through: an export line's item text goes into the envelope as it is.

For any item, the event read pass-through equals the event of the full path (parse, validate,
re-serialise) and encodes to the same envelope bytes, with both encoders; a line whose layout
is not AWS's exact one (whitespace, escapes, duplicate names, extra members) gives the same
bytes too (it takes the full path). Invalid items are refused the same way by both, naming
the file and the line.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from types import SimpleNamespace
from typing import IO, Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec.avro import EventCodec
from bridge.model import attrs
from bridge.model.errors import AttributeTypeError
from bridge.model.event import ChangeEvent
from connectors.sources.backfill import export_files
from connectors.sources.backfill.export_files import ExportFileReader
from connectors.sources.backfill.export_manifest import BadInputError, DataFile
from connectors.sources.backfill.part_loop import BackfillJob
from connectors.sources.backfill.runs import PENDING, Part, RunInfo
from tests.strategies import attribute_values, items

RUN = RunInfo("t", "run-1", "export", 1, 1_700_000_000_000_000, 1, "test")
FILE = "exports/AWSDynamoDB/01-x/data/part-0.json.gz"
KEYS = ("pk", "sk")
CODEC = EventCodec()


class _Publisher:
    def flush(self) -> None:
        pass


class _Location:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def open_verified(self, data: DataFile) -> tuple[IO[bytes], int]:
        return io.BytesIO(self.data), len(self.data)


def read_events(
    lines: list[bytes], passthrough: bool, key_types: tuple[str, ...] = ()
) -> list[ChangeEvent]:
    """Every event of a one-file export holding `lines`, read by the real file reader."""
    job = BackfillJob(
        table="t",
        key_names=KEYS,
        ttl_attribute=None,
        publisher=_Publisher(),  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        run=RUN,
        key_types=key_types,
    )
    manifest = SimpleNamespace(files=[DataFile(FILE, None, len(lines))], incremental=False)
    gz = gzip.compress(b"".join(lines), compresslevel=1, mtime=0)
    part = Part(0, "lease#0", FILE, PENDING, None, 0, 0, None, 0, {})
    reader = ExportFileReader(job, _Location(gz), manifest, part)  # type: ignore[arg-type]
    reader.passthrough = passthrough
    events: list[ChangeEvent] = []
    try:
        while True:
            batch = reader.read()
            events.extend(batch.records)
            if batch.end:
                return events
    finally:
        reader.close()


def aws_line(item: dict[str, Any]) -> bytes:
    """A full export's line exactly as DynamoDB writes it: compact, UTF-8, one per line."""
    return orjson.dumps({"Item": item}) + b"\n"


class _CountingDumps:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, value: Any) -> bytes:
        self.calls += 1
        return orjson.dumps(value)


def assert_same(lines: list[bytes], passthrough_expected: bool | None) -> None:
    """Pass-through and full path give equal events and envelopes; `passthrough_expected`:
    True when no item may be re-serialised, False when each one must be, None: either."""
    counting = _CountingDumps()
    saved, export_files._dumps = export_files._dumps, counting
    try:
        fast = read_events(lines, passthrough=True)
    finally:
        export_files._dumps = saved
    if passthrough_expected is not None:
        assert counting.calls == (0 if passthrough_expected else len(lines))
    full = read_events(lines, passthrough=False)
    assert fast == full
    reference = [
        ChangeEvent.from_export_line("t", orjson.loads(line), KEYS, RUN.version, "line")
        for line in lines
    ]
    assert full == reference
    for a, b in zip(fast, full, strict=True):
        assert b.new_image_json is None
        assert a.new_image_json is not None
        assert CODEC.encode(a) == CODEC.encode(b)
        assert CODEC.encode_generic(a) == CODEC.encode_generic(b)
        assert CODEC.encode(a) == CODEC.encode_generic(a)
        assert a.key_bytes() == b.key_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(items(), min_size=1, max_size=4))
def test_aws_lines_pass_through_to_the_same_envelope(batch: list[dict[str, Any]]) -> None:
    lines = [aws_line(item) for item in batch]
    # Strings with whitespace, escapes or a leading colon take the full path's serialiser.
    # Whitespace, escapes or a string starting with a colon send the item through the full
    # path's serialiser; anything else must pass through as it is.
    plain = all(not re.search(rb'[ \t\r\\]|[:,\[{]":', line.rstrip(b"\n")) for line in lines)
    assert_same(lines, True if plain else None)


def _duplicate_first(item: dict[str, Any]) -> bytes:
    name = next(iter(item))
    text = orjson.dumps(item)
    return b'{"Item":{' + orjson.dumps(name) + b':{"NULL":true},' + text[1:] + b"}\n"


LAYOUTS = {
    "spaces": lambda item: json.dumps({"Item": item}, ensure_ascii=False).encode() + b"\n",
    "ascii escapes": lambda item: (
        json.dumps({"Item": item}, separators=(",", ":")).encode() + b"\n"
    ),
    "indented": lambda item: (
        json.dumps({"Item": item}, indent=1, ensure_ascii=False).replace("\n", "").encode() + b"\n"
    ),
    "crlf": lambda item: orjson.dumps({"Item": item}) + b"\r\n",
    "leading space": lambda item: b" " + orjson.dumps({"Item": item}) + b"\n",
    "no newline": lambda item: orjson.dumps({"Item": item}),
    "extra member": lambda item: orjson.dumps({"Item": item, "x": {}}) + b"\n",
    "member first": lambda item: orjson.dumps({"x": 1, "Item": item}) + b"\n",
    "escaped slash": lambda item: orjson.dumps({"Item": item}).replace(b"/", b"\\/") + b"\n",
    # JSON's other whitespace, alone: each byte must send the line to the full path.
    "tabs": lambda item: (
        json.dumps({"Item": item}, separators=(",\t", ":\t"), ensure_ascii=False).encode() + b"\n"
    ),
    "tab before the end": lambda item: orjson.dumps({"Item": item})[:-1] + b"\t}\n",
    "carriage return inside": lambda item: orjson.dumps({"Item": item})[:-1] + b"\r}\n",
}
# Names written twice: refused by both paths alike (bridge/codec/json_names.py).
REPEATS = {
    "duplicate name": _duplicate_first,
    "duplicate Item": lambda item: b'{"Item":{},' + orjson.dumps({"Item": item})[1:] + b"\n",
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items(), st.sampled_from(sorted(LAYOUTS)))
def test_other_layouts_give_the_full_paths_bytes(item: dict[str, Any], layout: str) -> None:
    line = LAYOUTS[layout](item)
    assert_same([line], None)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items(), st.sampled_from(sorted(REPEATS)))
def test_a_name_written_twice_is_refused_alike(item: dict[str, Any], layout: str) -> None:
    lines = [REPEATS[layout](item)]
    fast = refusal(lines, passthrough=True)
    assert fast == refusal(lines, passthrough=False)
    name = "Item" if layout == "duplicate Item" else next(iter(item))
    assert f"line 1: attribute name {name!r} appears twice in one object" in fast


def test_layout_variants_of_a_plain_item_fall_back() -> None:
    item = {"pk": {"S": "a,b:c/dé"}, "sk": {"N": "1.50"}, "m": {"M": {"x": {"L": []}}}}
    assert_same([aws_line(item)], True)
    for name, layout in LAYOUTS.items():
        if name in ("no newline", "escaped slash"):
            continue  # no slash in the item: these are AWS's layout exactly
        try:
            assert_same([layout(item)], False)
        except AssertionError as exc:
            raise AssertionError(f"layout {name!r}: {layout(item)!r}") from exc


@pytest.mark.parametrize(
    "number", ["1.50", "1E+2", "-0", "0.0", "+1", "00012", ".5", "5.", "1e-130", "9" * 38]
)
def test_number_text_is_kept_as_written_on_both_paths(number: str) -> None:
    item = {"pk": {"S": "k"}, "sk": {"N": number}, "n": {"NS": [number, "7"]}}
    assert_same([aws_line(item)], True)
    (event,) = read_events([aws_line(item)], passthrough=True)
    assert event.new_image_json is not None
    assert orjson.loads(event.new_image_json)["sk"] == {"N": number}


def _big(kind: str) -> dict[str, Any]:
    base: dict[str, Any] = {"pk": {"S": "big"}, "sk": {"N": "12345678901234567890.5"}}
    if kind == "string":
        base["s"] = {"S": "é→" * 80_000}
    elif kind == "attributes":
        for i in range(2_000):
            base[f"a{i}\u00fc"] = {"S": "x" * 190}
    elif kind == "nested":
        base["l"] = {
            "L": [{"M": {"n": {"N": f"-{i}.25E-5"}, "b": {"B": "AAEC"}}} for i in range(8_000)]
        }
    elif kind == "sets":
        base["ns"] = {"NS": [f"{i}E+{i % 120}" for i in range(12_000)]}
        base["bs"] = {"BS": [f"{i:08d}" for i in range(5_000)]}
    return base


@pytest.mark.parametrize("kind", ["string", "attributes", "nested", "sets"])
def test_items_near_400_kb(kind: str) -> None:
    item = _big(kind)
    line = aws_line(item)
    assert len(line) > 150_000
    assert_same([line, aws_line({"pk": {"S": "small"}, "sk": {"N": "1"}})], True)


# -- invalid items: refused the same way, naming the file and line -----------------------------


def _valid(av: Any) -> bool:
    try:
        attrs.validate({"a": av})
    except AttributeTypeError:
        return False
    return True


invalid_values = st.one_of(
    st.sampled_from(
        [
            {"X": "1"},
            {"N": "1e"},
            {"N": "NaN"},
            {"N": "1" * 39},
            {"N": "1E+126"},
            {"N": "-1e-131"},
            {"N": "\u0661"},
            {"N": 1},
            {"B": "not base64!"},
            {"S": 1},
            {"S": "x", "N": "1"},
            {"NULL": False},
            {"BOOL": "true"},
            {"NS": ["1", "x"]},
            {"SS": ["a", 1]},
            {"BS": ["%%"]},
            {"M": []},
            {"L": {}},
            {},
            [],
            None,
        ]
    ),
    st.dictionaries(
        st.sampled_from(["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M", "X"]),
        st.one_of(st.text(max_size=4), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none()),
        min_size=1,
        max_size=2,
    ).filter(lambda av: not _valid(av)),
)


def _nest(value: Any, depth: int) -> Any:
    for i in range(depth):
        value = {"L": [value]} if i % 2 else {"M": {"n": value}}
    return value


@st.composite
def invalid_items(draw: st.DrawFn) -> dict[str, Any]:
    item = draw(items())
    bad = draw(invalid_values)
    where = draw(st.sampled_from(["top", "map", "list"]))
    if where == "map":
        bad = {"M": {"x": draw(attribute_values), "bad": bad}}
    elif where == "list":
        bad = {"L": [draw(attribute_values), bad]}
    item[draw(st.sampled_from(["pk", "sk", "zz"]))] = bad
    return item


def refusal(lines: list[bytes], passthrough: bool, key_types: tuple[str, ...] = ()) -> str:
    with pytest.raises(BadInputError) as info:
        read_events(lines, passthrough, key_types)
    assert type(info.value) is BadInputError
    return str(info.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(items(), max_size=2), invalid_items())
def test_invalid_items_are_refused_alike(good: list[dict[str, Any]], bad: dict[str, Any]) -> None:
    lines = [aws_line(item) for item in good] + [aws_line(bad)]
    fast = refusal(lines, passthrough=True)
    assert fast == refusal(lines, passthrough=False)
    assert fast.startswith(f"{FILE} line {len(lines)}: ")


@pytest.mark.parametrize(
    "line",
    [
        b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}}',  # cut short
        b'{"Item":[]}',
        b'{"Item":{"pk":{"S":"a"}}}',  # no range key
        b'{"Item":{"pk":{"S":""},"sk":{"N":"1"}}}',  # empty key
        b'{"Item":{"pk":{"N":"1"},"sk":{"N":"1"}}}',  # wrong key type
        b"[1]",
        b'{"Keys":1}',
        b"{}",
    ],
)
def test_bad_lines_are_refused_alike(line: bytes) -> None:
    lines = [aws_line({"pk": {"S": "a"}, "sk": {"N": "1"}}), line + b"\n"]
    fast = refusal(lines, True, ("S", "N"))
    assert fast == refusal(lines, False, ("S", "N"))
    assert fast.startswith(f"{FILE} line 2: ")


@pytest.mark.parametrize("depth", [63, 64, 70, 120])
def test_nesting_beyond_the_limit_is_refused_on_both_paths(depth: int) -> None:
    """attrs.validate refuses attribute values nested 64 deep; the export's quick check
    must not let them through (it skipped `validate` for them)."""
    item = {"pk": {"S": "a"}, "sk": {"N": "1"}, "deep": _nest({"S": "x"}, depth)}
    line = aws_line(item)
    if depth < 64:
        assert_same([line], True)
        return
    fast = refusal([line], True)
    assert fast == refusal([line], False)
    assert "nested more than 64 levels deep" in fast
