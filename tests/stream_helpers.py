"""Helpers for the stream-producer tests: tables with streams, settings, a scripted streams
client (shard lineage, expired iterators, trimming, throttling: what moto does not simulate)
and a guard that no checkpoint passes a record the producer (tests/producer_fakes.py) holds
unacknowledged."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from bridge.runtime.config_file import write_config as write_settings_file
from bridge.runtime.settings import (
    AwsSettings,
    KafkaSettings,
    Settings,
    StreamSettings,
    TableSettings,
)
from tests.producer_fakes import HoldingProducer
from tests.support.config_sections import merged
from tests.support.wait import wait_until


def create_stream_table(ddb: Any, name: str, view: str | None = "NEW_AND_OLD_IMAGES") -> str:
    """A pk/sk table with a stream of `view` (None: no stream); returns its stream ARN or ''."""
    kwargs: dict[str, Any] = {}
    if view is not None:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    desc = ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        **kwargs,
    )["TableDescription"]
    return str(desc.get("LatestStreamArn", ""))


def stream_settings(
    endpoint: str,
    bootstrap: str,
    tables: list[str],
    lease_table: str,
    lease_duration_ms: int = 1500,
    **stream: Any,
) -> Settings:
    return Settings(
        aws=AwsSettings(endpoint_url=endpoint),
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, partitions=3, replication_factor=1, linger_ms=5
        ),
        tables=[TableSettings(name=t) for t in tables],
        stream=StreamSettings(
            lease_table=lease_table,
            poll_interval_ms=50,
            lease_duration_ms=lease_duration_ms,
            **stream,
        ),
    )


@contextlib.contextmanager
def running(worker: Any) -> Iterator[dict[str, Any]]:
    """Run `worker.run()` on a thread; on exit stop it and expose its result or exception."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["code"] = worker.run()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield outcome
    finally:
        worker.stop.set()
        thread.join(60)
        outcome["alive"] = thread.is_alive()


def guard_checkpoints(
    leases: Any,
    producer: HoldingProducer,
    violations: list[tuple[str, str, list[str]]] | None = None,
) -> list[tuple[str, str, list[str]]]:
    """Make `leases.checkpoint` (a worker's LeaseTable) refuse a write that passes a record
    `producer` holds unacknowledged: it raises, failing the shard and so the worker, and
    the write is kept in `violations` (returned) as (shard, position, unacknowledged
    sequence numbers)."""
    violations = [] if violations is None else violations
    write = leases.checkpoint

    def checked(
        lease: Any, position: str, last_version: int | None, item_versions: bytes = b""
    ) -> Any:
        pending = producer.unacked_through(lease.shard_id, position)
        if pending:
            violations.append((lease.shard_id, position, pending))
            raise AssertionError(
                f"checkpoint {position} of shard {lease.shard_id} written while Kafka has "
                f"not acknowledged {pending}"
            )
        return write(lease, position, last_version, item_versions)

    leases.checkpoint = checked
    return violations


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"scripted {code}"}}, operation)


@dataclass
class ScriptedShard:
    shard_id: str
    parent: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    trim_index: int = 0  # records before this index are trimmed away
    first_seq: int = 0


