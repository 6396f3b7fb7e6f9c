"""The change event: one immutable type for stream records, scanned items and export lines.

Conversion from each source's shape happens here, in one place, so that the same item
yields the same keys and key bytes whatever its origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import AttributeTypeError, PermanentError
from bridge.model.versioning import to_micros


class Op(StrEnum):
    INSERT = "INSERT"
    MODIFY = "MODIFY"
    REMOVE = "REMOVE"
    SNAPSHOT = "SNAPSHOT"


class Origin(StrEnum):
    STREAM = "STREAM"
    SCAN = "SCAN"
    EXPORT = "EXPORT"
    INCREMENTAL_EXPORT = "INCREMENTAL_EXPORT"


TTL_PRINCIPAL = "dynamodb.amazonaws.com"
# The eventName values of a DynamoDB Streams record (never SNAPSHOT, which only back-fill makes).
_STREAM_OPS = {"INSERT": Op.INSERT, "MODIFY": Op.MODIFY, "REMOVE": Op.REMOVE}


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change to one item. `new_image` is None for REMOVE; images are wire-form maps."""

    table: str
    op: Op
    keys: Item
    version: int
    origin: Origin
    new_image: Item | None = None
    old_image: Item | None = None
    shard_id: str | None = None
    sequence_number: str | None = None
    event_id: str | None = None
    approximate_creation_time_ms: int | None = None
    ttl_expired: bool = False
    # The images as DynamoDB JSON text, when the source already holds that text (an export
    # line, a raw GetRecords response): the envelope carries them verbatim instead of
    # re-serialising the parsed images. Set only with the matching image; never compared, so
    # an event read pass-through equals the same event built the full way.
    new_image_json: bytes | None = field(default=None, compare=False, repr=False)
    old_image_json: bytes | None = field(default=None, compare=False, repr=False)
    # (Kafka key, Avro envelope body) when the compiled core (bridge/codec/_core.c) built
    # the event: what `key_bytes` and the codec would compute from the fields, made in the
    # same call. Never compared, so such an event equals the one the Python path builds.
    encoded: tuple[bytes, bytes] | None = field(default=None, compare=False, repr=False)

    @property
    def is_delete(self) -> bool:
        return self.op is Op.REMOVE

    def key_bytes(self) -> bytes:
        if self.encoded is not None:
            return self.encoded[0]
        return attrs.canonical_key(self.keys)

    @property
    def change_time_ms(self) -> int:
        """When the item changed in DynamoDB, in ms since the epoch: the Kafka timestamp of
        its record, so offsets can be found by time (`ddb-bridge replay --to-datetime`).

        A stream record's ApproximateCreationDateTime; otherwise the version's time (for a
        back-fill snapshot, its run's time less the skew margin: docs/design.md, section 5).
        """
        if self.approximate_creation_time_ms is not None:
            return self.approximate_creation_time_ms
        return self.version // 1000

    @classmethod
    def from_stream_record(
        cls,
        table: str,
        record: Mapping[str, Any],
        version: int,
        shard_id: str,
        *,
        wire: bool = False,
    ) -> ChangeEvent:
        """A DynamoDB Streams record as boto3's `get_records` returns it (binary as bytes),
        or with `wire=True` as GetRecords' JSON has it (binary as base64 text: the record is
        parsed from the response body and owned by the caller, see `attrs.from_wire`).

        Both forms of one record give equal events, and refuse the same bad records with a
        PermanentError naming the table, shard and sequence number.
        """
        if type(record) is not dict:
            raise PermanentError(
                f"table {table} shard {shard_id}: a stream record must be an object"
            )
        ddb = record.get("dynamodb")
        if type(ddb) is not dict:
            ddb = {}
        seq = ddb.get("SequenceNumber")
        name = record.get("eventName")
        op = _STREAM_OPS.get(name) if type(name) is str else None
        event_id = record.get("eventID")
        if (
            op is None
            or "Keys" not in ddb
            or (seq is not None and type(seq) is not str)
            or (event_id is not None and type(event_id) is not str)
        ):
            where = f"table {table} shard {shard_id} sequence {seq}"
            if op is None:
                raise PermanentError(f"{where}: unknown eventName {name!r}")
            if "Keys" not in ddb:
                raise PermanentError(f"{where}: stream record has no Keys")
            if type(seq) is not str:
                raise PermanentError(f"{where}: SequenceNumber must be a string")
            raise PermanentError(f"{where}: eventID must be a string")
        identity = record.get("userIdentity")
        ttl = (
            op is Op.REMOVE
            and type(identity) is dict
            and identity.get("Type") == "Service"
            and identity.get("PrincipalId") == TTL_PRINCIPAL
        )
        convert = attrs.from_wire if wire else attrs.from_boto
        new = ddb.get("NewImage")
        old = ddb.get("OldImage")
        try:
            keys = convert(ddb["Keys"], "Keys")
            new_image = None if new is None else convert(new, "NewImage")
            old_image = None if old is None else convert(old, "OldImage")
        except AttributeTypeError as exc:
            # The record's coordinates are added only here: on the hot path nothing is built.
            raise AttributeTypeError(
                f"table {table} shard {shard_id} sequence {seq} {exc}"
            ) from exc
        created = ddb.get("ApproximateCreationDateTime")
        return cls(
            table=table,
            op=op,
            keys=keys,
            version=version,
            origin=Origin.STREAM,
            new_image=new_image,
            old_image=old_image,
            shard_id=shard_id,
            sequence_number=seq,
            event_id=event_id,
            approximate_creation_time_ms=to_micros(created) // 1000
            if created is not None
            else None,
            ttl_expired=ttl,
        )

    @classmethod
    def snapshot(
        cls,
        table: str,
        item: Item,
        key_names: tuple[str, ...],
        version: int,
        origin: Origin,
        where: str = "item",
        *,
        keys: Item | None = None,
        old_image: Item | None = None,
        new_image_json: bytes | None = None,
    ) -> ChangeEvent:
        """A back-filled item (scan, full or incremental export), already in wire form.

        The key attributes are taken from `keys` when the source gives them apart from the
        item (an incremental export line's `Keys`), else from the item itself.
        `new_image_json` is the item's DynamoDB JSON text when the source holds exactly it.
        """
        return snapshot_event(
            table,
            attrs.extract_keys(item if keys is None else keys, key_names, where),
            version,
            origin,
            item,
            old_image,
            new_image_json,
        )

    @classmethod
    def from_export_line(
        cls, table: str, line: dict[str, Any], key_names: tuple[str, ...], version: int, where: str
    ) -> ChangeEvent:
        """One parsed line of a DYNAMODB_JSON export: full (`Item`) or incremental (`Keys`...)."""
        if "Item" in line:
            item = attrs.validate(line["Item"], f"{where} Item")
            return cls.snapshot(table, item, key_names, version, Origin.EXPORT, where)
        if "Keys" in line:
            keys = attrs.validate(line["Keys"], f"{where} Keys")
            new = line.get("NewImage")
            old = line.get("OldImage")
            old_image = attrs.validate(old, f"{where} OldImage") if old is not None else None
            if new is not None:
                new_image = attrs.validate(new, f"{where} NewImage")
                return cls.snapshot(
                    table,
                    new_image,
                    key_names,
                    version,
                    Origin.INCREMENTAL_EXPORT,
                    where,
                    keys=keys,
                    old_image=old_image,
                )
            # No new image: the item was deleted during the export's window. A delete is
            # not a snapshot; it carries the export's version like the snapshots around it.
            return cls(
                table=table,
                op=Op.REMOVE,
                keys=attrs.extract_keys(keys, key_names, where),
                version=version,
                origin=Origin.INCREMENTAL_EXPORT,
                old_image=old_image,
            )
        raise AttributeTypeError(f"{where}: export line has neither 'Item' nor 'Keys'")


def snapshot_event(
    table: str,
    keys: Item,
    version: int,
    origin: Origin,
    new_image: Item,
    old_image: Item | None,
    new_image_json: bytes | None,
) -> ChangeEvent:
    """A SNAPSHOT event of a back-filled item whose keys are already extracted."""
    return ChangeEvent(
        table=table,
        op=Op.SNAPSHOT,
        keys=keys,
        version=version,
        origin=origin,
        new_image=new_image,
        old_image=old_image,
        new_image_json=new_image_json,
    )
