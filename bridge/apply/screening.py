"""Screening one consumed record, on its own, before it joins a batch (docs/design.md, section 10).

A changes topic accepts whatever any producer writes to it, not only ddb-bridge's own
producers: a value that does not decode, no Kafka key or one that is not the event's key,
keys with two type tags or missing a key attribute, a number with an exponent of a billion,
images of the wrong shape. Each record is checked here, alone, so that

- a malformed record goes to the DLQ with its reason instead of raising out of code that
  runs over the whole batch (coalescing, the sink's statement building), which would stop
  the worker and, after the restart, stop it again on the same record;
- whether a record is dead-lettered depends only on the record (and the table's key
  schema), never on which other records happened to share its batch.

What passes is well formed for its table: the sink may still refuse a value it cannot hold
(that is the sink's PermanentError, handled per event by the processor).

Two ways through, one verdict. For a sink that stores images as text
(`SinkCapabilities.image_text`), a record first tries the text path (`_text_check`): the
envelope is decoded with its images left as text, each image is checked on its text
(bridge/codec/image_text.py), the Kafka key must already be the canonical key of the event's
keys, and the new image must hold each key attribute spelt as in the keys. Whatever is not
certain there (anything unusual, and every bad record) goes the parsing path below, which
decides and names the reason. The text path admits only what the parsing path admits, with
an equal event (a `TextImageEvent`, whose images parse on first read) and the same key:
tests/unit/test_apply_text_images.py and tests/contracts/test_fast_slow.py hold the two to
that. A name written twice in one object of the keys or an image is refused on both
(bridge/codec/json_names.py): the decoder refuses it, and the text path proves its texts free of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from bridge.codec import compiled
from bridge.codec.avro import EventCodec
from bridge.codec.image_text import (
    PENDING,
    KeyShape,
    TextImageEvent,
    image_ok,
    text_image_event,
)
from bridge.codec.json_names import member_count
from bridge.dlq.writer import RawRecord
from bridge.model import attrs
from bridge.model.errors import AttributeTypeError, DecodeError
from bridge.model.event import ChangeEvent, Op
from bridge.ports.sink import TableSpec

# What malformed input makes the decoder or the attribute checks raise, besides our own
# errors: shapes they do not expect (TypeError, LookupError, ValueError), numbers no decimal
# context can hold (ArithmeticError), nesting deeper than Python's stack (RecursionError).
_MALFORMED = (ValueError, TypeError, LookupError, ArithmeticError, RecursionError)


_SLICE = 200  # records per compiled screening call (~1 ms)

Admitted = tuple[ChangeEvent, bytes]
"""A record that passed: its event and canonical key bytes (a tuple: this runs per record)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    error: str  # the exception class name, for the DLQ header


