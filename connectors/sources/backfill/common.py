"""What the scan and export back-fills share: safety check, read budget, TTL filter, counters.

- `check_capture` enforces the precondition of last-write-wins before any back-fill: the table's
  current stream has been captured by `ddb-bridge stream`, without a trimmed gap, from before
  `T - margin`; otherwise the back-fill refuses, with an explanation of what is missing.
- `fast_item_ok` is a cheap structural check of a parsed wire-form item, used on the export
  hot path; whenever it says "no", `bridge.attrs.validate` runs to decide and to name the
  problem, so the accepted set is exactly what `validate` accepts.
- `Budget` is a token bucket shared by every scan thread (items/s and RCU/s).
- `Stats` counts what the summary reports; it is updated from several threads.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge import attrs
from bridge.errors import AttributeTypeError, PermanentError
from connectors.dynamodb.aws import describe_table
from connectors.dynamodb.capture import read_capture

log = logging.getLogger(__name__)

# DynamoDB only deletes expired items whose TTL lies within the last five years; older TTL
# values are ignored by the TTL service, so such items live on and must be migrated.
STREAM_RETENTION_MS = 24 * 3600 * 1000


class UnsafeBackfillError(PermanentError):
    """The stream capture does not cover the back-fill's version boundary."""


# ---------------------------------------------------------------------------------------------
# Safety check


@dataclass(frozen=True)
class Coverage:
    stream_arn: str
    covered_from_ms: int
    needed_from_ms: int
    initial_position: str


