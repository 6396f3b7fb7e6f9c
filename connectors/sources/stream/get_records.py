"""GetRecords' response read as the DynamoDB JSON it already is.

DynamoDB Streams answers GetRecords in DynamoDB JSON: numbers as decimal strings, binary as
base64 text, `ApproximateCreationDateTime` as epoch seconds. That is the wire form the bridge
publishes. botocore's parser walks the whole document against the service model in Python,
turning every B into bytes and every timestamp into a datetime (~4x the cost of parsing the
JSON itself), only for `attrs.from_boto` to turn the bytes back into base64 text.

`keep_raw_body` registers a `before-parse` hook on one streams client: a successful (200)
GetRecords response reaches the caller as its body under `RAW_BODY`, and botocore parses an
empty document in its place. Error responses are left to botocore, so error codes,
ClientError, retries and backoff are unchanged. `read_page` turns either kind of page into
records: from the body, `WireRecords` (wire form, parsed with orjson); from a parsed page
(a client without the hook, e.g. a test double), boto3's form as before.
`ChangeEvent.from_stream_record(..., wire=True)` validates wire records as strictly as the
boto3 path and yields equal events (tests/unit/test_stream_wire_records.py holds the two
paths equal, envelope bytes included, and rejecting the same bad records).

Delivery guarantee: none on its own; a page it cannot read is a PermanentError naming the
shard, never a skipped page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from botocore.utils import parse_timestamp

from bridge.model.errors import PermanentError

# The key under which the hook leaves the body in the parsed response (not an AWS field).
RAW_BODY = "DdbBridgeRawBody"
_HOOK_ID = "ddb-bridge-get-records-raw-body"


class WireRecords(list[dict[str, Any]]):
    """Stream records as GetRecords' JSON has them: images in wire form (B as base64 text).

    Only `ApproximateCreationDateTime` is converted, to the datetime botocore would make, so
    versions are computed from the same value on both paths.
    """


def keep_raw_body(streams: Any) -> bool:
    """Have this client's GetRecords return its body under `RAW_BODY`; False when `streams`
    is not a botocore client. Idempotent: the hook is registered under a unique id."""
    meta = getattr(streams, "meta", None)
    events = getattr(meta, "events", None)
    if meta is None or events is None:
        return False
    service = meta.service_model.service_id.hyphenize()
    events.register(f"before-parse.{service}.GetRecords", _keep_body, unique_id=_HOOK_ID)
    return True


def _keep_body(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    if response_dict.get("status_code") != 200 or not response_dict.get("body"):
        return  # errors (and anything unexpected) are botocore's to parse, as always
    customized_response_dict[RAW_BODY] = response_dict["body"]
    response_dict["body"] = b"{}"


def created_datetime(value: Any) -> Any:
    """`ApproximateCreationDateTime` as botocore parses it: epoch seconds (the wire's form)
    become an aware datetime of the same instant; anything else goes through botocore's
    own timestamp parser, so both paths agree on every input."""
    if type(value) is int or type(value) is float:
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return parse_timestamp(value)


def read_page(page: Mapping[str, Any], where: str) -> tuple[list[Any], str | None]:
    """(records, NextShardIterator) of one GetRecords page, raw body or parsed; `where`
    names the stream and shard in errors."""
    body = page.get(RAW_BODY)
    if body is None:
        return list(page.get("Records", [])), page.get("NextShardIterator")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(
            f"{where}: the GetRecords response is not valid JSON ({exc}): {bytes(body[:200])!r}"
        ) from exc
    records = doc.get("Records", []) if type(doc) is dict else None
    if type(records) is not list:
        raise PermanentError(
            f"{where}: the GetRecords response has no list of Records: {bytes(body[:200])!r}"
        )
    for record in records:
        ddb = record.get("dynamodb") if type(record) is dict else None
        if type(ddb) is dict and "ApproximateCreationDateTime" in ddb:
            try:
                ddb["ApproximateCreationDateTime"] = created_datetime(
                    ddb["ApproximateCreationDateTime"]
                )
            except (ValueError, TypeError, OverflowError, RuntimeError) as exc:
                raise PermanentError(
                    f"{where} sequence {ddb.get('SequenceNumber')}: "
                    f"ApproximateCreationDateTime {ddb['ApproximateCreationDateTime']!r} "
                    f"is not a time: {exc}"
                ) from exc
    return WireRecords(records), doc.get("NextShardIterator")