class ScriptedStreams:
    """A DynamoDB Streams client with scripted shards and faults.

    - shards page through DescribeStream one per page (exercises LastEvaluatedShardId);
      `ShardFilter` CHILD_SHARDS is honoured unless `honour_shard_filter` is False;
    - `expire_at[shard] = i`: the first GetRecords whose iterator points at record i fails
      with ExpiredIteratorException;
    - `trim_index`: an AFTER_SEQUENCE_NUMBER iterator before it is TrimmedDataAccessException;
    - `throttle`: the next N GetRecords calls fail with throttling errors.
    """

    def __init__(self, stream_arn: str) -> None:
        self.stream_arn = stream_arn
        self.shards: dict[str, ScriptedShard] = {}
        self.expire_at: dict[str, int] = {}
        self.throttle = 0
        self.throttled = 0
        self.iterator_requests: list[dict[str, Any]] = []
        # DescribeStream calls as made ({"start": ..., "filter": ...}); an endpoint that
        # ignores ShardFilter, as moto does, when `honour_shard_filter` is False.
        self.describe_requests: list[dict[str, Any]] = []
        self.honour_shard_filter = True
        self._iterators: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._next_seq = 1000

    def add_shard(self, shard_id: str, parent: str | None = None) -> ScriptedShard:
        shard = ScriptedShard(shard_id, parent, first_seq=self._next_seq)
        self._next_seq += 1_000_000
        self.shards[shard_id] = shard
        return shard

    def add_record(
        self, shard_id: str, op: str, pk: str, created: datetime, value: int = 0, ttl: bool = False
    ) -> dict[str, Any]:
        shard = self.shards[shard_id]
        seq = shard.first_seq + len(shard.records)
        keys = {"pk": {"S": pk}, "sk": {"N": "0"}}
        ddb: dict[str, Any] = {
            "ApproximateCreationDateTime": created,
            "Keys": keys,
            "SequenceNumber": str(seq).zfill(21),
            "SizeBytes": 10,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if op != "REMOVE":
            ddb["NewImage"] = {**keys, "v": {"N": str(value)}}
        record: dict[str, Any] = {"eventID": f"e{seq}", "eventName": op, "dynamodb": ddb}
        if ttl:  # how DynamoDB marks a delete by the TTL service
            record["userIdentity"] = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
        shard.records.append(record)
        return record

    # -- the boto3 surface ------------------------------------------------------------------

    def describe_stream(
        self,
        StreamArn: str,
        ExclusiveStartShardId: str | None = None,
        ShardFilter: dict[str, str] | None = None,
    ) -> Any:
        self.describe_requests.append({"start": ExclusiveStartShardId, "filter": ShardFilter})
        ids = list(self.shards)
        if ShardFilter is not None and self.honour_shard_filter:
            assert ShardFilter["Type"] == "CHILD_SHARDS"
            ids = [i for i in ids if self.shards[i].parent == ShardFilter["ShardId"]]
            if ExclusiveStartShardId is None and not ids:
                return {"StreamDescription": {"StreamArn": StreamArn, "Shards": []}}
        start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        page = ids[start : start + 1]
        desc: dict[str, Any] = {
            "StreamArn": StreamArn,
            "StreamStatus": "ENABLED",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "Shards": [self._describe(self.shards[i]) for i in page],
        }
        if start + 1 < len(ids):
            desc["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": desc}

    def _describe(self, shard: ScriptedShard) -> dict[str, Any]:
        seq: dict[str, str] = {"StartingSequenceNumber": str(shard.first_seq).zfill(21)}
        if shard.closed:
            seq["EndingSequenceNumber"] = str(shard.first_seq + len(shard.records)).zfill(21)
        out: dict[str, Any] = {"ShardId": shard.shard_id, "SequenceNumberRange": seq}
        if shard.parent:
            out["ParentShardId"] = shard.parent
        return out

    def get_shard_iterator(
        self,
        StreamArn: str,
        ShardId: str,
        ShardIteratorType: str,
        SequenceNumber: str | None = None,
    ) -> Any:
        with self._lock:
            self.iterator_requests.append(
                {"shard": ShardId, "type": ShardIteratorType, "seq": SequenceNumber}
            )
            shard = self.shards[ShardId]
            if ShardIteratorType == "TRIM_HORIZON":
                index = shard.trim_index
            elif ShardIteratorType == "LATEST":
                index = len(shard.records)
            else:
                assert SequenceNumber is not None
                index = int(SequenceNumber) - shard.first_seq
                if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
                    index += 1
                if index < shard.trim_index:
                    raise client_error("TrimmedDataAccessException", "GetShardIterator")
            return {"ShardIterator": self._issue(ShardId, index)}

    def _issue(self, shard_id: str, index: int) -> str:
        token = f"it-{len(self._iterators)}"
        self._iterators[token] = (shard_id, index)
        return token

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> Any:
        with self._lock:
            if self.throttle > 0:
                self.throttle -= 1
                self.throttled += 1
                code = (
                    "ProvisionedThroughputExceededException"
                    if self.throttled % 2
                    else "LimitExceededException"
                )
                raise client_error(code, "GetRecords")
            shard_id, index = self._iterators[ShardIterator]
            if self.expire_at.get(shard_id) == index:
                del self.expire_at[shard_id]
                raise client_error("ExpiredIteratorException", "GetRecords")
            shard = self.shards[shard_id]
            if index < shard.trim_index:
                raise client_error("TrimmedDataAccessException", "GetRecords")
            page = shard.records[index : index + min(Limit, 3)]  # small pages: more polls
            out: dict[str, Any] = {"Records": page}
            end = index + len(page)
            if not (shard.closed and end >= len(shard.records)):
                out["NextShardIterator"] = self._issue(shard_id, end)
            return out


def put_items(ddb: Any, table: str, start: int, n: int) -> None:
    """Items k<start>..k<start+n-1> (sort key 1) into a table of create_stream_table."""
    for i in range(start, start + n):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}, "sk": {"N": "1"}})


