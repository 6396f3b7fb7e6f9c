"""ScyllaDB / Cassandra sink (CQL, scylla-driver): last-write-wins done by the database.

Mapping of one DynamoDB table to one CQL table (`ddb-bridge schema cql` prints it). Every
name is quoted in every statement, so the keyspace, table and column names keep their case
and any character (CQL folds unquoted names to lower case):
- hash key → partition key column, range key → clustering column, named like the attribute:
  S → text, N → decimal (or an integer type declared in `[[tables]] columns`), B → blob.
  N keys are written in canonical form (`1.0` → `1`): the token is computed from the
  serialized bytes, so two spellings of one number would otherwise be two rows.
- attributes declared in `[[tables]] columns` → typed columns (text, ascii, varchar,
  decimal, varint, bigint, int, smallint, tinyint, boolean, blob, set<text>, set<decimal>,
  set<blob>: only types that hold a DynamoDB value exactly). A value that does not fit its
  declared column (DynamoDB is schemaless: `price` may be S in one item) goes to the map
  instead, so nothing is lost and nothing is dead-lettered for it.
- every other attribute → the catch-all `map<text, text>` column (`map_column`), one entry
  per attribute holding its DynamoDB JSON: lossless, and no schema inference.

Last-write-wins: every write carries `USING TIMESTAMP version` (µs, the CQL convention), so
the database keeps the newest per cell whatever order events arrive in, and a
`DELETE … USING TIMESTAMP v` shadows every write older than v (a tie goes to the delete).

A full image must replace the row, not merge into it. The INSERT therefore binds every
column: typed columns absent from the image (or not fitting) are bound to null, which CQL
writes as a cell tombstone at timestamp v; and the map is written as a whole collection
value, which CQL writes as a collection tombstone at v-1 plus the new entries at v. So
everything an older image wrote (timestamps ≤ v-1) is deleted, while a newer image's
cells (timestamps > v) survive: applying v after v' > v changes nothing. The price is one
tombstone per absent typed column per write; keep typed columns to the attributes most
items have.

TTL: when the table has a TTL attribute, an item is written `USING TTL` its remaining
seconds (DynamoDB semantics: epoch seconds; values more than five years in the past are
ignored by DynamoDB's TTL and so are here), at most 20 years and never past 2038-01-18 (a
day before the last expiry second Cassandra and ScyllaDB can store: a later expiry, such as
an expiry time written in milliseconds, is refused by Cassandra). An item already expired at
write time becomes a `DELETE … USING TIMESTAMP v`, not a skipped write: skipping would leave
an older live version of the row in place; the delete shadows it, and any older event
replayed later.
An expired TTL cell also acts as a tombstone at its write timestamp, so expiry cannot let
an older write through.

Caveat of any CQL tombstone: it is purged after the table's `gc_grace_seconds` (default
10 days). Replaying events older than that after a delete can resurrect the row; replay a
topic from the start only into a fresh table, or raise `gc_grace_seconds`.

Requests: the statements go as UNLOGGED batches of rows owned by the same replicas, at
most `batch_rows` rows and `batch_bytes` bytes each (connectors/sinks/cql_batches.py says
why this keeps last-write-wins: each statement keeps its own USING TIMESTAMP).

Delivery guarantee: `write_batch` returns when every statement of the batch has been
acknowledged at the configured consistency (default LOCAL_QUORUM), with at most
`concurrency` requests in flight. Timeouts, unavailable replicas, overload and lost
connections raise TransientError (statements are idempotent, the batch can be retried);
statements the server rejects for their values raise PermanentError naming the table and
key (a batch the server refuses so is sent again row by row, to find the rows it refuses).
Refusals that are no statement's fault — authentication, a missing permission
(`Unauthorized`), a keyspace, table or column that is not there — raise TargetError, so
apply stops instead of dead-lettering every event.
"""

from __future__ import annotations

import logging
import math
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import (
    AttributeTypeError,
    ConfigError,
    PermanentError,
    TargetError,
    TransientError,
)
from bridge.model.event import ChangeEvent
from bridge.model.ttl import HORIZON_S as TTL_HORIZON_S
from bridge.ports.sink import SinkCapabilities, TableSpec
from bridge.runtime.settings import ScyllaTarget
from connectors.sinks.common import Tables, coalesce, full_image, key_types, raise_failures
from connectors.sinks.cql_batches import Request, no_owner, pack, replica_owner