def _parse_label(label: str) -> int:
    """LatestStreamLabel is the stream's creation time (ISO 8601, UTC, no zone suffix)."""
    moment = datetime.fromisoformat(label.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def needed_from_ms(start_us: int, margin_s: int) -> int:
    """The first moment whose stream events must be captured: `floor_s(T) - margin`."""
    return (math.floor(start_us / 1_000_000) - margin_s) * 1000


def check_capture(ddb: Any, lease_table: str, table: str, start_us: int, margin_s: int) -> Coverage:
    """Raise UnsafeBackfillError unless the stream capture covers `T - margin` without a gap."""
    bypass = "Pass --no-stream for a back-fill-only migration, or --force to override."
    desc = describe_table(ddb, table)
    spec = desc.get("StreamSpecification") or {}
    arn = desc.get("LatestStreamArn")
    if not spec.get("StreamEnabled") or not arn:
        raise UnsafeBackfillError(
            f"table {table} has no enabled DynamoDB stream, so writes made while the back-fill "
            f"runs would be lost. Enable a stream (NEW_AND_OLD_IMAGES) and run `ddb-bridge "
            f"stream` first. {bypass}"
        )
    record = read_capture(ddb, lease_table, arn)
    if record is None:
        raise UnsafeBackfillError(
            f"the stream {arn} of table {table} is not being captured: no capture record in "
            f"lease table {lease_table}. Start `ddb-bridge stream` (initial_position "
            f"TRIM_HORIZON) before the back-fill. {bypass}"
        )
    if record.data_loss:
        first = record.data_loss[0]
        raise UnsafeBackfillError(
            f"the capture of stream {arn} has a trimmed gap ({len(record.data_loss)} data-loss "
            f"alarm(s), first on shard {first['shard_id']}: {first['message']}); a back-fill "
            f"cannot restore the lost changes correctly. {bypass}"
        )
    needed = needed_from_ms(start_us, margin_s)
    if record.initial_position == "LATEST":
        covered = record.started_at_ms
    else:
        label = desc.get("LatestStreamLabel")
        try:
            created = _parse_label(label) if label else None
        except ValueError:
            created = None
        if created is None:
            raise UnsafeBackfillError(
                f"cannot tell when stream {arn} was created (LatestStreamLabel {label!r}), so "
                f"its capture cannot be shown to cover the back-fill. {bypass}"
            )
        covered = max(created, record.started_at_ms - STREAM_RETENTION_MS)
    if covered > needed:
        raise UnsafeBackfillError(
            f"the stream capture of table {table} covers changes from {_iso(covered)} on "
            f"({record.initial_position} capture started {_iso(record.started_at_ms)}), but "
            f"this back-fill's version needs every change from {_iso(needed)} on (T minus the "
            f"{margin_s}s skew margin). Changes in between would be overwritten by older "
            f"snapshot data. Use a newer export or scan. {bypass}"
        )
    log.info(
        "stream capture covers the back-fill",
        extra={"table": table, "stream": arn, "covered_from": _iso(covered)},
    )
    return Coverage(arn, covered, needed, record.initial_position)


# ---------------------------------------------------------------------------------------------
# TTL


# ---------------------------------------------------------------------------------------------
# Fast structural check of wire-form items


def _b64_ok(value: Any) -> bool:
    if type(value) is not str:
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_number(text: str) -> bool:
    # Short plain numbers are valid by their form alone; the rest (long, or with an
    # exponent, whose range needs checking) take the exact check. A regex with `\d`
    # would also have let non-ASCII digits through.
    if attrs.is_short_number(text):
        return True
    try:
        attrs.check_number(text)
    except AttributeTypeError:
        return False
    return True


def fast_item_ok(item: Any) -> bool:
    """True only if `bridge.attrs.validate` would accept the item (False: ask it).

    Iterative, one loop over every attribute value, no call per value: this runs once per
    export line, and a recursive version cost a quarter of the whole export hot path.
    """
    if type(item) is not dict:
        return False
    stack = list(item.values())
    pop, push = stack.pop, stack.extend
    while stack:
        av = pop()
        if type(av) is not dict or len(av) != 1:
            return False
        ((tag, value),) = av.items()
        kind = type(value)
        if tag == "S":
            if kind is not str:
                return False
        elif tag == "N":
            if kind is not str or not _is_number(value):
                return False
        elif tag == "M":
            if kind is not dict:
                return False
            push(value.values())
        elif tag == "L":
            if kind is not list:
                return False
            push(value)
        elif tag == "BOOL":
            if kind is not bool:
                return False
        elif tag == "NULL":
            if value is not True:
                return False
        elif tag == "SS":
            if kind is not list or any(type(v) is not str for v in value):
                return False
        elif tag == "NS":
            if kind is not list or any(type(v) is not str or not _is_number(v) for v in value):
                return False
        elif tag == "B":
            if not _b64_ok(value):
                return False
        elif tag == "BS":
            if kind is not list or not all(_b64_ok(v) for v in value):
                return False
        else:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Read budget


class Budget:
    """A token bucket for items/s and RCU/s, shared by threads; 0 disables a limit.

    Spending may overdraw the bucket (a page's size is known only after it is read); the
    next `wait` then sleeps until the debt is repaid, so the long-run rate holds.
    """

    def __init__(self, items_per_s: float = 0.0, rcu_per_s: float = 0.0) -> None:
        self.items_per_s = items_per_s
        self.rcu_per_s = rcu_per_s
        self._lock = threading.Lock()
        self._items = items_per_s
        self._rcu = rcu_per_s
        self._at = time.monotonic()

    @property
    def limited(self) -> bool:
        return self.items_per_s > 0 or self.rcu_per_s > 0

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed = now - self._at
        self._at = now
        if self.items_per_s:
            self._items = min(self.items_per_s, self._items + elapsed * self.items_per_s)
        if self.rcu_per_s:
            self._rcu = min(self.rcu_per_s, self._rcu + elapsed * self.rcu_per_s)

    def wait(self, stop: threading.Event | None = None) -> None:
        """Block until the bucket is out of debt."""
        while self.limited:
            with self._lock:
                self._refill()
                delay = 0.0
                if self.items_per_s and self._items < 0:
                    delay = max(delay, -self._items / self.items_per_s)
                if self.rcu_per_s and self._rcu < 0:
                    delay = max(delay, -self._rcu / self.rcu_per_s)
            if delay <= 0:
                return
            if stop is not None:
                if stop.wait(min(delay, 0.5)):
                    return
            else:
                time.sleep(min(delay, 0.5))

    def spend(self, items: int, rcu: float) -> None:
        with self._lock:
            self._refill()
            if self.items_per_s:
                self._items -= items
            if self.rcu_per_s:
                self._rcu -= rcu


# ---------------------------------------------------------------------------------------------
# Counters


@dataclass
class Stats:
    """What the progress bar and the final summary show. Thread-safe increments."""

    total_items: int | None = None
    published: int = 0
    skipped_ttl: int = 0
    skipped_bad: int = 0
    bytes_read: int = 0  # compressed bytes for exports, response bytes (estimated) for scans
    bytes_uncompressed: int = 0
    parts_total: int = 0
    parts_done: int = 0
    parts_skipped: int = 0  # already finished when this process started
    parts_claimed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    @property
    def seen(self) -> int:
        return self.published + self.skipped_ttl + self.skipped_bad
