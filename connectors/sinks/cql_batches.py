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

from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Iterator
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
    rows: Iterable[tuple[Any, ChangeEvent]],
    owner: Callable[[Any], Hashable],
    max_rows: int,
    max_bytes: int,
) -> Iterator[Request]:
    """The requests for `rows` (bound statement, event): rows of one table and one owner
    (the replicas of their partition) share a request until it holds `max_rows` rows or the
    next row would pass `max_bytes`. Every row is in exactly one request, in the order of the
    rows within it. One table a request, so a refusal of the request names its table.
    A request is yielded as soon as it is complete, the rest at the end."""
    open_requests: dict[Hashable, Request] = {}
    for statement, event in rows:
        size = bound_bytes(statement)
        if size > max_bytes:  # alone, leaving the open request of its owner open
            yield Request([(statement, event)], size)
            continue
        key = (event.table, owner(statement))
        request = open_requests.get(key)
        if request is not None and (
            len(request.rows) >= max_rows or request.bytes + size > max_bytes
        ):
            yield request
            request = None
        if request is None:
            request = open_requests[key] = Request()
        request.rows.append((statement, event))
        request.bytes += size
    yield from open_requests.values()


def no_owner(_statement: Any) -> Hashable:
    return None


def replica_owner(cluster: Any) -> Callable[[Any], Hashable]:
    """A bound statement's owner: the set of replicas of its partition, from the driver's
    token map; None (one owner for all) when there is no token map or routing key."""
    metadata = getattr(cluster, "metadata", None)
    token_map = getattr(metadata, "token_map", None)
    if token_map is None:
        return no_owner
    ring = _ring_owner(token_map)
    if ring is not None:
        return ring

    def owner(statement: Any) -> Hashable:
        key = statement.routing_key
        if key is None:
            return None
        token = token_map.token_class.from_key(key)
        return frozenset(token_map.get_replicas(statement.keyspace, token))

    return owner


def _ring_owner(token_map: Any) -> Callable[[Any], Hashable] | None:
    """`replica_owner` for a token map of integer tokens (Murmur3, the default partitioner
    of Cassandra and ScyllaDB), or None for another kind.

    The same answer as `frozenset(token_map.get_replicas(keyspace, token))`, read from a
    snapshot of the ring taken once per write (a topology change reaches the next write):
    the driver's lookup compares token objects in Python and builds a set per row, ~7 µs
    of a row's CPU; here a row costs the hash, a bisect over integers and a list index."""
    ring = getattr(token_map, "ring", None)
    by_keyspace = getattr(token_map, "tokens_to_hosts_by_ks", None)
    hash_fn = getattr(token_map.token_class, "hash_fn", None)
    if not ring or not isinstance(by_keyspace, dict) or hash_fn is None:
        return None
    try:
        values = [int(token.value) for token in ring]
    except (AttributeError, TypeError, ValueError):
        return None  # tokens that are not integers (a byte-ordered partitioner)
    owners: dict[str, list[frozenset[Any]]] = {}

    def of_keyspace(keyspace: str) -> list[frozenset[Any]]:
        found = owners.get(keyspace)
        if found is None:
            # Asking once builds the keyspace's replica map in the driver if it is missing.
            token_map.get_replicas(keyspace, ring[0])
            hosts = token_map.tokens_to_hosts_by_ks.get(keyspace) or {}
            found = owners[keyspace] = [frozenset(hosts.get(token, ())) for token in ring]
        return found

    last = len(values)

    def owner(statement: Any) -> Hashable:
        key = statement.routing_key
        if key is None:
            return None
        point = bisect_left(values, hash_fn(key))
        # Past the last token the range wraps to the first, as the driver's lookup does.
        return of_keyspace(statement.keyspace)[point if point < last else 0]

    return owner
