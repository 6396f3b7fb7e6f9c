"""Reads where a table's migration stands on the DynamoDB side, for `ddb-bridge status`.

Everything comes from one consistent scan of the lease table (shard leases, the capture
record, back-fill runs and parts, verify outcomes, and the KCL processor's per-shard
versions, which stand for the shards the Java KCL drives) plus, per open shard, a look at the
stream (the table's DynamoDB stream, or its Kinesis data stream with that transport) past
its checkpoint: DynamoDB Streams report no "behind latest" figure, so status
reads the records the producer has not checkpointed yet and reports their count (up to one
page) and the age of the oldest. Read-only: nothing here writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bridge.model.errors import DataLossError, TransientError
from bridge.status.report import BackfillRun, ShardStatus, StreamStatus, VerifyOutcome
from connectors.dynamodb.aws import Interrupted, describe_table, error_code, translate
from connectors.dynamodb.capture import CAPTURE_PREFIX, CaptureRecord, capture_from_item
from connectors.dynamodb.verify_record import VERIFY_PREFIX, outcome_from_item
from connectors.sources.backfill.runs import DONE
from connectors.sources.backfill.runs import PREFIX as BACKFILL_PREFIX
from connectors.sources.stream.kcl.versions import VERSIONS_PREFIX, entries_of
from connectors.sources.stream.leases import Lease
from connectors.sources.stream.shards import ShardReader, as_transport
from connectors.sources.stream.transport import SHARD_END, TRIM_HORIZON, Transport

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

# Pages read past a checkpoint before calling a shard caught up: an open shard may answer a
# few empty pages before the records behind them.
PEEK_PAGES = 3
# The stream readers retry throttling and connection errors until stopped; status gives up
# on a shard after this long and says so, rather than hang.
PEEK_TIMEOUT_S = 20.0


def _deadline(seconds: float) -> threading.Event:
    """An event that sets itself after `seconds` (the stop signal of the stream readers)."""
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True
    timer.start()
    return stop


@dataclass
class LeaseTableState:
    """The lease table's items, sorted by what they are."""

    leases: list[Lease] = field(default_factory=list)
    captures: dict[str, CaptureRecord] = field(default_factory=dict)  # by stream ARN
    runs: list[dict[str, Any]] = field(default_factory=list)
    parts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by run key
    verifies: dict[tuple[str, str], VerifyOutcome] = field(default_factory=dict)


