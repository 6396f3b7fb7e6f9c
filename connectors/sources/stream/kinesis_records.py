"""Kinesis Data Streams for DynamoDB: a Kinesis record's Data as a DynamoDB Streams record.

When a table streams to a Kinesis data stream, DynamoDB puts one JSON document per change in
each Kinesis record's Data: `eventID`, `eventName`, `userIdentity`, `tableName` and a
`dynamodb` object with `Keys`, `NewImage`, `OldImage`, `SizeBytes` and
`ApproximateCreationDateTime` — epoch milliseconds, or microseconds when the destination was
enabled with `ApproximateCreationDateTimePrecision` MICROSECOND (the document then says so in
`dynamodb.ApproximateCreationDateTimePrecision`). The document has no stream sequence number:
the Kinesis record's own `SequenceNumber` takes its place.

`stream_record_from_kinesis` turns one such Data into the record `get_records.read_page`
makes of a DynamoDB Streams page (wire form, `ApproximateCreationDateTime` an aware datetime
exact to the µs), with the precision normalized, so one record processor serves both
transports (`processor.py`). Which unit the number is in is decided by the precision field
when present, else by magnitude: an epoch in ms stays below 10^14 until the year 5138, one in
µs is above it from 1973 on; a field that contradicts the magnitude is refused, not guessed.

Delivery guarantee: none on its own; a Data it cannot read is a PermanentError naming where it
was read and the Kinesis sequence number, never a skipped record.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bridge.codec.json_names import repeat_in
from bridge.model.errors import PermanentError
from connectors.sources.stream.get_records import WireRecords

MILLISECOND = "MILLISECOND"
MICROSECOND = "MICROSECOND"
# µs per tick of each precision: the versions one tick of ApproximateCreationDateTime spans.
SLOTS = {MILLISECOND: 1000, MICROSECOND: 1}
# Where the unit changes by magnitude (see the module docstring).
_MS_BELOW = 10**14
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def created_micros(value: Any, precision: Any, where: str) -> tuple[int, str]:
    """(µs since the epoch, precision) of a Kinesis record's ApproximateCreationDateTime."""
    if type(value) is not int:
        if type(value) is float and value.is_integer():
            value = int(value)
        else:
            raise PermanentError(
                f"{where}: ApproximateCreationDateTime {value!r} is not an epoch number"
            )
    if value < 0:
        raise PermanentError(f"{where}: ApproximateCreationDateTime {value} is negative")
    by_size = MILLISECOND if value < _MS_BELOW else MICROSECOND
    if precision is None:
        precision = by_size
    elif precision not in SLOTS:
        raise PermanentError(
            f"{where}: unknown ApproximateCreationDateTimePrecision {precision!r} "
            f"(expected {MILLISECOND} or {MICROSECOND})"
        )
    elif precision != by_size:
        raise PermanentError(
            f"{where}: ApproximateCreationDateTime {value} does not fit its precision "
            f"{precision} (as {precision.lower()}s since the epoch it is not a time of this era)"
        )
    return (value * 1000 if precision == MILLISECOND else value), precision


def _data_bytes(data: Any, where: str) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):  # the wire form: base64 text
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PermanentError(f"{where}: Data is not base64 ({exc})") from exc
    raise PermanentError(f"{where}: Data is {type(data).__name__}, not bytes")


def stream_record_from_kinesis(data: Any, sequence_number: str, where: str) -> dict[str, Any]:
    """One Kinesis record's Data (bytes, or base64 text) as a DynamoDB Streams wire record.

    `dynamodb.SequenceNumber` is the Kinesis sequence number; `ApproximateCreationDateTime` an
    aware datetime; `ApproximateCreationDateTimePrecision` MILLISECOND or MICROSECOND. Everything
    else is as DynamoDB wrote it; the record processor validates keys and images.
    """
    here = f"{where} sequence {sequence_number}"
    raw = _data_bytes(data, here)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(
            f"{here}: Data is not JSON ({exc}): {raw[:200]!r}; is this stream written by "
            "DynamoDB (Kinesis Data Streams for DynamoDB)?"
        ) from exc
    repeat = repeat_in(raw, doc)
    if repeat is not None:
        # DynamoDB writes each name once: another writer's record, whose item is ambiguous.
        raise PermanentError(f"{here}: Data is not one change: {repeat}")
    ddb = doc.get("dynamodb") if type(doc) is dict else None
    if type(ddb) is not dict:
        raise PermanentError(
            f"{here}: Data has no dynamodb object: {raw[:200]!r}; is this stream written by "
            "DynamoDB (Kinesis Data Streams for DynamoDB)?"
        )
    if "ApproximateCreationDateTime" not in ddb:
        raise PermanentError(f"{here}: Data has no dynamodb.ApproximateCreationDateTime")
    micros, precision = created_micros(
        ddb["ApproximateCreationDateTime"], ddb.get("ApproximateCreationDateTimePrecision"), here
    )
    try:
        created = _EPOCH + timedelta(microseconds=micros)
    except OverflowError as exc:
        raise PermanentError(
            f"{here}: ApproximateCreationDateTime {ddb['ApproximateCreationDateTime']} is "
            "beyond the year 9999"
        ) from exc
    ddb["ApproximateCreationDateTime"] = created
    ddb["ApproximateCreationDateTimePrecision"] = precision
    ddb["SequenceNumber"] = sequence_number
    record: dict[str, Any] = doc
    return record


def kinesis_page(records: Iterable[Mapping[str, Any]], where: str) -> WireRecords:
    """A Kinesis GetRecords page (`Records`: SequenceNumber, Data, ...) as stream records."""
    page = WireRecords()
    for record in records:
        seq = record.get("SequenceNumber")
        if type(seq) is not str:
            raise PermanentError(f"{where}: a Kinesis record without a SequenceNumber")
        page.append(stream_record_from_kinesis(record.get("Data"), seq, where))
    return page


__all__ = [
    "MICROSECOND",
    "MILLISECOND",
    "SLOTS",
    "created_micros",
    "kinesis_page",
    "stream_record_from_kinesis",
]