log = logging.getLogger(__name__)

# Cassandra/Scylla table and keyspace names: unquoted or quoted, only \w and ≤ 48 chars.
_NAME = re.compile(r"[A-Za-z0-9_]{1,48}")
MAX_TTL_S = 630_720_000  # 20 years: the largest TTL CQL accepts
# Cassandra up to 4.1, and 5.0 in its default storage compatibility mode, refuse a write whose
# expiry (server time + TTL) passes 2038-01-19T03:14:06Z (32-bit seconds); ScyllaDB caps it
# there in sstables. A TTL never reaches past it, less a day for server clocks ahead of ours.
LAST_EXPIRY_S = 2**31 - 2
EXPIRY_MARGIN_S = 86_400

_INT_RANGES = {
    "tinyint": (-(2**7), 2**7 - 1),
    "smallint": (-(2**15), 2**15 - 1),
    "int": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
    "varint": (None, None),
}
_KEY_TYPES = {"S": {"text", "varchar"}, "B": {"blob"}, "N": {"decimal", *_INT_RANGES}}
_DEFAULT_KEY_TYPE = {"S": "text", "N": "decimal", "B": "blob"}


def quote(name: str) -> str:
    """A CQL quoted identifier: keeps the attribute's case and any character."""
    return '"' + name.replace('"', '""') + '"'


def _number(text: str) -> Decimal | None:
    """The exact Decimal of an N value (the driver serializes its digits and exponent as
    they are); None for a text DynamoDB would refuse, which then stays in the map as is."""
    try:
        return attrs.parse_number(text)
    except AttributeTypeError:
        return None


def _integer(text: str, cql_type: str) -> int | None:
    d = _number(text)
    if d is None or d != d.to_integral_value():
        return None
    value = int(d)
    low, high = _INT_RANGES[cql_type]
    if low is not None and high is not None and not low <= value <= high:
        return None
    return value


def _boto(av: dict[str, Any]) -> dict[str, Any]:
    """One attribute value with binary decoded to bytes (the driver's blob value)."""
    value: dict[str, Any] = attrs.to_boto({"v": av})["v"]
    return value


# -- attribute value <-> typed column value ------------------------------------------------
# Each converter returns the driver value for a DynamoDB attribute value, or None when the
# value does not fit the column exactly (it then goes to the map).


def _to_column(cql_type: str, av: dict[str, Any]) -> Any:
    ((tag, value),) = av.items()
    if cql_type in ("text", "varchar"):
        return value if tag == "S" else None
    if cql_type == "ascii":
        return value if tag == "S" and value.isascii() else None
    if cql_type == "boolean":
        return value if tag == "BOOL" else None
    if cql_type == "blob":
        return _boto(av)["B"] if tag == "B" else None
    if cql_type == "decimal":
        return _number(value) if tag == "N" else None
    if cql_type in _INT_RANGES:
        return _integer(value, cql_type) if tag == "N" else None
    if cql_type == "set<text>":
        return list(value) if tag == "SS" else None
    if cql_type == "set<decimal>":
        if tag != "NS":
            return None
        numbers = [_number(v) for v in value]
        return None if None in numbers else numbers
    if cql_type == "set<blob>":
        return _boto(av)["BS"] if tag == "BS" else None
    raise AssertionError(cql_type)  # TYPED_COLUMNS is checked at open


def _from_column(cql_type: str, value: Any) -> dict[str, Any]:
    if cql_type in ("text", "varchar", "ascii"):
        return {"S": value}
    if cql_type == "boolean":
        return {"BOOL": bool(value)}
    if cql_type == "blob":
        blob: dict[str, Any] = attrs.from_boto({"v": {"B": bytes(value)}})["v"]
        return blob
    if cql_type == "decimal" or cql_type in _INT_RANGES:
        return {"N": str(value)}
    if cql_type == "set<text>":
        return {"SS": sorted(value)}
    if cql_type == "set<decimal>":
        return {"NS": [str(v) for v in value]}
    if cql_type == "set<blob>":
        blobs: dict[str, Any] = attrs.from_boto({"v": {"BS": [bytes(v) for v in value]}})["v"]
        return blobs
    raise AssertionError(cql_type)


