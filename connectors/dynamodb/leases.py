"""Leases in the DynamoDB lease table: one discipline for stream shards and back-fill parts.

A lease is one item keyed by `leaseKey` with `leaseOwner` (absent: free) and `leaseCounter`.
The rules, the KCL's, are the same whatever the lease guards:

- **Fencing.** Every write by a holder is conditional on `leaseOwner` and `leaseCounter`
  being what it last saw or wrote, and bumps the counter. A worker whose lease was taken
  finds out at its next write (`LeaseLost`) and can never write its position again.
- **Expiry on the observer's own clock.** Renewing bumps the counter. Another worker judges
  a lease expired only when it has seen the *same* counter for a whole lease duration on its
  own monotonic clock (`ExpiryWatch`). No wall-clock time is compared across machines, so
  skewed or stepped clocks can neither make a live lease look dead nor a dead one look live.
  Only clock *rates* matter, and `SAFETY_MARGIN` covers their drift.
- **The holder stops first** (stream shards). A holder treats its lease as lost once
  `lease_duration` less the margin has passed since it sent its last successful renewal
  (`valid_until`), which is before any observer can have seen the counter stand still for
  a whole duration. Back-fill parts opt out (`stop_at_lapse=False`): a late renewal that
  still passes the fence keeps the part, because nobody can have taken it meanwhile
  (a take bumps the counter). Their only cost of overlapping a taker is duplicate snapshot
  events of one version, which at-least-once delivery allows, while the fence keeps the
  cursor right; aborting a whole back-fill because a loaded machine renewed late is not.

What a lease guards (a shard's checkpoint and parents, a back-fill part's cursor and
items) is the caller's: it passes its own attributes along with the lease writes.
Back-fill parts written by versions before this module carried a wall-clock
`leaseExpiresAt` instead of renewing through the counter; such a lease's observed `token`
includes it, so an old worker's renewals still read as signs of life (see runs.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from bridge.model.errors import BridgeError
from connectors.dynamodb.aws import call_with_backoff, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONDITION_FAILED = "ConditionalCheckFailedException"
# A holder gives up this fraction of the lease duration early, for clock-rate drift and for
# the time between its last renewal and its next check.
SAFETY_MARGIN = 0.2


class LeaseLost(BridgeError):
    """Another worker owns the lease now (or this one's lapsed): stop working on what it guards.

    Not a TransientError: retrying the same write can never succeed, and a holder that lost
    its lease must stop rather than wait.
    """


class Holding(Protocol):
    """What a worker keeps of a lease it holds or is about to take (stream `Lease`,
    back-fill `HeldLease`); the lease writes below keep it up to date."""

    key: str
    owner: str | None
    counter: int
    # Monotonic time until which the holder may work; 0 when not held here.
    valid_until: float
    lock: threading.Lock


@dataclass
class HeldLease:
    """A lease and nothing else: the holding of a back-fill part."""

    key: str
    owner: str | None
    counter: int
    valid_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def held(self, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) < self.valid_until


class Observed(Protocol):
    """A lease as read from the table, for `ExpiryWatch`."""

    @property
    def key(self) -> str: ...

    @property
    def owner(self) -> str | None: ...

    @property
    def token(self) -> Hashable:
        """What changes whenever the holder renews (the counter, for leases of this version)."""
        ...


class ExpiryWatch:
    """Which leases have expired, judged on this worker's monotonic clock (the KCL's rule).

    A lease is expired when it is free, or when its token (its counter) has not changed for
    a whole lease duration since this worker first saw that value.
    """

    def __init__(self, lease_duration_s: float, clock: Callable[[], float] = time.monotonic):
        self.lease_duration_s = lease_duration_s
        self.clock = clock
        self._seen: dict[str, tuple[Hashable, float]] = {}

    def observe(self, leases: Iterable[Observed], *, forget_unseen: bool = True) -> None:
        """Note what was read. `forget_unseen`: these are all the leases this watch follows,
        so any other one was deleted."""
        now = self.clock()
        live = set()
        for lease in leases:
            live.add(lease.key)
            seen = self._seen.get(lease.key)
            if seen is None or seen[0] != lease.token:
                self._seen[lease.key] = (lease.token, now)
        if forget_unseen:
            for key in list(self._seen):
                if key not in live:
                    del self._seen[key]

    def expired(self, lease: Observed) -> bool:
        if lease.owner is None:
            return True
        seen = self._seen.get(lease.key)
        if seen is None or seen[0] != lease.token:
            return False  # not seen yet, or it moved since: its clock starts now
        return self.clock() - seen[1] > self.lease_duration_s


class FencedLeases:
    """Conditional, counter-fenced writes on the lease table, for one worker (`owner`).

    `attempts`: how many times a write is sent when throttled or when the connection fails
    (1: the caller retries). A retried write whose first attempt may have been applied is
    resolved by reading the item back, so a lost response never reads as a lost lease.
    `stop_at_lapse`: a holder whose local validity ran out gives the lease up instead of
    renewing it (see the module docstring).
    """

    def __init__(
        self,
        ddb: DynamoDBClient,
        table_name: str,
        owner: str,
        lease_duration_s: float,
        clock: Callable[[], float] = time.monotonic,
        attempts: int = 1,
        stop_at_lapse: bool = True,
    ) -> None:
        self.ddb = ddb
        self.name = table_name
        self.owner = owner
        self.lease_duration_s = lease_duration_s
        self.clock = clock
        self.attempts = attempts
        self.stop_at_lapse = stop_at_lapse

    def _valid_from(self, sent: float) -> float:
        return sent + self.lease_duration_s * (1 - SAFETY_MARGIN)

    def write(
        self,
        lease: Holding,
        expected_owner: str | None,
        set_expr: str = "",
        values: dict[str, Any] | None = None,
        *,
        remove: str = "",
        names: dict[str, str] | None = None,
        condition: str = "",
        new_owner: str | None = None,
        returning: bool = False,
    ) -> dict[str, Any] | None:
        """One write conditional on `expected_owner` and `lease.counter`; bumps the counter.

        The caller holds `lease.lock`. `new_owner` is who owns the lease after the write (for
        resolving an ambiguous retry). Raises LeaseLost when the condition fails; returns the
        item as written when `returning`.
        """
        values = {**(values or {}), ":lease_counter": {"N": str(lease.counter)}}
        values[":lease_one"] = {"N": "1"}
        values[":lease_zero"] = {"N": "0"}
        fence = "leaseCounter = :lease_counter"
        if lease.counter == 0:
            fence = f"({fence} OR attribute_not_exists(leaseCounter))"  # never written yet
        if expected_owner is None:
            fence += " AND attribute_not_exists(leaseOwner)"
        else:
            fence += " AND leaseOwner = :lease_owner"
            values[":lease_owner"] = {"S": expected_owner}
        if condition:
            fence += f" AND ({condition})"
        expr = "SET leaseCounter = if_not_exists(leaseCounter, :lease_zero) + :lease_one"
        if set_expr:
            expr += f", {set_expr}"
        if remove:
            expr += f" REMOVE {remove}"
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": {"leaseKey": {"S": lease.key}},
            "UpdateExpression": expr,
            "ConditionExpression": fence,
            "ExpressionAttributeValues": values,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        if returning:
            request["ReturnValues"] = "ALL_NEW"
        sent = 0
        what = f"UpdateItem {self.name} lease {lease.key}"

        def update() -> dict[str, Any] | None:
            nonlocal sent
            sent += 1
            try:
                attrs: dict[str, Any] | None = self.ddb.update_item(**request).get("Attributes")
            except ClientError as exc:
                if error_code(exc) != CONDITION_FAILED:
                    raise
                if sent > 1:  # an earlier attempt may have been applied, its answer lost
                    mine = self._written_by_retry(lease, new_owner)
                    if mine is not None:
                        return mine
                raise LeaseLost(f"lease {lease.key} is no longer {self.owner}'s") from exc
            return attrs

        try:
            result: dict[str, Any] | None = call_with_backoff(update, what, attempts=self.attempts)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, what) from exc
        lease.counter += 1
        return result

    def _written_by_retry(self, lease: Holding, new_owner: str | None) -> dict[str, Any] | None:
        """The item, if it shows exactly our write applied (one bump, the owner we set)."""
        try:
            item: dict[str, Any] | None = self.ddb.get_item(
                TableName=self.name, Key={"leaseKey": {"S": lease.key}}, ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"GetItem {self.name} lease {lease.key}") from exc
        if item is None:
            return None
        owner = item["leaseOwner"]["S"] if "leaseOwner" in item else None
        counter = int(item.get("leaseCounter", {}).get("N", "0"))
        return item if owner == new_owner and counter == lease.counter + 1 else None

    def take(
        self,
        lease: Holding,
        set_expr: str = "",
        values: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """Take a lease from its owner as last read (`lease.owner`, None: free).

        Raises LeaseLost if it moved since (someone was faster). The caller decides whether
        the lease was free or expired (`ExpiryWatch`) and whether to wait out a fence.
        """
        sent = self.clock()
        with lease.lock:
            result = self.write(
                lease,
                lease.owner,
                "leaseOwner = :lease_me" + (f", {set_expr}" if set_expr else ""),
                {**(values or {}), ":lease_me": {"S": self.owner}},
                new_owner=self.owner,
                **kwargs,
            )
            lease.owner = self.owner
            lease.valid_until = self._valid_from(sent)
        return result

    def write_held(
        self,
        lease: Holding,
        set_expr: str = "",
        values: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Renew the lease, writing `set_expr` along; LeaseLost if it was taken (or lapsed).

        With `stop_at_lapse`, a lease whose local validity ran out is not written: an
        observer may have seen it expire already, so the holder must stop, not extend it.
        """
        sent = self.clock()
        with lease.lock:
            if self.stop_at_lapse and not sent < lease.valid_until:
                raise LeaseLost(f"lease {lease.key} lapsed: not renewed in time")
            try:
                self.write(lease, self.owner, set_expr, values, new_owner=self.owner, **kwargs)
            except LeaseLost:
                lease.valid_until = 0.0
                raise
            # A successful conditional write proves ownership as well as a renewal does.
            lease.valid_until = self._valid_from(sent)

    def renew(self, lease: Holding) -> None:
        self.write_held(lease)

    def end(
        self,
        lease: Holding,
        set_expr: str = "",
        values: dict[str, Any] | None = None,
        *,
        remove: str = "",
        **kwargs: Any,
    ) -> None:
        """Give the lease up (release, finish, stop), writing `set_expr` along.

        Fenced but not bound to local validity: if nobody took the lease meanwhile, ending
        it is right, and if somebody did, the counter no longer matches.
        """
        with lease.lock:
            try:
                self.write(
                    lease,
                    self.owner,
                    set_expr,
                    values,
                    remove="leaseOwner" + (f", {remove}" if remove else ""),
                    new_owner=None,
                    **kwargs,
                )
            except LeaseLost:
                lease.valid_until = 0.0
                raise
            lease.owner = None
            lease.valid_until = 0.0
