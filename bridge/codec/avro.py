"""Avro encoding of change events: the schema file is the wire contract.

Framing is the Avro single-object encoding by default (`C3 01`, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema, then the body), so a record describes itself
without a registry. With a Schema Registry, the Confluent wire format (`00`, 4-byte schema id,
body) instead (`bridge.kafka.schema_registry`). Every codec decodes both framings; Confluent schema
ids are resolved through `schema_id_lookup` (`schema_registry.registry_codec`). Readers know every
schema under `schemas/history/`, so events written by an older or newer compatible writer
still decode into the current `ChangeEvent` (docs/design.md, section 4).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from bridge.codec.envelope import (
    EnvelopeError,
    TextParts,
    check_names,
    compile_decoder,
    compile_encoder,
    compile_text_decoder,
)
from bridge.model import attrs
from bridge.model.errors import DecodeError
from bridge.model.event import ChangeEvent, Op, Origin

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
Framing = Literal["single-object", "confluent"]


def load_schema_text(name: str = "change_event.avsc") -> str:
    """The text of a schema shipped in the `schemas` package (works after a wheel install)."""
    return resources.files("schemas").joinpath(name).read_text(encoding="utf-8")


def history_schema_texts() -> list[str]:
    folder = resources.files("schemas").joinpath("history")
    return [p.read_text(encoding="utf-8") for p in folder.iterdir() if p.name.endswith(".avsc")]


@dataclass(frozen=True)
class ParsedSchema:
    text: str
    parsed: Any
    fingerprint: bytes  # 8 bytes, little-endian, as the single-object encoding carries it

    @classmethod
    def from_text(cls, text: str) -> ParsedSchema:
        parsed = fastavro.parse_schema(json.loads(text))
        hex_fp = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
        # fastavro renders the 64-bit CRC as big-endian hex; the wire form is little-endian.
        fp = int(hex_fp, 16).to_bytes(8, "big")[::-1]
        return cls(text=text, parsed=parsed, fingerprint=fp)


def _image_text(image: attrs.Item | None, text: bytes | None) -> str | None:
    if image is None:
        return None
    return attrs.dumps(image) if text is None else text.decode("utf-8")


def event_to_record(event: ChangeEvent) -> dict[str, Any]:
    """The one place a ChangeEvent becomes the Avro record dict."""
    return {
        "table": event.table,
        "op": event.op.value,
        "origin": event.origin.value,
        "version": event.version,
        "keys": attrs.dumps(event.keys),
        "new_image": _image_text(event.new_image, event.new_image_json),
        "old_image": _image_text(event.old_image, event.old_image_json),
        "shard_id": event.shard_id,
        "sequence_number": event.sequence_number,
        "event_id": event.event_id,
        "approximate_creation_time_ms": event.approximate_creation_time_ms,
        "ttl_expired": event.ttl_expired,
    }


def record_to_event(rec: dict[str, Any]) -> ChangeEvent:
    """The one place an Avro record dict becomes a ChangeEvent (unknown extra fields ignored)."""
    new_text = rec.get("new_image")
    old_text = rec.get("old_image")
    keys = attrs.loads(rec["keys"])
    new_image = attrs.loads(new_text) if new_text is not None else None
    old_image = attrs.loads(old_text) if old_text is not None else None
    check_names(rec["keys"], keys, new_text, new_image, old_text, old_image)
    return ChangeEvent(
        table=rec["table"],
        op=Op(rec["op"]),
        origin=Origin(rec["origin"]),
        version=rec["version"],
        keys=keys,
        new_image=new_image,
        old_image=old_image,
        shard_id=rec.get("shard_id"),
        sequence_number=rec.get("sequence_number"),
        event_id=rec.get("event_id"),
        approximate_creation_time_ms=rec.get("approximate_creation_time_ms"),
        ttl_expired=bool(rec.get("ttl_expired", False)),
    )


class EventCodec:
    """Encodes and decodes change events. Schemas are parsed once, at construction.

    `framing` is what `encode` writes; `decode` reads both. `schema_id_lookup` maps a
    registry schema id to its schema text (needed to decode Confluent framing);
    `writer_schema_id` is the id under which the current schema is registered, or
    `writer_schema_id_for(table)` gives it per table (TopicNameStrategy: one subject per topic).
    """

    def __init__(
        self,
        framing: Framing = "single-object",
        *,
        schema_text: str | None = None,
        extra_writer_schemas: list[str] | None = None,
        writer_schema_id: int | None = None,
        schema_id_lookup: Callable[[int], str] | None = None,
        writer_schema_id_for: Callable[[str], int] | None = None,
    ) -> None:
        self.framing = framing
        self.schema = ParsedSchema.from_text(schema_text or load_schema_text())
        self._by_fingerprint: dict[bytes, ParsedSchema] = {self.schema.fingerprint: self.schema}
        for text in [*history_schema_texts(), *(extra_writer_schemas or [])]:
            known = ParsedSchema.from_text(text)
            self._by_fingerprint.setdefault(known.fingerprint, known)
        self._prefix_for: Callable[[str], bytes] | None = None
        if framing == "confluent":
            if schema_id_lookup is None or (writer_schema_id is None) == (
                writer_schema_id_for is None
            ):
                raise ValueError(
                    "confluent framing needs schema_id_lookup and one of writer_schema_id, "
                    "writer_schema_id_for"
                )
            if writer_schema_id_for is not None:
                self._prefix_for = self._per_table_prefix(writer_schema_id_for)
                self._prefix = b""
            else:
                self._prefix = CONFLUENT_MAGIC + struct.pack(">I", writer_schema_id)
        else:
            self._prefix = SINGLE_OBJECT_MAGIC + self.schema.fingerprint
        self._schema_id_lookup = schema_id_lookup
        self._by_id: dict[int, ParsedSchema] = {}
        self._fast = compile_encoder(json.loads(self.schema.text))
        self._fast_decode = compile_decoder(json.loads(self.schema.text))
        self._text_decode = compile_text_decoder(json.loads(self.schema.text))
        self._single_object_prefix = SINGLE_OBJECT_MAGIC + self.schema.fingerprint

    @staticmethod
    def _per_table_prefix(schema_id_for: Callable[[str], int]) -> Callable[[str], bytes]:
        prefixes: dict[str, bytes] = {}

        def prefix(table: str) -> bytes:
            found = prefixes.get(table)
            if found is None:
                found = prefixes[table] = CONFLUENT_MAGIC + struct.pack(">I", schema_id_for(table))
            return found

        return prefix

    def encode(self, event: ChangeEvent) -> bytes:
        if self._fast is not None:
            # An event the compiled core built carries its body already (the layout the
            # fast encoder writes, so only with it).
            encoded = event.encoded
            body = self._fast(event) if encoded is None else encoded[1]
            if self._prefix_for is not None:
                return self._prefix_for(event.table) + body
            return self._prefix + body
        return self.encode_generic(event)

    def encode_generic(self, event: ChangeEvent) -> bytes:
        """fastavro's encoding: the reference the fast envelope encoder is tested against."""
        buf = io.BytesIO()
        buf.write(self._prefix if self._prefix_for is None else self._prefix_for(event.table))
        fastavro.schemaless_writer(buf, self.schema.parsed, event_to_record(event))
        return buf.getvalue()

    def writer_for(self, data: bytes) -> tuple[ParsedSchema, int]:
        """The writer schema of a framed value and where its body starts."""
        if data[:2] == SINGLE_OBJECT_MAGIC and len(data) >= 10:
            fp = data[2:10]
            writer = self._by_fingerprint.get(fp)
            if writer is None:
                raise DecodeError(
                    f"unknown Avro schema fingerprint {fp[::-1].hex()} (CRC-64-AVRO); "
                    f"known: {', '.join(f[::-1].hex() for f in self._by_fingerprint)}"
                )
            return writer, 10
        if data[:1] == CONFLUENT_MAGIC and len(data) >= 5:
            (schema_id,) = struct.unpack(">I", data[1:5])
            writer = self._by_id.get(schema_id)
            if writer is None:
                if self._schema_id_lookup is None:
                    raise DecodeError(
                        f"record uses Confluent framing (schema id {schema_id}) "
                        "but no schema registry is configured (set kafka.schema_registry_url; "
                        "in your own consumer, use bridge.consumer.registry_codec(url))"
                    )
                text = self._schema_id_lookup(schema_id)
                try:
                    fetched = ParsedSchema.from_text(text)
                except Exception as exc:  # json and fastavro raise assorted types
                    raise DecodeError(
                        f"schema id {schema_id} from the registry is not a valid Avro schema: {exc}"
                    ) from exc
                # A schema known by fingerprint (the usual case: the registry holds ours) is
                # the same object, so the fast decoder applies to Confluent records too.
                writer = self._by_fingerprint.get(fetched.fingerprint, fetched)
                self._by_id[schema_id] = writer
            return writer, 5
        raise DecodeError(f"not an Avro change event: leading bytes {data[:10].hex()}")

    def decode(self, data: bytes) -> ChangeEvent:
        writer, start = self.writer_for(data)
        if writer is self.schema and self._fast_decode is not None:
            try:
                return self._fast_decode(data, start)
            except EnvelopeError as exc:
                raise DecodeError(
                    f"corrupt Avro body: {exc} at byte offset {exc.offset} of {len(data)} "
                    f"(writer fingerprint {writer.fingerprint[::-1].hex()})"
                ) from exc
        return self.decode_generic(data)

    @property
    def text_decoder(self) -> Callable[[bytes, int], TextParts | None] | None:
        """`decode_text`'s decoder of a body at a start offset (None: not this layout), and
        below the framing it reads first: apply's compiled screen calls them directly."""
        return self._text_decode

    @property
    def single_object_prefix(self) -> bytes:
        return self._single_object_prefix

    def decode_text(self, data: bytes) -> TextParts | None:
        """The record's parts with its images left as text, unchecked (apply's pass-through:
        bridge/apply/screening.py checks them), or None when the envelope is not certainly
        well formed (then `decode` decides, naming any problem).

        Only the current schema, in either framing; a Confluent schema id counts once
        `decode` has resolved it (no registry call here).
        """
        text_decode = self._text_decode
        if text_decode is None:
            return None
        if data[:10] == self._single_object_prefix:
            return text_decode(data, 10)
        if data[:1] == CONFLUENT_MAGIC and len(data) >= 5:
            (schema_id,) = struct.unpack(">I", data[1:5])
            if self._by_id.get(schema_id) is self.schema:
                return text_decode(data, 5)
        return None

    def decode_generic(self, data: bytes) -> ChangeEvent:
        """fastavro's decoding with schema resolution: any known writer schema."""
        writer, start = self.writer_for(data)
        buf = io.BytesIO(data)
        buf.seek(start)
        try:
            rec = fastavro.schemaless_reader(buf, writer.parsed, self.schema.parsed)
        except Exception as exc:  # fastavro raises assorted types on corrupt input
            raise DecodeError(
                f"corrupt Avro body: failed near byte offset {buf.tell()} of {len(data)} "
                f"(writer fingerprint {writer.fingerprint[::-1].hex()}): {exc}"
            ) from exc
        if buf.tell() != len(data):
            extra = len(data) - buf.tell()
            raise DecodeError(
                f"corrupt Avro body: {extra} trailing bytes after offset {buf.tell()}"
            )
        try:
            return record_to_event(rec)  # type: ignore[arg-type]
        except (ValueError, KeyError) as exc:
            raise DecodeError(f"Avro record is not a valid change event: {exc}") from exc
