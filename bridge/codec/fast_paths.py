"""The fast paths: code that makes an event, a stored row or a refusal without taking the
fully validated way, and the way each must equal.

Each one exists for speed only, so it must never change a result: the same event (and
envelope bytes), the same stored row in every target, the same refusal. The contract suite
(tests/contracts/test_fast_slow.py) runs every entry here against its reference over the
DynamoDB input space and what a foreign producer can write; a test there also scans the
code for what makes a fast path (a compiled codec, a parser hook, text carried instead of
re-serialised, a check on text instead of the parsed value) and fails for a module that
does so without being listed here. So a new fast path joins the suite or the build fails.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FastPath:
    name: str
    entries: tuple[str, ...]  # "module:qualified.name" of the code that takes the fast way
    reference: str  # the fully validated way it must equal, and how tests select it


FAST_PATHS: tuple[FastPath, ...] = (
    FastPath(
        "export pass-through",
        ("connectors.sources.backfill.export_files:item_text",),
        "ExportFileReader.passthrough = False: the parsed, validated item re-serialised",
    ),
    FastPath(
        "apply text images",
        (
            "bridge.apply.screening:Screen._text_check",
            "bridge.codec.image_text:image_ok",
            "bridge.codec.image_text:KeyShape",
            "bridge.codec.avro:EventCodec.decode_text",
            "bridge.codec.envelope:compile_text_decoder",
        ),
        "Screen(image_text=False): the envelope decoded, images parsed and validated",
    ),
    FastPath(
        "GetRecords wire parser",
        (
            "connectors.sources.stream.get_records:keep_raw_body",
            "connectors.sources.stream.get_records:read_page",
        ),
        "botocore's parsed GetRecords page, converted by attrs.from_boto",
    ),
    FastPath(
        "compiled Avro envelope",
        ("bridge.codec.envelope:compile_encoder", "bridge.codec.envelope:compile_decoder"),
        "EventCodec.encode_generic / decode_generic: fastavro",
    ),
    FastPath(
        "compiled core",
        (
            "connectors.sources.backfill.export_files:ExportFileReader.read",
            "connectors.sources.stream.processor:stream_events",
            "connectors.sources.stream.text_pages:read_text_page",
            "connectors.sources.stream.text_pages:TextRecords.events",
            "connectors.sources.backfill.scan:scanned_event",
            "bridge.codec.envelope:compile_encoder",
            "bridge.codec.image_text:text_image_event",
        ),
        "bridge.codec.compiled.CORE = None (DDB_BRIDGE_PURE_PYTHON=1): the Python implementation",
    ),
    FastPath(
        "compiled apply screen",
        ("bridge.apply.screening:Screen.check_batch",),
        "Screen.check per record (bridge/codec/_apply_core.c off): the Python text path",
    ),
)
