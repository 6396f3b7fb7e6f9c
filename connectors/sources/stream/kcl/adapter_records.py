"""DynamoDB Streams records as the DynamoDB Streams Kinesis Adapter hands them to MultiLang.

Under KCL 3 the adapter (com.amazonaws:dynamodb-streams-kinesis-adapter 2.x) reads GetRecords
with the AWS SDK for Java v2 and gives each record to the KCL as a Kinesis record whose data is
the SDK's `Record` written back out as JSON by the adapter's own Jackson mapper
(`RecordObjectMapper`): the wire record's fields under the wire's names, binary as base64,
numbers as strings, attributes in the wire's order — except three. `dynamodb.
ApproximateCreationDateTime` is epoch *milliseconds* (an integer; the wire has epoch
seconds); `userIdentity` carries `principalId`/`type` (the wire: `PrincipalId`/`Type`, which
the TTL rule reads); and an image the record does not have is written as an empty map (the
SDK's absent map is an empty one: an INSERT's data says `"OldImage":{}`). An image is never
empty when present (it holds the item's key), so an empty one is dropped.

`stream_record_from_adapter` turns that data back into the record `get_records.read_page`
makes of a GetRecords page (wire form, `ApproximateCreationDateTime` an aware datetime), so
the shared `KafkaRecordProcessor` versions and encodes it exactly as the native reader does.
The SDK keeps milliseconds (DynamoDB itself gives whole seconds), so nothing of the time is
lost on the way.

Delivery guarantee: none on its own; data it cannot read is a PermanentError naming where it
was read and the sequence number, never a skipped record.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bridge.model.errors import PermanentError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The adapter's mapper names the Identity's fields after the SDK's accessors.
_IDENTITY = {"principalId": "PrincipalId", "type": "Type"}


def stream_record_from_adapter(data: bytes, sequence_number: str, where: str) -> dict[str, Any]:
    """One adapter record's data as a wire-form DynamoDB Streams record."""
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(
            f"{where} sequence {sequence_number}: the adapter's record is not JSON ({exc}): "
            f"{data[:200]!r}"
        ) from exc
    if type(record) is not dict:
        raise PermanentError(
            f"{where} sequence {sequence_number}: the adapter's record is not an object: "
            f"{data[:200]!r}"
        )
    out: dict[str, Any] = record
    ddb = out.get("dynamodb")
    if type(ddb) is not dict:
        raise PermanentError(
            f"{where} sequence {sequence_number}: the adapter's record has no dynamodb "
            f"object: {data[:200]!r}"
        )
    if ddb.get("SequenceNumber") != sequence_number:
        # The KCL checkpoints the Kinesis record's sequence number: it must be the stream's.
        raise PermanentError(
            f"{where} sequence {sequence_number}: the record inside says SequenceNumber "
            f"{ddb.get('SequenceNumber')!r}"
        )
    created = ddb.get("ApproximateCreationDateTime")
    if created is not None:
        if type(created) is not int or created < 0:
            raise PermanentError(
                f"{where} sequence {sequence_number}: ApproximateCreationDateTime {created!r} "
                "is not epoch milliseconds"
            )
        ddb["ApproximateCreationDateTime"] = _EPOCH + timedelta(milliseconds=created)
    for image in ("NewImage", "OldImage"):
        if ddb.get(image) == {}:
            del ddb[image]
    identity = out.get("userIdentity")
    if type(identity) is dict:
        out["userIdentity"] = {_IDENTITY.get(k, k): v for k, v in identity.items()}
    return out