class Screen:
    """Decodes and checks records for the tables `specs` (None: no key-schema checks)."""

    def __init__(
        self,
        codec: EventCodec,
        table_of_topic: Callable[[str], str],
        specs: Sequence[TableSpec] | None = None,
        image_text: bool = False,
    ) -> None:
        self.codec = codec
        self.table_of_topic = table_of_topic
        self.specs = None if specs is None else {s.source: s for s in specs}
        self._tables: dict[str, str] = {}  # topic -> table, resolved once per topic
        # The text path needs each table's key schema.
        self._shapes = (
            {s.source: KeyShape(s) for s in specs} if image_text and specs is not None else None
        )
        # The text path for a whole batch in one call (bridge/codec/_apply_core.c), when
        # built: what it leaves (None) takes `check`, so verdicts are the same either way.
        self._batch_screen = None
        core, screen = compiled.CORE, compiled.APPLY_CORE
        if self._shapes is not None and core is not None and screen is not None:
            screen.configure(core.build_event, TextImageEvent, PENDING, Op.REMOVE)
            self._batch_screen = screen
        self._fast_topics: dict[str, tuple[str, tuple[tuple[bytes, bytes, str], ...]] | None] = {}

    def check_batch(self, records: Sequence[RawRecord]) -> list[Admitted | Rejected]:
        """`[check(rec) for rec in records]`, the text path taken in one compiled call."""
        screen = self._batch_screen
        decode_at = self.codec.text_decoder
        if screen is None or decode_at is None:
            return [self.check(rec) for rec in records]
        fast = self._fast_topics
        records = records if type(records) is list else list(records)
        verdicts: list[Admitted | Rejected | None] = []
        prefix, decode = self.codec.single_object_prefix, self.codec.decode_text
        # In slices: the compiled call holds the GIL throughout, and the sink thread, back
        # from a round trip to its target meanwhile, should not wait for a whole batch.
        for start in range(0, len(records), _SLICE):
            verdicts += screen.screen_batch(
                records[start : start + _SLICE], fast, prefix, decode_at, decode
            )
        check = self.check
        for i, verdict in enumerate(verdicts):
            if verdict is None:
                rec = records[i]
                verdicts[i] = check(rec)
                if rec.topic not in fast:  # a topic the compiled screen learns now
                    fast[rec.topic] = self._compiled_entry(rec.topic)
        return verdicts  # type: ignore[return-value]  # no None is left

    def _compiled_entry(
        self, topic: str
    ) -> tuple[str, tuple[tuple[bytes, bytes, str], ...]] | None:
        """(table, its key schema for the compiled screen) of a topic, None: not there."""
        table = self._tables.get(topic)
        if table is None:
            table = self._tables[topic] = self.table_of_topic(topic)
        assert self._shapes is not None
        shape = self._shapes.get(table)
        if shape is None or shape.compiled is None:
            return None
        return table, shape.compiled

    def check(self, rec: RawRecord) -> Admitted | Rejected:
        if self._shapes is not None:
            admitted = self._text_check(rec)
            if admitted is not None:
                return admitted
        return self._parse_check(rec)

    def _text_check(self, rec: RawRecord) -> Admitted | None:
        """The record as a TextImageEvent with its key, if certainly admitted; else None."""
        value, kafka_key = rec.value, rec.key
        if value is None or kafka_key is None:
            return None
        parts = self.codec.decode_text(value)
        if parts is None:
            return None
        (table, op, origin, version, keys, keys_text, new_text, old_text) = parts[:8]
        topic_table = self._tables.get(rec.topic)
        if topic_table is None:
            topic_table = self._tables[rec.topic] = self.table_of_topic(rec.topic)
        assert self._shapes is not None
        shape = self._shapes.get(table)
        if shape is None or table != topic_table:
            return None
        values = shape.canonical_values(kafka_key)
        if values is None:
            return None
        # The Kafka key is a canonical key of this schema; naming the same attributes with
        # the same text makes it the canonical key of `keys` (and `keys` well formed).
        if kafka_key != keys_text:
            try:
                if orjson.loads(kafka_key) != keys:
                    return None
            except orjson.JSONDecodeError:
                return None
            # The canonical key writes each name once; keys that parse equal to it but
            # write more names repeat one (refused by the parsing path, which names it).
            if member_count(keys_text) != member_count(kafka_key):
                return None
        if new_text is None:
            if op is not Op.REMOVE:
                return None
        else:
            # Checked, and each key attribute spelt as in the canonical key (so as orjson
            # writes `keys[name]`, hence equal to it once parsed).
            if shape.image_keys(new_text) != values:
                return None
        if old_text is not None and not image_ok(old_text):
            return None
        event = text_image_event(table, op, keys, version, origin, new_text, old_text, *parts[8:])
        return event, kafka_key

    def _parse_check(self, rec: RawRecord) -> Admitted | Rejected:
        if rec.value is None:
            return Rejected("record has no value", "DecodeError")
        try:
            event = self.codec.decode(rec.value)
        except DecodeError as exc:
            return Rejected(f"undecodable: {exc}", "DecodeError")
        except _MALFORMED as exc:
            return Rejected(f"undecodable: {type(exc).__name__}: {exc}", "DecodeError")
        try:
            return event, self._check(rec, event)
        except AttributeTypeError as exc:
            return Rejected(f"malformed event: {exc}", type(exc).__name__)
        except _MALFORMED as exc:
            return Rejected(f"malformed event: {type(exc).__name__}: {exc}", "AttributeTypeError")

    def _check(self, rec: RawRecord, event: ChangeEvent) -> bytes:
        topic_table = self._tables.get(rec.topic)
        if topic_table is None:
            topic_table = self._tables[rec.topic] = self.table_of_topic(rec.topic)
        if event.table != topic_table:
            raise AttributeTypeError(
                f"the event names table {event.table!r} but arrived on the topic of "
                f"table {topic_table!r}"
            )
        keys = event.keys
        if self.specs is None:
            attrs.validate(keys, "keys")
        else:
            spec = self.specs.get(event.table)
            if spec is None:
                raise AttributeTypeError(f"table {event.table!r} is not applied by this worker")
            _check_key_schema(spec, keys)
        key = attrs.canonical_key(keys)
        shown = key.decode("utf-8", "replace")
        if rec.key is None:
            raise AttributeTypeError(f"key {shown}: the Kafka record has no key")
        if rec.key != key and not _same_key(rec.key, keys):
            raise AttributeTypeError(
                f"key {shown}: the Kafka record key {rec.key[:200]!r} is another key"
            )
        if event.new_image is None:
            if event.op is not Op.REMOVE:
                raise AttributeTypeError(f"key {shown}: {event.op} without new image")
        else:
            image = attrs.validate(event.new_image, "new_image")
            for name, av in keys.items():
                held = image.get(name)
                if held is not None and held != av and not attrs.av_equal(held, av):
                    raise AttributeTypeError(
                        f"key {shown}: new_image holds {name} = {attrs.dumps(held)}, "
                        "not the event's key"
                    )
        if event.old_image is not None:
            attrs.validate(event.old_image, "old_image")
        return key