TYPED_COLUMNS = frozenset(
    {"text", "varchar", "ascii", "boolean", "blob", "decimal", *_INT_RANGES}
    | {"set<text>", "set<decimal>", "set<blob>"}
)


def _normalize_type(cql_type: str) -> str:
    return re.sub(r"\s+", "", cql_type.strip().lower())


@dataclass(frozen=True)
class Column:
    attribute: str
    cql_type: str

    @property
    def ident(self) -> str:
        return quote(self.attribute)


class CqlTable:
    """The CQL mapping of one table: DDL, statements, and values to bind. No I/O here."""

    def __init__(self, spec: TableSpec, keyspace: str, map_column: str = "attrs") -> None:
        where = f"table {spec.source}"
        if not _NAME.fullmatch(spec.target):
            raise ConfigError(
                f"{where}: {spec.target!r} is not a valid CQL table name (letters, digits, "
                "underscore, at most 48): set target_table for it in [[tables]]"
            )
        if not _NAME.fullmatch(keyspace):
            raise ConfigError(
                f"keyspace {keyspace!r} is not a valid CQL keyspace name (letters, digits, "
                "underscore, at most 48): set keyspace in the target settings"
            )
        self.spec = spec
        self.keyspace = keyspace
        # Quoted: unquoted CQL names fold to lower case, so `Orders` would become `orders`
        # while the metadata check and every message look for `Orders`.
        self.table = f"{quote(keyspace)}.{quote(spec.target)}"
        declared = {name: _normalize_type(t) for name, t in spec.columns.items()}
        self.keys: list[Column] = []
        for name, typ in key_types(spec):
            cql_type = declared.pop(name, _DEFAULT_KEY_TYPE[typ])
            if cql_type not in _KEY_TYPES[typ]:
                raise ConfigError(
                    f"{where}: key {name!r} is DynamoDB type {typ}; its column can be "
                    f"{', '.join(sorted(_KEY_TYPES[typ]))}, not {cql_type!r}"
                )
            self.keys.append(Column(name, cql_type))
        for name, cql_type in declared.items():
            if cql_type not in TYPED_COLUMNS:
                raise ConfigError(
                    f"{where}: column {name!r} has type {cql_type!r}; typed columns can be "
                    f"{', '.join(sorted(TYPED_COLUMNS))} (types that hold a DynamoDB value "
                    "exactly); leave it out to keep it in the map column"
                )
        self.typed = [Column(n, t) for n, t in sorted(declared.items())]
        self._key_names = {c.attribute for c in self.keys}
        self._key_plan = [
            (c.attribute, typ, c.cql_type)
            for c, (_, typ) in zip(self.keys, key_types(spec), strict=True)
        ]
        self.map_column = map_column
        if map_column in {c.attribute for c in self.keys + self.typed}:
            raise ConfigError(
                f"{where}: the map column {map_column!r} collides with a key or typed "
                "column: set map_column in the target settings"
            )
        self.ttl_attribute = spec.ttl_attribute
        columns = [c.ident for c in self.keys + self.typed] + [quote(map_column)]
        # `USING TIMESTAMP version` is `bridge.model.versioning.rank` as CQL decides it by
        # itself: the higher write timestamp wins, and a tombstone beats a cell of an equal
        # timestamp.
        using = "USING TIMESTAMP ? AND TTL ?" if self.ttl_attribute else "USING TIMESTAMP ?"
        self.insert_cql = (
            f"INSERT INTO {self.table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)}) {using}"
        )
        key_where = " AND ".join(f"{c.ident} = ?" for c in self.keys)
        self.delete_cql = f"DELETE FROM {self.table} USING TIMESTAMP ? WHERE {key_where}"
        self.select_cql = f"SELECT {', '.join(columns)} FROM {self.table} WHERE {key_where}"
        self.scan_cql = f"SELECT {', '.join(c.ident for c in self.keys)} FROM {self.table}"

    # -- DDL --------------------------------------------------------------------------------

    def keyspace_ddl(self, replication: str) -> str:
        return (
            f"CREATE KEYSPACE IF NOT EXISTS {quote(self.keyspace)} WITH replication = {replication}"
        )

    def table_ddl(self) -> str:
        lines = [f"    {c.ident} {c.cql_type}," for c in self.keys + self.typed]
        lines.append(f"    {quote(self.map_column)} map<text, text>,")
        primary = self.keys[0].ident
        if len(self.keys) > 1:
            primary = f"({primary}), {self.keys[1].ident}"
        lines.append(f"    PRIMARY KEY ({primary})")
        return f"CREATE TABLE IF NOT EXISTS {self.table} (\n" + "\n".join(lines) + "\n)"

    # -- values -----------------------------------------------------------------------------

    def key_values(self, keys: Item) -> list[Any]:
        """Driver values of the key columns, validated, numbers canonical."""

        def where() -> str:  # built only for an error: this runs for every row written
            return f"table {self.spec.source} key {attrs.dumps(keys)}"

        if keys.keys() != self._key_names:
            raise PermanentError(
                f"{where()}: expected key attributes {', '.join(self.spec.key_names)}"
            )
        out: list[Any] = []
        for name, typ, cql_type in self._key_plan:
            av = keys[name]
            if not isinstance(av, dict) or len(av) != 1 or typ not in av:
                raise PermanentError(f"{where()}: {name!r} must be of type {typ}")
            if typ == "S":
                value: Any = av["S"]
            elif typ == "B":
                value = _boto(av)["B"]
            else:
                try:
                    text = attrs.normalize_number(av["N"])
                except PermanentError as exc:
                    raise PermanentError(f"{where()}: {name!r}: {exc}") from exc
                value = Decimal(text) if cql_type == "decimal" else _integer(text, cql_type)
                if value is None:
                    raise PermanentError(
                        f"{where()}: {name!r} does not fit its column type {cql_type}"
                    )
            if value == "" or value == b"":
                raise PermanentError(f"{where()}: empty key")
            out.append(value)
        return out

    def ttl_seconds(self, image: Item, now: float) -> int | None:
        """Remaining TTL: 0 = none, a positive number of seconds, or None = already expired."""
        if self.ttl_attribute is None:
            return 0
        av = image.get(self.ttl_attribute)
        if not isinstance(av, dict) or "N" not in av:
            return 0  # DynamoDB's TTL only acts on a Number attribute
        expiry = _number(av["N"])
        if expiry is None:
            return 0  # not a number DynamoDB could hold: its TTL would not act on it
        # Exact: the thread's 28-digit context would round a 38-digit expiry time.
        left = attrs.EXACT.subtract(expiry, Decimal(now))
        if left < -TTL_HORIZON_S:  # DynamoDB's TTL skips older expiry times
            return 0
        remaining = math.ceil(left)
        if remaining <= 0:
            return None
        storable = LAST_EXPIRY_S - EXPIRY_MARGIN_S - math.ceil(now)
        return min(remaining, MAX_TTL_S, storable) if storable > 0 else min(remaining, MAX_TTL_S)

    def insert_values(self, image: Item, version: int, now: float) -> list[Any] | None:
        """Values for `insert_cql`; None when the item is already expired (write a delete)."""
        ttl = self.ttl_seconds(image, now)
        if ttl is None:
            return None
        values = self.key_values({c.attribute: image[c.attribute] for c in self.keys})
        rest = {k: v for k, v in image.items() if k not in self.spec.key_names}
        for column in self.typed:
            av = rest.get(column.attribute)
            value = None if av is None else _to_column(column.cql_type, av)
            if value is not None:
                del rest[column.attribute]
            values.append(value)  # null: a tombstone for what an older image had here
        values.append({name: attrs.dumps(av) for name, av in rest.items()})
        values.append(version)
        if self.ttl_attribute:
            values.append(ttl)
        return values

    def delete_values(self, keys: Item, version: int) -> list[Any]:
        return [version, *self.key_values(keys)]

    def row_to_item(self, row: Sequence[Any]) -> Item:
        """A row of `select_cql` (keys, typed columns, map) back to the DynamoDB item."""
        item: Item = {}
        for column, (_, typ), value in zip(self.keys, key_types(self.spec), row, strict=False):
            if typ == "B":
                item[column.attribute] = attrs.from_boto({"v": {"B": bytes(value)}})["v"]
            elif typ == "N":
                item[column.attribute] = {"N": str(value)}
            else:
                item[column.attribute] = {"S": value}
        offset = len(self.keys)
        for column, value in zip(self.typed, row[offset:], strict=False):
            if value is not None:
                item[column.attribute] = _from_column(column.cql_type, value)
        for name, text in (row[offset + len(self.typed)] or {}).items():
            item[name] = attrs.loads(text)
        return item

    def key_item(self, row: Sequence[Any]) -> Item:
        return self.row_to_item([*row[: len(self.keys)], *([None] * len(self.typed)), None])