def _scan(ddb: DynamoDBClient, lease_table: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"TableName": lease_table, "ConsistentRead": True}
    while True:
        try:
            page = ddb.scan(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return  # no lease table: nothing ever ran
            raise translate(exc, f"Scan {lease_table}") from exc
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def read_lease_table(ddb: DynamoDBClient, lease_table: str) -> LeaseTableState:
    state = LeaseTableState()
    for item in _scan(ddb, lease_table):
        key = item["leaseKey"]["S"]
        kind = item.get("kind", {}).get("S")
        if key.startswith(CAPTURE_PREFIX):
            state.captures[item["streamArn"]["S"]] = capture_from_item(item)
        elif key.startswith(VERIFY_PREFIX):
            outcome = outcome_from_item(item)
            state.verifies[(outcome.table, outcome.target)] = outcome
        elif key.startswith(BACKFILL_PREFIX) and kind == "backfill-run":
            state.runs.append(item)
        elif key.startswith(BACKFILL_PREFIX) and kind == "backfill-part":
            state.parts.setdefault(key.rsplit("#", 1)[0], []).append(item)
        elif "shardId" in item:
            state.leases.append(Lease.from_item(item))
        elif key.startswith(VERSIONS_PREFIX):
            state.leases.append(kcl_shard(item))
    return state


def kcl_shard(item: dict[str, Any]) -> Lease:
    """A shard the Java KCL drives the bridge's processor on, as `status` shows a lease: its
    owner is the processor (`kcl-<id>`), its checkpoint the newest the processor recorded
    versions for (the KCL's own checkpoint, in the KCL's lease table, is that one or the one
    before). The item is the processor's (connectors/sources/stream/kcl/versions.py)."""
    entries = entries_of(item)
    ended = [e for e in entries if e.sequence == SHARD_END]
    numbered = [e for e in entries if e.sequence.isdigit()]
    newest = ended[-1] if ended else max(numbered, key=lambda e: int(e.sequence), default=None)
    return Lease(
        key=item["leaseKey"]["S"],
        stream_arn=item["kinesisStreamArn"]["S"],
        shard_id=item["kinesisShardId"]["S"],
        table=item["tableName"]["S"],
        owner=item["leaseOwner"]["S"] if "leaseOwner" in item else None,
        counter=int(item["leaseCounter"]["N"]) if "leaseCounter" in item else 0,
        # No checkpoint yet: the shard is read from its start.
        checkpoint=newest.sequence if newest is not None else TRIM_HORIZON,
        last_version=newest.last_version if newest is not None else None,
        parent_ids=(),
        checkpoint_at_ms=int(item["checkpointAtMs"]["N"]) if "checkpointAtMs" in item else None,
    )


def backfill_runs(state: LeaseTableState, table: str) -> list[BackfillRun]:
    """The table's back-fill runs, oldest first (the last one is the one that counts)."""
    out = []
    for item in state.runs:
        if item["tableName"]["S"] != table:
            continue
        parts = state.parts.get(item["leaseKey"]["S"], [])
        out.append(
            BackfillRun(
                run_id=item["runId"]["S"],
                kind=item["sourceKind"]["S"],
                state=item["state"]["S"],
                parts=int(item["parts"]["N"]),
                parts_done=sum(1 for p in parts if p["state"]["S"] == DONE),
                items=sum(int(p.get("items", {}).get("N", "0")) for p in parts),
                total_items=int(item["totalItems"]["N"]) if "totalItems" in item else None,
                created_at_ms=int(item["createdAtMs"]["N"]) if "createdAtMs" in item else None,
                finished_at_ms=int(item["finishedAtMs"]["N"]) if "finishedAtMs" in item else None,
            )
        )
    out.sort(key=lambda r: (r.created_at_ms or 0, r.run_id))
    return out


def stream_arn(ddb: DynamoDBClient, table: str) -> str | None:
    """The table's current stream ARN, None when it has no stream."""
    desc = describe_table(ddb, table)  # ConfigError when the table does not exist
    spec = desc.get("StreamSpecification") or {}
    arn = desc.get("LatestStreamArn")
    return str(arn) if spec.get("StreamEnabled") and arn else None


def _peek(streams: Transport, lease: Lease, now_ms: int) -> ShardStatus:
    """How much of `lease`'s shard lies past its checkpoint, and how old the oldest is."""
    age = (now_ms - lease.checkpoint_at_ms) / 1000 if lease.checkpoint_at_ms else None
    base = ShardStatus(
        shard_id=lease.shard_id,
        owner=lease.owner,
        checkpoint=lease.checkpoint,
        checkpoint_age_s=age,
        finished=lease.finished,
        unread=None,
        ms_behind=None,
        data_loss=lease.data_loss,
    )
    if lease.finished:
        return replace(base, unread=0)
    if lease.data_loss is not None:
        return base  # stopped: nobody reads it until an operator clears the alarm
    reader = ShardReader(
        streams,
        lease.stream_arn,
        lease.shard_id,
        lease.checkpoint,
        _deadline(PEEK_TIMEOUT_S),
        limit=1000,
    )
    try:
        for _ in range(PEEK_PAGES):
            batch = reader.read()
            if batch.records:
                created = batch.records[0]["dynamodb"].get("ApproximateCreationDateTime")
                behind = max(0, now_ms - int(created.timestamp() * 1000)) if created else None
                return replace(base, unread=len(batch.records), ms_behind=behind)
            if batch.end:
                break
    except DataLossError as exc:
        return replace(base, error=str(exc))
    except Interrupted:
        return replace(
            base, error=f"no answer within {PEEK_TIMEOUT_S:.0f} s (throttled or unreachable)"
        )
    return replace(base, unread=0, ms_behind=0)


def stream_status(
    ddb: DynamoDBClient,
    streams: Transport | DynamoDBStreamsClient,
    state: LeaseTableState,
    table: str,
) -> StreamStatus:
    """`streams`: the configured transport (a bare DynamoDB Streams client: that one)."""
    transport = as_transport(streams)
    # The Kinesis transport's leases and capture are under the Kinesis stream's ARN.
    arn = stream_arn(ddb, table) if transport.kind == "dynamodb" else transport.stream_arn(table)
    if arn is None:
        return StreamStatus(stream_arn=None, captured_since_ms=None)
    capture = state.captures.get(arn)
    if capture is None:
        return StreamStatus(stream_arn=arn, captured_since_ms=None)
    now_ms = int(time.time() * 1000)
    leases = sorted((le for le in state.leases if le.stream_arn == arn), key=lambda le: le.shard_id)
    leased = {le.shard_id for le in leases}
    try:
        listed = transport.list_shards(arn, _deadline(PEEK_TIMEOUT_S))
    except Interrupted as exc:
        raise TransientError(
            f"DescribeStream {arn}: no answer within {PEEK_TIMEOUT_S:.0f} s "
            "(throttled or unreachable)"
        ) from exc
    unleased = [s.shard_id for s in listed if s.shard_id not in leased]
    return StreamStatus(
        stream_arn=arn,
        captured_since_ms=capture.started_at_ms,
        data_loss=capture.data_loss,
        shards=[_peek(transport, lease, now_ms) for lease in leases],
        unleased_shards=sorted(unleased),
    )
