"""A DynamoDB endpoint for the 1,000,000-item benchmarks: generated Streams and Scan data in
front of a moto server.

moto serves Scan and GetRecords from one Python process at a few hundred to a few thousand
items a second, and holding a million items costs it minutes and gigabytes, so the
benchmarks' million-item stream and scan cannot come from it. This server answers on one
endpoint (the bridge has one `aws.endpoint_url` for every DynamoDB service):

- DynamoDB Streams (`DynamoDBStreams_20120810.*`: DescribeStream, GetShardIterator,
  GetRecords, ListStreams) for every stream ARN asked about: `shards` open shards holding
  `records` generated records between them, in the wire format AWS returns (DynamoDB JSON,
  epoch-second `ApproximateCreationDateTime`, numeric string sequence numbers increasing
  along a shard, at most `Limit` (1,000) records a page);
- `Scan` of the one table named `scan_table`: `items` generated items split into segments as
  `Segment`/`TotalSegments` ask, pages of at most `Limit` items or ~1 MB (DynamoDB's page
  size), `LastEvaluatedKey` as the last item's key;
- every other request (the lease table, DescribeTable, the capture record) is forwarded
  byte for byte to the moto server behind it, so leases and checkpoints are moto's.

Items are `benchmarks.bench_export.bench_item` (the same ~350-byte items as the export
benchmark). What this does not model: throttling, shard splits, trimming, iterator expiry
(the tests cover those with scripted clients and moto).
"""

from __future__ import annotations

import http.client
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson

from benchmarks.bench_export import bench_item

STREAMS_PREFIX = "DynamoDBStreams_20120810."
SCAN_TARGET = "DynamoDB_20120810.Scan"
PAGE_BYTES = 1_000_000  # a Scan page stops at 1 MB of items
FIRST_SEQUENCE = 10**20  # real sequence numbers are 21+ digit decimal strings
CREATED_AT = 1_700_000_000  # epoch seconds of the first generated record


def item_key(index: int) -> dict[str, Any]:
    item = bench_item(index)
    return {"pk": item["pk"], "sk": item["sk"]}


def index_of(key: dict[str, Any]) -> int:
    """The generated item's index from its key (`customer#000000123` -> 123)."""
    return int(key["pk"]["S"].split("#", 1)[1])


