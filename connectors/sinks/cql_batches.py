"""How the CQL sink packs a batch's statements into requests: UNLOGGED batches of rows that
the same replicas own, capped in rows and bytes.

Why batch: the Python driver costs ~120-150 µs of CPU per request, so one request per row
tops out near 5,500 rows/s on a core; ten rows a request cost about the same CPU as one.

Why this is still last-write-wins: every statement keeps its own `USING TIMESTAMP version`
(the batch sets none), and Cassandra and ScyllaDB apply each statement's cells and
tombstones at its own timestamp, exactly as if it were sent alone. UNLOGGED, because the
statements are idempotent and ordered by their timestamps, not by the batch: the batch log
of a LOGGED batch would buy atomicity nobody needs at the price of a second write.

Why by replicas: a batch goes to one coordinator (the driver routes it by its first
statement's partition key); if every row of it lives on that coordinator's replica set, no
row is forwarded to other nodes. Grouping is a speed hint only — a row in the "wrong"
batch is still written correctly — so without a token map (metadata switched off, a
ScyllaDB keyspace on tablets whose map the driver does not hold) rows are grouped by table
alone.

Why the caps: Cassandra warns when an unlogged batch spans more than 10 partitions and when
a batch's mutations pass `batch_size_warn_threshold` (5 KiB by default), and refuses one past
`batch_size_fail_threshold` (50 KiB). A row larger than the byte cap goes as a request of
its own (a single statement: no batch size check applies).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.model.event import ChangeEvent


@dataclass
class Request:
    """One request to the cluster: one row (sent as its statement) or an unlogged batch."""

    rows: list[tuple[Any, ChangeEvent]] = field(default_factory=list)
    bytes: int = 0

    @property
    def events(self) -> list[ChangeEvent]:
        return [event for _, event in self.rows]


def bound_bytes(statement: Any) -> int:
    """The bytes of a bound statement's values (what the server's batch size counts, less
    a few bytes per cell): unset and null values count nothing."""
    return sum(len(v) for v in statement.values if isinstance(v, bytes | bytearray))


def pack(
    rows: Sequence[tuple[Any, ChangeEvent]],
    owner: Callable[[Any], Hashable],
    max_rows: int,
    max_bytes: int,
) -> list[Request]:
    """The requests for `rows` (bound statement, event): rows of one table and one owner
    (the replicas of their partition) share a request until it holds `max_rows` rows or the
    next row would pass `max_bytes`. Every row is in exactly one request, in the order of the
    rows within it. One table a request, so a refusal of the request names its table."""
    out: list[Request] = []
    open_requests: dict[Hashable, Request] = {}
    for statement, event in rows:
        size = bound_bytes(statement)
        if size > max_bytes:  # alone, leaving the open request of its owner open
            out.append(Request([(statement, event)], size))
            continue
        key = (event.table, owner(statement))
        request = open_requests.get(key)
        if request is not None and (
            len(request.rows) >= max_rows or request.bytes + size > max_bytes
        ):
            request = None
        if request is None:
            request = Request()
            open_requests[key] = request
            out.append(request)
        request.rows.append((statement, event))
        request.bytes += size
    return out


def no_owner(_statement: Any) -> Hashable:
    return None


def replica_owner(cluster: Any) -> Callable[[Any], Hashable]:
    """A bound statement's owner: the set of replicas of its partition, from the driver's
    token map; None (one owner for all) when there is no token map or routing key."""
    metadata = getattr(cluster, "metadata", None)
    token_map = getattr(metadata, "token_map", None)
    if token_map is None:
        return no_owner

    def owner(statement: Any) -> Hashable:
        key = statement.routing_key
        if key is None:
            return None
        token = token_map.token_class.from_key(key)
        return frozenset(token_map.get_replicas(statement.keyspace, token))

    return owner
