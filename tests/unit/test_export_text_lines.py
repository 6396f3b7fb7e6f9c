"""Full-export lines read as text by the compiled core (`_core.export_text`, taken by
`ExportFileReader`) against the reference, the Python path reading the same file.

The same events, keys, envelope bytes and refusals over lines written the ways a JSON writer
may (whitespace, escapes, non-ASCII, number spellings, member order, a name twice), with key
type checks and a TTL attribute (which reads the image the core left as text). With the core
switched off (DDB_BRIDGE_PURE_PYTHON=1, `make test`'s second run) these tests hold the
Python path to itself.
"""

from __future__ import annotations

import gzip
from random import Random
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec import compiled
from bridge.codec.avro import EventCodec
from bridge.model.event import ChangeEvent
from connectors.sources.backfill.export_files import ExportFileReader
from connectors.sources.backfill.export_manifest import BadInputError, DataFile
from connectors.sources.backfill.part_loop import BackfillJob
from connectors.sources.backfill.runs import PENDING, Part
from tests.strategies import items
from tests.support.compiled_core import python_path
from tests.unit.test_export_passthrough import FILE, KEYS, RUN, _Location, _Publisher
from tests.unit.test_stream_text_pages import written

CODEC = EventCodec()


def read(
    lines: list[bytes], key_types: tuple[str, ...] = (), ttl: str | None = None, now_s: int = 0
) -> list[ChangeEvent]:
    """Every event of a one-file export holding `lines`, read by the real file reader."""
    job = BackfillJob(
        table="t",
        key_names=KEYS,
        ttl_attribute=ttl,
        publisher=_Publisher(),  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        run=RUN,
        key_types=key_types,
        now_s=now_s,
    )
    manifest = SimpleNamespace(files=[DataFile(FILE, None, len(lines))], incremental=False)
    gz = gzip.compress(b"".join(lines), compresslevel=1, mtime=0)
    part = Part(0, "lease#0", FILE, PENDING, None, 0, 0, None, 0, {})
    reader = ExportFileReader(job, _Location(gz), manifest, part)  # type: ignore[arg-type]
    events: list[ChangeEvent] = []
    try:
        while True:
            batch = reader.read()
            events.extend(batch.records)
            if batch.end:
                return events
    finally:
        reader.close()


def outcome(lines: list[bytes], **kwargs: Any) -> Any:
    try:
        events = read(lines, **kwargs)
    except BadInputError as exc:
        return ("refused", str(exc))
    return (
        events,
        [(e.key_bytes(), CODEC.encode(e)) for e in events],
        [e.new_image for e in events],
    )


def both(lines: list[bytes], **kwargs: Any) -> tuple[Any, Any]:
    fast = outcome(lines, **kwargs)
    with python_path():
        slow = outcome(lines, **kwargs)
    return fast, slow


ITEM = {"pk": {"S": "a"}, "sk": {"N": "1"}, "t": {"S": 'q"\\\n\x01 é'}, "b": {"B": "AAE="}}


def test_a_compact_line_is_read_as_text_and_gives_the_reference_event() -> None:
    line = orjson.dumps({"Item": ITEM}) + b"\n"
    fast, slow = both([line, line])
    assert fast == slow
    if compiled.CORE is not None:
        (event, _) = read([line, line])
        assert type(event) is not ChangeEvent  # its image is the line's text, unparsed
        assert event.new_image_json == orjson.dumps(ITEM)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    item=items(),
    space=st.sampled_from(["", "", " ", "\t", "\r"]),
    ascii_only=st.booleans(),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**16),
    key_types=st.sampled_from([(), ("S", "N"), ("S",), ("N", "B")]),
)
def test_any_line_as_any_writer_writes_it_gives_the_reference_outcome(
    item: dict[str, Any],
    space: str,
    ascii_only: bool,
    shuffle: bool,
    seed: int,
    key_types: tuple[str, ...],
) -> None:
    line = written({"Item": item}, Random(seed), space, ascii_only, shuffle).encode() + b"\n"
    fast, slow = both([line], key_types=key_types)
    assert fast == slow


@pytest.mark.parametrize(
    "line",
    [
        b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"q":{"N":"1"},"q":{"S":"x"}}}\n',
        b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"pk":{"S":"a"}}}\n',
        b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1.0"}}}\n',
        b'{"Item":{"pk":{"S":"a"}}}\n',
        b'{"Item":{"pk":{"S":""},"sk":{"N":"1"}}}\n',
        b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"N":"1e5"}}}\n',
        b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}},"Extra":1}\n',
        b'{"Item":{"p\\u006b":{"S":"a"},"sk":{"N":"1"}}}\n',
        b'{"Item":{"pk":{"S":"a\\/b"},"sk":{"N":"1"}}}\n',
        b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}}} \n',
        b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}}}',
        b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}}}}\n',
        b'{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"B":"AB=="}}}\n',
        b'{"Item":{"pk":{"S":"\xff"},"sk":{"N":"1"}}}\n',
        b"\n",
        b'{"Keys":{"pk":{"S":"a"},"sk":{"N":"1"}},"NewImage":{"pk":{"S":"a"},"sk":{"N":"1"}}}\n',
    ],
)
@pytest.mark.parametrize("key_types", [(), ("S", "N"), ("N", "N")])
def test_each_odd_or_bad_line_gets_the_reference_verdict(
    line: bytes, key_types: tuple[str, ...]
) -> None:
    fast, slow = both([line], key_types=key_types)
    assert fast == slow


@pytest.mark.parametrize("expires", [None, 5, 10**10, "soon"])
def test_a_ttl_check_reads_the_text_image_as_the_reference_reads_the_parsed_one(
    expires: Any,
) -> None:
    item = dict(ITEM)
    if expires is not None:
        item["ttl"] = {"N": str(expires)} if isinstance(expires, int) else {"S": expires}
    line = orjson.dumps({"Item": item}) + b"\n"
    fast, slow = both([line, line], ttl="ttl", now_s=1_000)
    assert fast == slow