class StreamData:
    """`records` generated stream records over `shards` open shards.

    Record `i` of shard `s` is item `i * shards + s` (every key distinct): an INSERT with its
    new image for even items, a MODIFY with both images for odd ones (~1 KB, like the
    publish benchmark's records).
    """

    def __init__(self, records: int, shards: int) -> None:
        self.shards = shards
        self.per_shard = [
            records // shards + (1 if s < records % shards else 0) for s in range(shards)
        ]

    def shard_id(self, shard: int) -> str:
        return f"shardId-00000001700000000000-{shard:08x}"

    def shard_index(self, shard_id: str) -> int:
        return int(shard_id.rsplit("-", 1)[1], 16)

    @staticmethod
    def sequence(position: int) -> str:
        return str(FIRST_SEQUENCE + position)

    @staticmethod
    def position(sequence: str) -> int:
        return int(sequence) - FIRST_SEQUENCE

    def record(self, shard: int, position: int) -> dict[str, Any]:
        index = position * self.shards + shard
        item = bench_item(index)
        keys = {"pk": item["pk"], "sk": item["sk"]}
        ddb: dict[str, Any] = {
            "ApproximateCreationDateTime": CREATED_AT + index // 1000,
            "Keys": keys,
            "NewImage": item,
            "SequenceNumber": self.sequence(position),
            "SizeBytes": 350,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        name = "INSERT"
        if index % 2:
            name = "MODIFY"
            ddb["OldImage"] = {**item, "balance": {"N": "0"}}
            ddb["SizeBytes"] = 700
        return {
            "eventID": f"{index:032x}",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": ddb,
        }

    def describe(self, arn: str) -> dict[str, Any]:
        return {
            "StreamDescription": {
                "StreamArn": arn,
                "StreamLabel": arn.rsplit("/", 1)[-1],
                "StreamStatus": "ENABLED",
                "StreamViewType": "NEW_AND_OLD_IMAGES",
                "TableName": arn.split(":table/", 1)[-1].split("/", 1)[0],
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "Shards": [
                    {
                        "ShardId": self.shard_id(s),
                        "SequenceNumberRange": {"StartingSequenceNumber": self.sequence(0)},
                    }
                    for s in range(self.shards)
                ],
            }
        }

    def iterator(self, request: dict[str, Any]) -> dict[str, Any]:
        shard = self.shard_index(request["ShardId"])
        kind = request["ShardIteratorType"]
        if kind == "TRIM_HORIZON":
            at = 0
        elif kind == "LATEST":
            at = self.per_shard[shard]
        elif kind == "AT_SEQUENCE_NUMBER":
            at = self.position(request["SequenceNumber"])
        else:  # AFTER_SEQUENCE_NUMBER
            at = self.position(request["SequenceNumber"]) + 1
        return {"ShardIterator": f"{shard}:{at}"}

    def get_records(self, request: dict[str, Any]) -> dict[str, Any]:
        shard, at = (int(v) for v in request["ShardIterator"].split(":"))
        limit = min(int(request.get("Limit", 1000)), 1000)
        end = min(at + limit, self.per_shard[shard])
        records = [self.record(shard, p) for p in range(at, end)]
        # Open shards: always a next iterator, empty pages once the records are all read.
        return {"Records": records, "NextShardIterator": f"{shard}:{max(at, end)}"}


class ScanData:
    """`items` generated items of one table, segment `s` of `T` holding items s, s+T, ..."""

    def __init__(self, table: str, items: int) -> None:
        self.table = table
        self.items = items
        self.item_bytes = len(orjson.dumps(bench_item(0)))

    def scan(self, request: dict[str, Any]) -> dict[str, Any]:
        total = int(request.get("TotalSegments", 1))
        segment = int(request.get("Segment", 0))
        start = request.get("ExclusiveStartKey")
        index = segment if start is None else index_of(start) + total
        limit = int(request.get("Limit") or 10**9)
        limit = min(limit, max(1, PAGE_BYTES // self.item_bytes))
        items: list[dict[str, Any]] = []
        while index < self.items and len(items) < limit:
            items.append(bench_item(index))
            index += total
        out: dict[str, Any] = {"Items": items, "Count": len(items), "ScannedCount": len(items)}
        if index < self.items and items:
            out["LastEvaluatedKey"] = {"pk": items[-1]["pk"], "sk": items[-1]["sk"]}
        if request.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES"):
            units = math.ceil(len(items) * self.item_bytes / 4096) * (
                1.0 if request.get("ConsistentRead") else 0.5
            )
            out["ConsumedCapacity"] = {"TableName": self.table, "CapacityUnits": units}
        return out


class FakeDynamoDB:
    """The server's state: what it generates, where it forwards, and what it served."""

    def __init__(
        self, moto_url: str, stream: StreamData | None = None, scan: ScanData | None = None
    ) -> None:
        parts = urlsplit(moto_url)
        self.moto_host = parts.hostname or "127.0.0.1"
        self.moto_port = parts.port or 80
        self.stream = stream
        self.scan = scan
        self.records_served = 0
        self.items_served = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def answer(self, target: str, body: bytes) -> dict[str, Any] | None:
        """The generated answer to a request, or None to forward it to moto."""
        if target.startswith(STREAMS_PREFIX) and self.stream is not None:
            request = orjson.loads(body)
            op = target[len(STREAMS_PREFIX) :]
            if op == "DescribeStream":
                return self.stream.describe(request["StreamArn"])
            if op == "GetShardIterator":
                return self.stream.iterator(request)
            if op == "GetRecords":
                page = self.stream.get_records(request)
                with self._lock:
                    self.records_served += len(page["Records"])
                return page
            return None  # ListStreams: moto knows the table's stream
        if target == SCAN_TARGET and self.scan is not None:
            request = orjson.loads(body)
            if request.get("TableName") == self.scan.table:
                page = self.scan.scan(request)
                with self._lock:
                    self.items_served += page["Count"]
                return page
        return None

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.moto_host, self.moto_port, timeout=60)
            self._local.conn = conn
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException):
            conn.close()  # a stale keep-alive connection: one fresh try
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
        return response.status, response.getheaders(), response.read()


def _handler(fake: FakeDynamoDB) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:  # no line per request
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            target = self.headers.get("X-Amz-Target", "")
            try:
                answer = fake.answer(target, body) if self.command == "POST" else None
            except (KeyError, ValueError) as exc:
                payload = orjson.dumps(
                    {"__type": "com.amazon.coral.validate#ValidationException", "message": str(exc)}
                )
                self._reply(400, [("Content-Type", "application/x-amz-json-1.0")], payload)
                return
            if answer is not None:
                payload = orjson.dumps(answer)
                self._reply(200, [("Content-Type", "application/x-amz-json-1.0")], payload)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            status, reply_headers, payload = fake.forward(self.command, self.path, headers, body)
            kept = [
                (k, v)
                for k, v in reply_headers
                if k.lower() not in ("transfer-encoding", "connection", "content-length")
            ]
            self._reply(status, kept, payload)

        def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_POST = _serve
        do_GET = _serve
        do_PUT = _serve
        do_DELETE = _serve
        do_HEAD = _serve

    return Handler


@contextmanager
def fake_dynamodb(fake: FakeDynamoDB) -> Iterator[str]:
    """Serve `fake` on a free loopback port in a thread of this process; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fake-dynamodb", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
