"""A scripted DynamoDB Streams endpoint that presents a shard split, which moto cannot.

moto gives a table's stream one shard that never closes. This front answers the three calls a
stream reader makes (DescribeStream, with or without a CHILD_SHARDS ShardFilter, paged by
ExclusiveStartShardId; GetShardIterator of every type; GetRecords), in the service's JSON 1.0
protocol, over a stream the test scripts: shards with their parent, records, and a closed
parent (an EndingSequenceNumber, and no NextShardIterator once its last record is read).
Both the Java SDK (the DynamoDB Streams Kinesis Adapter) and boto3 (the native reader) read
it the same way they read the service. Everything else (the table, the lease tables) stays on
moto.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "DynamoDBStreams_20120810."


@dataclass
class FrontShard:
    shard_id: str
    parent: str | None
    records: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False


class ScriptedStream:
    """One stream's shards; sequence numbers rise across the stream, as DynamoDB's do."""

    def __init__(self, arn: str, table: str) -> None:
        self.arn, self.table = arn, table
        self.shards: dict[str, FrontShard] = {}
        self.sequence = 100_000_000_000_000_000_000
        self.lock = threading.Lock()

    def add_shard(self, shard_id: str, parent: str | None = None) -> FrontShard:
        self.shards[shard_id] = FrontShard(shard_id, parent)
        return self.shards[shard_id]

    def put(
        self,
        shard_id: str,
        event: str,
        keys: dict[str, Any],
        created_s: int,
        new: dict[str, Any] | None = None,
        old: dict[str, Any] | None = None,
    ) -> str:
        with self.lock:
            self.sequence += 1
            seq = str(self.sequence)
            ddb: dict[str, Any] = {
                "ApproximateCreationDateTime": created_s,
                "Keys": keys,
                "SequenceNumber": seq,
                "SizeBytes": 50,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            }
            if new is not None:
                ddb["NewImage"] = new
            if old is not None:
                ddb["OldImage"] = old
            self.shards[shard_id].records.append(
                {
                    "eventID": f"ev{seq}",
                    "eventName": event,
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": "us-east-1",
                    "dynamodb": ddb,
                }
            )
            return seq

    def _describe(self, body: dict[str, Any]) -> dict[str, Any]:
        shards = list(self.shards.values())
        wanted = body.get("ShardFilter") or {}
        if wanted.get("Type") == "CHILD_SHARDS":
            shards = [s for s in shards if s.parent == wanted.get("ShardId")]
        start = body.get("ExclusiveStartShardId")
        if start is not None:
            ids = [s.shard_id for s in shards]
            shards = shards[ids.index(start) + 1 :] if start in ids else []
        limit = int(body.get("Limit") or 100)
        page, more = shards[:limit], len(shards) > limit
        out = []
        for s in page:
            seqs = [r["dynamodb"]["SequenceNumber"] for r in s.records]
            rng: dict[str, str] = {"StartingSequenceNumber": seqs[0] if seqs else "0"}
            if s.closed:
                rng["EndingSequenceNumber"] = seqs[-1] if seqs else rng["StartingSequenceNumber"]
            shard: dict[str, Any] = {"ShardId": s.shard_id, "SequenceNumberRange": rng}
            if s.parent:
                shard["ParentShardId"] = s.parent
            out.append(shard)
        description: dict[str, Any] = {
            "StreamArn": self.arn,
            "StreamLabel": self.arn.rsplit("/", 1)[1],
            "StreamStatus": "ENABLED",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "TableName": self.table,
            "CreationRequestDateTime": 1_790_000_000,
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "Shards": out,
        }
        if more:
            description["LastEvaluatedShardId"] = page[-1].shard_id
        return {"StreamDescription": description}

    def _iterator(self, body: dict[str, Any]) -> dict[str, Any]:
        shard = self.shards.get(body.get("ShardId", ""))
        if shard is None or body.get("StreamArn") != self.arn:
            raise LookupError(f"no shard {body.get('ShardId')} in {body.get('StreamArn')}")
        kind = body["ShardIteratorType"]
        seqs = [r["dynamodb"]["SequenceNumber"] for r in shard.records]
        if kind == "TRIM_HORIZON":
            at = 0
        elif kind == "LATEST":
            at = len(seqs)
        else:
            at = seqs.index(body["SequenceNumber"]) + (kind == "AFTER_SEQUENCE_NUMBER")
        return {"ShardIterator": f"{shard.shard_id}|{at}"}

    def _records(self, body: dict[str, Any]) -> dict[str, Any]:
        shard_id, _, at_text = body["ShardIterator"].partition("|")
        shard, at = self.shards[shard_id], int(at_text)
        page = shard.records[at : at + int(body.get("Limit") or 1000)]
        out: dict[str, Any] = {"Records": page}
        end = at + len(page)
        if not (shard.closed and end >= len(shard.records)):
            out["NextShardIterator"] = f"{shard_id}|{end}"
        return out

    def answer(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if operation == "DescribeStream":
                return self._describe(body)
            if operation == "GetShardIterator":
                return self._iterator(body)
            if operation == "GetRecords":
                return self._records(body)
        raise NotImplementedError(operation)


@contextmanager
def streams_front(stream: ScriptedStream) -> Iterator[str]:
    """Serve `stream` on a free loopback port; yields the endpoint URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            operation = (self.headers.get("X-Amz-Target") or "").removeprefix(PREFIX)
            try:
                status, out = 200, stream.answer(operation, body)
            except (LookupError, ValueError) as exc:
                status, out = (
                    400,
                    {
                        "__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                        "message": str(exc),
                    },
                )
            except NotImplementedError:
                status, out = (
                    400,
                    {
                        "__type": "com.amazonaws.dynamodb.v20120810#UnknownOperationException",
                        "message": operation,
                    },
                )
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", "front")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