def ddl(spec: TableSpec, settings: ScyllaTarget) -> list[str]:
    """The keyspace and table DDL the mapping implies (`ddb-bridge schema cql`)."""
    table = CqlTable(spec, settings.keyspace, settings.map_column)
    return [table.keyspace_ddl(settings.replication), table.table_ddl()]


# -- errors ----------------------------------------------------------------------------------


def _is_permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: the server refused the statement itself."""
    import cassandra
    from cassandra import protocol

    return isinstance(
        exc,
        cassandra.RequestValidationException
        | protocol.RequestValidationException
        | cassandra.UnsupportedOperation
        | TypeError
        | ValueError,
    )


# InvalidRequest messages (Cassandra's, then ScyllaDB's wording) of a schema that is not
# what the statements were prepared for: a table, keyspace or column dropped or renamed.
# Cassandra 5.0 answers a write into a dropped table with "table t does not exist" (seen on
# a real node; 3.x/4.x and ScyllaDB say "unconfigured table t").
_SCHEMA_GONE = (
    "unconfigured table",
    "does not exist",
    "keyspace",  # "Keyspace 'x' does not exist" / "Can't find a keyspace x"
    "undefined column name",
    "unknown identifier",
)


def translate(exc: BaseException, what: str) -> Exception:
    """A driver error as TargetError (the cluster refuses us, whatever the statement),
    PermanentError (it refuses this statement) or TransientError (the rest: timeouts,
    unavailable replicas, overload, lost connections, no host)."""
    from cassandra import (
        AuthenticationFailed,
        ConfigurationException,
        InvalidRequest,
        Unauthorized,
    )
    from cassandra.cluster import NoHostAvailable

    causes = exc.errors.values() if isinstance(exc, NoHostAvailable) and exc.errors else [exc]
    if all(isinstance(e, AuthenticationFailed) for e in causes):
        return TargetError(
            f"CQL: {what}: authentication failed (check the target's username and password): {exc}"
        )
    if isinstance(exc, Unauthorized | ConfigurationException) or (
        isinstance(exc, InvalidRequest) and any(m in str(exc).lower() for m in _SCHEMA_GONE)
    ):
        return TargetError(f"CQL: {what}: {type(exc).__name__}: {exc}")
    kind = PermanentError if _is_permanent(exc) else TransientError
    return kind(f"CQL: {what}: {type(exc).__name__}: {exc}")


# -- the sink --------------------------------------------------------------------------------


def _statement(request: Request) -> Any:
    """What is sent for a request: its one statement, or an UNLOGGED batch of its rows
    (no batch timestamp: each statement's USING TIMESTAMP stands)."""
    if len(request.rows) == 1:
        return request.rows[0][0]
    from cassandra.query import BatchStatement, BatchType

    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for statement, _ in request.rows:
        batch.add(statement)
    # Its statements are timestamped upserts and deletes: sending it twice changes nothing.
    batch.is_idempotent = True
    return batch


class ScyllaSink:
    # image_text: apply's text path (compiled) checks an image for less than the parsing path
    # costs, and the sink's one read of it parses it once (bridge/codec/image_text.py).
    capabilities = SinkCapabilities(
        native_timestamps=True, ttl=True, tombstones=True, image_text=True
    )

    def __init__(self, settings: ScyllaTarget, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._cluster: Any = None
        self._session: Any = None
        self._tables = Tables([])
        self._cql: dict[str, CqlTable] = {}
        self._prepared: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        s = self.settings
        if not (s.tls_ca_file or s.tls_cert_file):
            return None
        context = ssl.create_default_context(cafile=s.tls_ca_file)
        context.check_hostname = s.tls_check_hostname
        if s.tls_cert_file:
            context.load_cert_chain(s.tls_cert_file, s.tls_key_file)
        return context

    def _connect(self) -> Any:
        from cassandra import ConsistencyLevel
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

        s = self.settings
        try:
            consistency = ConsistencyLevel.name_to_value[s.consistency.upper()]
        except KeyError as exc:
            known = ", ".join(sorted(ConsistencyLevel.name_to_value))
            raise ConfigError(f"consistency {s.consistency!r} is not one of {known}") from exc
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(
                DCAwareRoundRobinPolicy(local_dc=s.local_dc or "")
            ),
            consistency_level=consistency,
            request_timeout=s.request_timeout_s,
        )
        auth = None
        if s.username:
            password = s.password.get_secret_value() if s.password else ""
            auth = PlainTextAuthProvider(username=s.username, password=password)
        try:
            cluster = Cluster(
                contact_points=s.hosts,
                port=s.port,
                auth_provider=auth,
                ssl_context=self._ssl_context(),
                execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            )
            session = cluster.connect()
        except Exception as exc:
            raise translate(exc, f"connect to {', '.join(s.hosts)}:{s.port}") from exc
        self._cluster = cluster
        return session

    def _require(self) -> Any:
        if self._session is None:
            raise PermanentError("ScyllaSink used before open()")
        return self._session

    def _prepare(self, table: CqlTable, cql: str) -> Any:
        key = (table.table, cql)
        prepared = self._prepared.get(key)
        if prepared is None:
            try:
                prepared = self._require().prepare(cql)
            except Exception as exc:
                raise translate(exc, f"prepare {cql}") from exc
            # Every statement here is idempotent (a timestamped upsert or delete), which
            # lets the driver retry and speculatively execute it safely.
            prepared.is_idempotent = True
            self._prepared[key] = prepared
        return prepared

    def open(self, tables: Sequence[TableSpec], create_schema: bool = False) -> None:
        s = self.settings
        self._tables = Tables(tables)
        self._cql = {spec.target: CqlTable(spec, s.keyspace, s.map_column) for spec in tables}
        with self._lock:
            if self._session is None:
                self._session = self._connect()
        session = self._session
        for table in self._cql.values():
            if create_schema:
                for statement in (table.keyspace_ddl(s.replication), table.table_ddl()):
                    try:
                        session.execute(statement)
                    except Exception as exc:
                        raise translate(exc, statement) from exc
            else:
                meta = self._cluster.metadata.keyspaces.get(s.keyspace) if self._cluster else None
                if meta is None or table.spec.target not in meta.tables:
                    raise ConfigError(
                        f"target table {table.table} does not exist "
                        "(create it with --create-schema, or see `ddb-bridge schema cql`)"
                    )
        self._prepared.clear()
        for table in self._cql.values():
            for cql in (table.insert_cql, table.delete_cql, table.select_cql, table.scan_cql):
                self._prepare(table, cql)

    # -- writes -----------------------------------------------------------------------------

    def statements(self, events: Sequence[ChangeEvent]) -> list[tuple[Any, ChangeEvent]]:
        """Bound statements for a batch (coalesced: one per key). Public for the tests."""
        return list(self._bound(events))

    def _bound(self, events: Sequence[ChangeEvent]) -> Iterator[tuple[Any, ChangeEvent]]:
        """`statements`, each bound when asked for."""
        now = self.clock()
        for target, winners in coalesce(events, self._tables).items():
            table = self._cql[target]
            for event in winners.values():
                values = None
                if not event.is_delete:
                    values = table.insert_values(full_image(event), event.version, now)
                if values is not None:
                    prepared = self._prepare(table, table.insert_cql)
                else:  # a REMOVE, or an item already expired: see the module docstring
                    prepared = self._prepare(table, table.delete_cql)
                    values = table.delete_values(event.keys, event.version)
                try:
                    bound = prepared.bind(values)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise PermanentError(
                        f"table {event.table} key {attrs.dumps(event.keys)}: "
                        f"cannot serialize for CQL: {exc}"
                    ) from exc
                yield bound, event

    def requests(self, events: Sequence[ChangeEvent]) -> list[Request]:
        """The batch's statements packed into requests (connectors/sinks/cql_batches.py):
        UNLOGGED batches of rows the same replicas own, within `batch_rows` and
        `batch_bytes`. Public for the tests."""
        s = self.settings
        owner = replica_owner(self._cluster) if s.batch_rows > 1 else no_owner
        return list(pack(self._bound(events), owner, s.batch_rows, s.batch_bytes))

    def write_batch(self, events: Sequence[ChangeEvent]) -> None:
        if not events:
            return
        session = self._require()
        # All bound before the first is sent: sending each request as soon as it was packed
        # (binding the next rows meanwhile) was measured to cost more CPU per row, the
        # driver's I/O thread then waking for every request instead of a burst.
        requests = self.requests(events)
        results = self._execute(session, [_statement(r) for r in requests])
        failures: list[tuple[ChangeEvent, Exception]] = []
        refused: list[tuple[Request, Exception]] = []
        for request, (ok, outcome) in zip(requests, results, strict=True):
            if ok:
                continue
            if len(request.rows) > 1 and isinstance(translate(outcome, "batch"), PermanentError):
                refused.append((request, outcome))
            else:
                failures.extend((event, outcome) for event in request.events)
        if refused:
            failures.extend(self._rows_alone(session, refused))
        raise_failures(failures, sum(len(r.rows) for r in requests), translate)

    def _rows_alone(
        self, session: Any, refused: Sequence[tuple[Request, Exception]]
    ) -> list[tuple[ChangeEvent, Exception]]:
        """The rows of batches the server refused for their values, each sent alone: a
        batch succeeds or fails as a whole, and only a row of its own tells which row the
        server refuses (dead-lettered with its own reason) from the rows it takes."""
        request, exc = refused[0]
        log.warning(
            "CQL: the server refused %d batch(es) of rows, e.g. one of %d rows of %s "
            "(%s: %s); writing their rows one by one%s",
            len(refused),
            len(request.rows),
            request.rows[0][1].table,
            type(exc).__name__,
            exc,
            "; if it says the batch is too large, lower batch_bytes"
            if "too large" in str(exc).lower()
            else "",
        )
        rows = [row for request, _ in refused for row in request.rows]
        results = self._execute(session, [statement for statement, _ in rows])
        return [
            (event, outcome)
            for (_, event), (ok, outcome) in zip(rows, results, strict=True)
            if not ok
        ]

    def _execute(self, session: Any, statements: Sequence[Any]) -> list[tuple[bool, Any]]:
        """Each statement's (success, result or exception), at most `concurrency` in flight."""
        from cassandra.concurrent import execute_concurrent

        try:
            results = execute_concurrent(
                session,
                [(statement, None) for statement in statements],
                concurrency=self.settings.concurrency,
                raise_on_first_error=False,
            )
        except Exception as exc:
            raise translate(exc, f"write {len(statements)} requests") from exc
        return [(result.success, result.result_or_exc) for result in results]

    # -- reads ------------------------------------------------------------------------------

    def read_items(self, table: str, keys: Sequence[Item]) -> list[Item | None]:
        from cassandra.concurrent import execute_concurrent_with_args

        session = self._require()
        cql = self._cql[self._tables.get(table).target]
        prepared = self._prepare(cql, cql.select_cql)
        args = [cql.key_values(key) for key in keys]
        try:
            results = execute_concurrent_with_args(
                session, prepared, args, concurrency=self.settings.concurrency
            )
        except Exception as exc:
            raise translate(exc, f"read {cql.table}") from exc
        out: list[Item | None] = []
        for result in results:
            rows = list(result.result_or_exc)
            out.append(cql.row_to_item(rows[0]) if rows else None)
        return out

    def scan_keys(self, table: str) -> Iterator[Item]:
        from cassandra.query import SimpleStatement

        session = self._require()
        cql = self._cql[self._tables.get(table).target]
        # Paged: the driver fetches the next page as the iteration reaches it.
        statement = SimpleStatement(cql.scan_cql, fetch_size=2000)
        try:
            for row in session.execute(statement):
                yield cql.key_item(row)
        except Exception as exc:
            raise translate(exc, f"scan {cql.table}") from exc

    def close(self) -> None:
        with self._lock:
            if self._cluster is not None:
                self._cluster.shutdown()
            self._cluster = None
            self._session = None
            self._prepared.clear()
