"""GetRecords errors through the raw-body hook (get_records.py) are the errors botocore makes.

The hook takes successful GetRecords bodies away from botocore's parser; an error response
must reach the caller exactly as it would without the hook: same ClientError class, code,
message and status, and the same outcome in `ShardReader` (throttling retried, an expired
iterator re-acquired, trimmed data a DataLossError). Real botocore clients parse canned HTTP
responses in DynamoDB Streams' own JSON 1.0 error form, served by a `before-send` handler
(no network); moto cannot throttle, expire an iterator or trim a shard.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

from bridge.model.errors import DataLossError
from connectors.sources.stream.get_records import WireRecords, keep_raw_body
from connectors.sources.stream.shards import DynamoDBStreamsTransport, ShardReader
from connectors.sources.stream.text_pages import TextRecords

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
SHARD = "shardId-00000001700000000000-aaaaaaaa"

ERRORS = {
    "ProvisionedThroughputExceededException": (
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API."
    ),
    "ThrottlingException": "Rate exceeded for shard " + SHARD,
    "ExpiredIteratorException": (
        "Iterator expired. The iterator was created at time Thu Jan 01 00:00:00 UTC 2026 "
        "while right now it is Thu Jan 01 00:15:01 UTC 2026 which is further in the future "
        "than the tolerated delay of 900000 milliseconds."
    ),
    "TrimmedDataAccessException": (
        "The operation attempted to read past the oldest stream record in a shard."
    ),
}

# The codes botocore's DynamoDB Streams model has an exception class of its own for.
MODELED = {"ExpiredIteratorException", "TrimmedDataAccessException"}

RECORD = {
    "awsRegion": "us-east-1",
    "eventID": "e1",
    "eventName": "INSERT",
    "eventSource": "aws:dynamodb",
    "eventVersion": "1.1",
    "dynamodb": {
        "ApproximateCreationDateTime": 1767225600,
        "Keys": {"pk": {"S": "a"}},
        "NewImage": {"pk": {"S": "a"}, "n": {"N": "1"}},
        "SequenceNumber": "100000000000000000001",
        "SizeBytes": 12,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    },
}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class CannedEndpoint:
    """Answers each call with the next scripted (status, JSON document) for its operation."""

    def __init__(self) -> None:
        self.answers: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self.calls: list[str] = []

    def script(self, operation: str, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers.setdefault(operation, deque()).extend(answers)

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        operation = request.headers["X-Amz-Target"].decode().split(".")[-1]
        self.calls.append(operation)
        status, doc = self.answers[operation].popleft()
        body = json.dumps(doc).encode()
        headers = {
            "x-amzn-RequestId": "R" * 52,
            "Content-Type": "application/x-amz-json-1.0",
            "Content-Length": str(len(body)),
        }
        return AWSResponse(request.url, status, headers, _Raw(body))


def error(code: str) -> tuple[int, dict[str, Any]]:
    """DynamoDB Streams' error document: a 400 naming the exception by its full type."""
    return 400, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": ERRORS[code]}


def page(*records: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {"Records": list(records), "NextShardIterator": "it-next"}


ITERATOR = (200, {"ShardIterator": "it-1"})


def client(endpoint: CannedEndpoint, hooked: bool) -> Any:
    streams = boto3.client(
        "dynamodbstreams",
        region_name="us-east-1",
        endpoint_url="http://streams.invalid",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        # One attempt: each call meets its scripted answer (botocore would retry throttling).
        config=Config(retries={"total_max_attempts": 1}),
    )
    streams.meta.events.register("before-send.dynamodb-streams", endpoint)
    if hooked:
        assert keep_raw_body(streams)
    return streams


def client_error(streams: Any) -> tuple[Any, ...]:
    with pytest.raises(ClientError) as caught:
        streams.get_records(ShardIterator="it-1")
    exc = caught.value
    return (
        type(exc).__name__,
        exc.response["Error"],
        exc.response["ResponseMetadata"]["HTTPStatusCode"],
        str(exc),
    )


@pytest.mark.parametrize("code", list(ERRORS))
def test_a_get_records_error_is_the_same_client_error_with_and_without_the_hook(
    code: str,
) -> None:
    seen = []
    for hooked in (True, False):
        endpoint = CannedEndpoint()
        endpoint.script("GetRecords", error(code))
        seen.append(client_error(client(endpoint, hooked)))
    with_hook, without = seen
    assert with_hook == without
    # DynamoDB Streams' model names its own exceptions; throttling is a plain ClientError.
    kind = code if code in MODELED else "ClientError"
    assert with_hook[:3] == (kind, {"Code": code, "Message": ERRORS[code]}, 400)


class PlainTransport(DynamoDBStreamsTransport):
    """The DynamoDB Streams transport without the raw-body hook: botocore parses everything."""

    def prepare_reader(self) -> None:
        pass


def read_with(hooked: bool, *get_records: tuple[int, dict[str, Any]]) -> tuple[Any, ...]:
    """What `ShardReader` makes of GetRecords' scripted answers: (records as published,
    position, calls made), or the error it raised with its cause's code and message."""
    endpoint = CannedEndpoint()
    endpoint.script("GetShardIterator", ITERATOR, ITERATOR)
    endpoint.script("GetRecords", *get_records)
    streams = client(endpoint, hooked=False)
    transport = DynamoDBStreamsTransport(streams) if hooked else PlainTransport(streams)
    reader = ShardReader(transport, ARN, SHARD, "TRIM_HORIZON", threading.Event())
    reader._backoff.base_s = 0.001  # throttling is retried; no need to wait here
    try:
        batch = reader.read()
    except Exception as exc:
        cause = exc.__cause__
        assert isinstance(cause, ClientError)
        return (type(exc), str(exc), cause.response["Error"], endpoint.calls)
    assert isinstance(batch.records, WireRecords) == hooked  # each path really taken
    # A body the compiled core read as text holds each record's summary: the page itself is
    # what the processor publishes.
    records = batch.records
    if isinstance(records, TextRecords):
        records = records.parsed()
    keys = [r["dynamodb"]["Keys"] for r in records]
    return (keys, reader.position, endpoint.calls)


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_the_reader_retries_throttling_alike_with_and_without_the_hook(code: str) -> None:
    answers = (error(code), error(code), page(RECORD))
    with_hook = read_with(True, *answers)
    assert with_hook == read_with(False, *answers)
    assert with_hook == (
        [{"pk": {"S": "a"}}],
        "100000000000000000001",
        ["GetShardIterator", "GetRecords", "GetRecords", "GetRecords"],
    )


def test_the_reader_reacquires_an_expired_iterator_alike_with_and_without_the_hook() -> None:
    answers = (error("ExpiredIteratorException"), page(RECORD))
    with_hook = read_with(True, *answers)
    assert with_hook == read_with(False, *answers)
    assert with_hook[2] == ["GetShardIterator", "GetRecords", "GetShardIterator", "GetRecords"]


def test_the_reader_reports_trimmed_data_alike_with_and_without_the_hook() -> None:
    answers = (error("TrimmedDataAccessException"),)
    with_hook = read_with(True, *answers)
    assert with_hook == read_with(False, *answers)
    kind, message, cause, _calls = with_hook
    assert kind is DataLossError and SHARD in message and "trim horizon" in message
    assert cause == {"Code": "TrimmedDataAccessException", "Message": ERRORS[cause["Code"]]}
