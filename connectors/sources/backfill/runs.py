"""Back-fill runs, part claims and cursors, kept in the DynamoDB lease table.

A *run* is one back-fill at one version `T` (a scan started at T, or one export). It has a
fixed list of *parts* (scan segments, export data files). Items in the lease table:

- `backfill#<table>#<run>`               the run: kind, T (µs), version, part count, state
- `backfill#<table>#<run>#<part:06d>`    a part: state PENDING/DONE, cursor, items, claims,
                                           and its lease: leaseOwner / leaseCounter
- `backfill#<table>#current#<kind>`      which scan run new workers join (pointer)

Any number of workers, on any machines, claim parts with conditional writes. A part's claim
is a lease with the same discipline as a stream shard's (`connectors.dynamodb.leases`): a
part is claimable when it is PENDING and unowned, or its counter has not moved for a lease
duration on the claimer's own monotonic clock (no wall clocks compared across machines).
The owner renews its leases from a heartbeat thread, each renewal bumping the counter; a
cursor write or DONE is conditional on the owner and counter (fencing), so a worker that
lost its lease cannot move a cursor. A cursor is written only once every record before it
is acknowledged by Kafka (the caller's AckTracker), so a kill -9 re-reads at most what was
after the last cursor: at-least-once, never a gap.

Parts claimed by versions before the shared discipline carry a wall-clock `leaseExpiresAt`,
which their workers moved on each renewal without bumping the counter. It is read as part of
the observed token (`Part.token`), never compared with a clock: an old worker still renewing
keeps its part, a dead one's part is taken after one lease duration like any other, and the
taking write removes `leaseExpiresAt`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from bridge.model.errors import PermanentError, TransientError
from connectors.dynamodb.aws import call_with_backoff, error_code, translate
from connectors.dynamodb.leases import ExpiryWatch, FencedLeases, HeldLease, LeaseLost

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

PREFIX = "backfill#"
PENDING = "PENDING"
DONE = "DONE"
T = TypeVar("T")


@dataclass(frozen=True)
class RunInfo:
    table: str
    run_id: str
    kind: str  # "scan" or "export"
    start_us: int  # T
    version: int
    parts: int
    source: str  # human-readable: "scan, 8 segments" or the export location
    total_items: int | None = None
    state: str = PENDING


@dataclass(frozen=True)
class Part:
    index: int
    key: str  # its leaseKey
    label: str
    state: str
    cursor: str | None
    items: int
    claims: int
    owner: str | None
    counter: int  # leaseCounter: bumped by every claim, renewal and cursor write
    meta: dict[str, str]
    finished_by: str | None = None
    # leaseExpiresAt of a part claimed by an earlier version (see the module docstring).
    legacy_expires_ms: int | None = None

    @property
    def done(self) -> bool:
        return self.state == DONE

    @property
    def token(self) -> tuple[int, int | None]:
        """What a renewal changes, for `ExpiryWatch`."""
        return (self.counter, self.legacy_expires_ms)


def _retrying(fn: Callable[[], T], what: str, attempts: int = 8) -> T:
    """Call `fn`, retrying throttling and connection errors; after `attempts`, or on any other
    error, raise it translated (TransientError / PermanentError)."""
    try:
        result: T = call_with_backoff(fn, what, attempts=attempts)
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, what) from exc
    return result


class RunStore:
    """Runs, parts and claims of one table's back-fills, in the lease table."""

    def __init__(
        self,
        ddb: DynamoDBClient,
        lease_table: str,
        table: str,
        owner: str,
        lease_ms: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ddb = ddb
        self.lease_table = lease_table
        self.table = table
        self.owner = owner
        self.lease_ms = lease_ms
        # Retries as the other lease-table writes here; a late renewal keeps the part if the
        # fence still holds (see connectors.dynamodb.leases).
        self.leases = FencedLeases(
            ddb, lease_table, owner, lease_ms / 1000, clock, attempts=8, stop_at_lapse=False
        )
        # Every read of parts is an observation: a part's owner is dead once its token stood
        # still for a lease duration on this clock.
        self.expiry = ExpiryWatch(lease_ms / 1000, clock)
        self._held: dict[str, HeldLease] = {}
        self._held_lock = threading.Lock()

    # keys ---------------------------------------------------------------------------------
    def run_key(self, run_id: str) -> dict[str, Any]:
        return {"leaseKey": {"S": f"{PREFIX}{self.table}#{run_id}"}}

    def part_key(self, run_id: str, index: int) -> dict[str, Any]:
        return {"leaseKey": {"S": f"{PREFIX}{self.table}#{run_id}#{index:06d}"}}

    def pointer_key(self, kind: str) -> dict[str, Any]:
        return {"leaseKey": {"S": f"{PREFIX}{self.table}#current#{kind}"}}

    # runs ---------------------------------------------------------------------------------
    def create_run(
        self, run: RunInfo, labels: list[str], metas: list[dict[str, str]] | None = None
    ) -> RunInfo:
        """Create the run if it does not exist yet (parts first: the run item marks it whole).

        Returns the run as stored (another worker may have created it first).
        """
        for index, label in enumerate(labels):
            item = {
                **self.part_key(run.run_id, index),
                "kind": {"S": "backfill-part"},
                "label": {"S": label},
                "state": {"S": PENDING},
                "items": {"N": "0"},
                "claims": {"N": "0"},
            }
            for name, value in (metas[index] if metas else {}).items():
                item[f"meta_{name}"] = {"S": value}
            self._put_if_absent(item, f"part {index} of run {run.run_id}")
        item = {
            **self.run_key(run.run_id),
            "kind": {"S": "backfill-run"},
            "tableName": {"S": run.table},
            "runId": {"S": run.run_id},
            "sourceKind": {"S": run.kind},
            "startUs": {"N": str(run.start_us)},
            "version": {"N": str(run.version)},
            "parts": {"N": str(run.parts)},
            "source": {"S": run.source},
            "state": {"S": PENDING},
            "createdAtMs": {"N": str(int(time.time() * 1000))},
        }
        if run.total_items is not None:
            item["totalItems"] = {"N": str(run.total_items)}
        self._put_if_absent(item, f"run {run.run_id}")
        stored = self.load_run(run.run_id)
        assert stored is not None  # just written, or written by another worker
        return stored

    def _put_if_absent(self, item: dict[str, Any], what: str) -> None:
        def put() -> None:
            try:
                self.ddb.put_item(
                    TableName=self.lease_table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(leaseKey)",
                )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise

        _retrying(put, f"PutItem {self.lease_table} {what}")

    def load_run(self, run_id: str) -> RunInfo | None:
        item = _retrying(
            lambda: self.ddb.get_item(
                TableName=self.lease_table, Key=self.run_key(run_id), ConsistentRead=True
            ).get("Item"),
            f"GetItem {self.lease_table} run {run_id}",
        )
        if item is None:
            return None
        return RunInfo(
            table=item["tableName"]["S"],
            run_id=item["runId"]["S"],
            kind=item["sourceKind"]["S"],
            start_us=int(item["startUs"]["N"]),
            version=int(item["version"]["N"]),
            parts=int(item["parts"]["N"]),
            source=item["source"]["S"],
            total_items=int(item["totalItems"]["N"]) if "totalItems" in item else None,
            state=item["state"]["S"],
        )

    def finish_run(self, run_id: str) -> None:
        _retrying(
            lambda: self.ddb.update_item(
                TableName=self.lease_table,
                Key=self.run_key(run_id),
                UpdateExpression="SET #s = :done, finishedAtMs = :now",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":done": {"S": DONE},
                    ":now": {"N": str(int(time.time() * 1000))},
                },
            ),
            f"UpdateItem {self.lease_table} run {run_id}",
        )

    def current_run(self, kind: str) -> str | None:
        item = _retrying(
            lambda: self.ddb.get_item(
                TableName=self.lease_table, Key=self.pointer_key(kind), ConsistentRead=True
            ).get("Item"),
            f"GetItem {self.lease_table} current {kind} run",
        )
        return item["runId"]["S"] if item else None

    def set_current_run(self, kind: str, run_id: str, expected: str | None) -> bool:
        """Point new workers at `run_id`, unless another worker moved the pointer first."""
        condition = "attribute_not_exists(leaseKey)" if expected is None else "runId = :expected"
        values: dict[str, Any] = {":run": {"S": run_id}}
        if expected is not None:
            values[":expected"] = {"S": expected}

        def update() -> bool:
            try:
                self.ddb.update_item(
                    TableName=self.lease_table,
                    Key=self.pointer_key(kind),
                    UpdateExpression="SET runId = :run",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
            return True

        return _retrying(update, f"UpdateItem {self.lease_table} current {kind} run")

    # parts --------------------------------------------------------------------------------
    def parts(self, run: RunInfo) -> list[Part]:
        """Every part of the run, in order (consistent reads)."""
        out: dict[int, Part] = {}
        indexes = list(range(run.parts))
        for start in range(0, len(indexes), 100):
            keys = [self.part_key(run.run_id, i) for i in indexes[start : start + 100]]
            request: dict[str, Any] = {self.lease_table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                resp = _retrying(
                    lambda req=request: self.ddb.batch_get_item(RequestItems=req),  # type: ignore[misc]
                    f"BatchGetItem {self.lease_table} parts of run {run.run_id}",
                )
                for item in resp.get("Responses", {}).get(self.lease_table, []):
                    part = _part_from_item(item)
                    out[part.index] = part
                request = resp.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(0.1)
        missing = [i for i in indexes if i not in out]
        if missing:
            raise PermanentError(
                f"run {run.run_id} of table {self.table} lacks part records {missing[:5]} "
                f"in lease table {self.lease_table}"
            )
        parts = [out[i] for i in indexes]
        self.expiry.observe(parts, forget_unseen=False)
        return parts

    def claimable(self, part: Part) -> bool:
        """PENDING, and free, ours by name (a re-run with this worker id), or expired."""
        if part.done:
            return False
        return part.owner in (None, self.owner) or self.expiry.expired(part)

    def claim(self, run_id: str, index: int) -> Part | None:
        """Take the part if it is PENDING and free (or its lease expired). None: not ours.

        The part is read again first (an observation, too), and taken only as read: if its
        owner renewed meanwhile, the conditional write fails and the part stays theirs.
        """
        key = self.part_key(run_id, index)
        item = _retrying(
            lambda: self.ddb.get_item(TableName=self.lease_table, Key=key, ConsistentRead=True).get(
                "Item"
            ),
            f"GetItem {self.lease_table} part {index} of run {run_id}",
        )
        if item is None:
            raise PermanentError(
                f"run {run_id} of table {self.table} lacks part record {index} "
                f"in lease table {self.lease_table}"
            )
        seen = _part_from_item(item)
        self.expiry.observe([seen], forget_unseen=False)
        if not self.claimable(seen):
            return None
        lease = HeldLease(seen.key, seen.owner, seen.counter)
        try:
            attrs = self.leases.take(
                lease,
                "claims = claims + :one",
                {":one": {"N": "1"}, ":pending": {"S": PENDING}},
                condition="#s = :pending",
                names={"#s": "state"},
                remove="leaseExpiresAt",
                returning=True,
            )
        except LeaseLost:
            return None  # another worker was faster, or the owner renewed
        assert attrs is not None  # ReturnValues=ALL_NEW
        with self._held_lock:
            self._held[lease.key] = lease
        part = _part_from_item(attrs)
        log.info(
            "claimed back-fill part",
            extra={"table": self.table, "run": run_id, "part": index, "label": part.label},
        )
        return part

    def _holding(self, run_id: str, index: int) -> HeldLease:
        key = self.part_key(run_id, index)["leaseKey"]["S"]
        with self._held_lock:
            lease = self._held.get(key)
        if lease is None:
            raise LeaseLost(f"part {index} of run {run_id} is not claimed by {self.owner}")
        return lease

    def _forget(self, lease: HeldLease) -> None:
        with self._held_lock:
            if self._held.get(lease.key) is lease:
                del self._held[lease.key]

    def renew(self, run_id: str, index: int) -> None:
        key = self.part_key(run_id, index)["leaseKey"]["S"]
        with self._held_lock:
            lease = self._held.get(key)
        if lease is None:
            # This process finished or released the part since the lease keeper listed it:
            # nothing to renew, and nothing lost (a part taken by another worker shows as
            # LeaseLost from the renewal itself).
            return
        self.leases.renew(lease)

    def checkpoint(self, run_id: str, index: int, cursor: str, items: int) -> None:
        self.leases.write_held(
            self._holding(run_id, index),
            "#c = :cursor, #i = :items",
            {":cursor": {"S": cursor}, ":items": {"N": str(items)}},
            names={"#c": "cursor", "#i": "items"},
        )

    def finish(self, run_id: str, index: int, items: int) -> None:
        lease = self._holding(run_id, index)
        self.leases.end(
            lease,
            "#s = :done, #i = :items, finishedBy = :me, finishedAtMs = :now",
            {
                ":done": {"S": DONE},
                ":items": {"N": str(items)},
                ":me": {"S": self.owner},
                ":now": {"N": str(int(time.time() * 1000))},
            },
            names={"#s": "state", "#i": "items"},
        )
        self._forget(lease)

    def release(self, run_id: str, index: int) -> None:
        """Give a part back unfinished (graceful stop), so another worker need not wait."""
        lease = self._holding(run_id, index)
        self.leases.end(lease)
        self._forget(lease)


def _part_from_item(item: dict[str, Any]) -> Part:
    key = item["leaseKey"]["S"]
    return Part(
        index=int(key.rsplit("#", 1)[1]),
        label=item["label"]["S"],
        state=item["state"]["S"],
        cursor=item["cursor"]["S"] if "cursor" in item else None,
        items=int(item.get("items", {}).get("N", "0")),
        claims=int(item.get("claims", {}).get("N", "0")),
        owner=item["leaseOwner"]["S"] if "leaseOwner" in item else None,
        counter=int(item.get("leaseCounter", {}).get("N", "0")),
        meta={k[5:]: v["S"] for k, v in item.items() if k.startswith("meta_")},
        finished_by=item["finishedBy"]["S"] if "finishedBy" in item else None,
        key=key,
        legacy_expires_ms=int(item["leaseExpiresAt"]["N"]) if "leaseExpiresAt" in item else None,
    )


class LeaseKeeper:
    """Renews this worker's part leases every lease/3 from a background thread.

    A part whose renewal fails is reported lost (`lost(index)`); its worker stops on it.
    """

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._held: set[int] = set()
        self._lost: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="backfill-leases", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def hold(self, index: int) -> None:
        with self._lock:
            self._held.add(index)
            self._lost.discard(index)

    def drop(self, index: int) -> None:
        with self._lock:
            self._held.discard(index)

    def lost(self, index: int) -> bool:
        with self._lock:
            return index in self._lost

    def _loop(self) -> None:
        interval = self.store.lease_ms / 3000
        while not self._stop.wait(interval):
            with self._lock:
                held = sorted(self._held)
            for index in held:
                try:
                    self.store.renew(self.run_id, index)
                except LeaseLost as exc:
                    log.warning(
                        "back-fill part lease lost",
                        extra={"run": self.run_id, "part": index, "error": str(exc)},
                    )
                    with self._lock:
                        self._held.discard(index)
                        self._lost.add(index)
                except TransientError as exc:
                    # The lease may still be valid (it lasts 3 intervals): try again next round.
                    log.warning(
                        "back-fill lease renewal failed",
                        extra={"run": self.run_id, "part": index, "error": str(exc)},
                    )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def done_count(parts: Iterable[Part]) -> int:
    return sum(1 for p in parts if p.done)