def at(second: float) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=second)


def write_config(
    path: Any, tables: list[str], lease_table: str, lease_duration_ms: int = 2000, **sections: Any
) -> Any:
    """A bridge.toml for `ddb-bridge stream`; endpoints come from the environment (cli_env).

    `sections` add to the base's keys (kafka={"extra": ...}) or add sections (apply=...).
    """
    base = {
        "aws": {"region": "us-east-1"},
        "kafka": {"partitions": 3, "replication_factor": 1, "linger_ms": 5},
        "tables": [{"name": t} for t in tables],
        "stream": {
            "lease_table": lease_table,
            "poll_interval_ms": 50,
            "lease_duration_ms": lease_duration_ms,
        },
    }
    return write_settings_file(path, **merged(base, **sections))


def cli_env(endpoint: str, bootstrap: str) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update(
        {
            "DDB_BRIDGE__AWS__ENDPOINT_URL": endpoint,
            "DDB_BRIDGE__KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def launch_stream(config: Any, env: dict[str, str], log_path: Any, *extra: str) -> Any:
    """`ddb-bridge stream --config ...` as a subprocess, stderr appended to `log_path`."""
    import subprocess
    import sys

    log = open(log_path, "ab")  # noqa: SIM115 - owned by the process; closed in stop_process
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddb_bridge.cli.main", "stream", "--config", str(config), *extra],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    proc.log_file = log  # type: ignore[attr-defined]
    return proc


def wait_log(log_path: Any, text: str, proc: Any, timeout_s: float = 30.0) -> None:
    """Until `text` is in the stream's log; the process exiting first fails at once."""

    def logged() -> bool:
        content = log_path.read_text(encoding="utf-8", errors="replace")
        if text in content:
            return True
        if proc.poll() is not None:
            raise AssertionError(f"stream exited {proc.returncode} before {text!r}:\n{content}")
        return False

    wait_until(logged, timeout_s, f"{text!r} in the stream log", interval=0.1)


def stop_process(proc: Any, sig: int | None = None, timeout_s: float = 30.0) -> int:
    import signal

    if proc.poll() is None:
        proc.send_signal(sig if sig is not None else signal.SIGTERM)
    try:
        code = int(proc.wait(timeout_s))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.log_file.close()
    return code


def wait_for(cond: Any, timeout_s: float = 30.0, what: str = "condition") -> None:
    """`tests.support.wait.wait_until` under its old name and defaults, for the files that
    other branches edit this round (test_stream_cli, the KCL tests); new code calls
    wait_until."""
    wait_until(cond, timeout_s, what)


def read_stream(streams: Any, arn: str) -> list[dict[str, Any]]:
    """Every record of every shard of the stream, read directly from TRIM_HORIZON."""
    out: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            page = streams.get_records(ShardIterator=it, Limit=1000)
            out.extend(page["Records"])
            if not page["Records"]:
                break  # an open shard: an empty page is its current end
            it = page.get("NextShardIterator")
    return out