def _check_key_schema(spec: TableSpec, keys: object) -> None:
    """The key attributes are exactly the table's, each of its type and well formed (N
    values are parsed when the key is canonicalized)."""
    if type(keys) is not dict:
        raise AttributeTypeError("keys: an item must be an object")
    expected = {spec.hash_key: spec.hash_type}
    if spec.range_key is not None:
        expected[spec.range_key] = spec.range_type or "S"
    if keys.keys() != expected.keys():
        raise AttributeTypeError(
            f"key {attrs.dumps(keys)[:300]}: table {spec.source} has key attributes "
            f"{', '.join(expected)}"
        )
    for name, typ in expected.items():
        av = keys[name]
        if type(av) is not dict or len(av) != 1:
            raise AttributeTypeError(
                f"keys.{name}: an attribute value must be an object with one type tag"
            )
        ((tag, value),) = av.items()
        if tag != typ:
            raise AttributeTypeError(
                f"keys.{name}: type {tag}, but the table's key attribute is of type {typ}"
            )
        if type(value) is not str:
            raise AttributeTypeError(f"keys.{name}: {tag} value must be a string")
        if not value:
            raise AttributeTypeError(f"keys.{name}: empty {tag} key")
        if tag == "B":
            attrs.validate({name: av}, "keys")


def _same_key(kafka_key: bytes, keys: attrs.Item) -> bool:
    """Whether a Kafka key that is not byte-equal to ours names the same item (numbers spelt
    differently, attributes in another order): what another canonicalization may produce."""
    try:
        other = attrs.validate(attrs.loads(kafka_key), "Kafka key")
        return attrs.items_equal(other, keys)
    except (AttributeTypeError, *_MALFORMED):
        return False
