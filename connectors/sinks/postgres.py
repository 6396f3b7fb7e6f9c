"""PostgreSQL sink (psycopg 3): last-write-wins upserts into one table per DynamoDB table.

Mapping: typed key columns named like the key attributes (S → text,
N → numeric, B → bytea), `item jsonb` (the whole item as DynamoDB JSON: N values are JSON
strings there, so jsonb keeps every digit), `version bigint`, `deleted boolean`, and the
view `<table>_live` of live rows. Names: `sql_names` (every identifier quoted, so case is
kept; a key attribute named like a layout column, or longer than PostgreSQL's 63-byte
identifiers, gets the column `key_<name>`; a table or view name PostgreSQL would truncate,
or one that is already another kind of relation, is refused). A REMOVE keeps a tombstone
row (`deleted`, `item` NULL). The sink contract: docs/design.md, section 11.

One exception to "item is jsonb": jsonb cannot store the character U+0000, which DynamoDB
strings and attribute names may hold. For such an item `item_exact bytea` holds its exact
DynamoDB JSON and `item` a readable copy with U+0000 shown as U+FFFD; readers that need
exactness (`read_items`, so `verify`) prefer `item_exact`.

Writes: the batch is coalesced to the newest event per key, then one
`INSERT … SELECT FROM unnest(arrays) ON CONFLICT … DO UPDATE … WHERE stored.version <
excluded.version` per table (a delete wins a tie), in one transaction. One statement per
table instead of one per row is what makes ≥15k rows/s per worker possible.

Delivery guarantee: `write_batch` returns after COMMIT, so a returned batch is durable (as
durable as the server's `synchronous_commit` makes it). Connection loss or a server that is
down or shutting down raises TransientError; the connection is dropped and re-opened on
the next call, so the worker can retry the same batch.

Whose fault a refusal is: a value the server cannot take (SQLSTATE classes 22, 23, 54) is
the event's (PermanentError, dead-lettered). The statements are generated and every value
is a parameter, so a class-42 error (a table or column gone or changed, permission denied)
and class 28 (authorization) are the target's (TargetError: apply stops). A read-only
transaction (25006: a failover left us on a standby, or `default_transaction_read_only`)
is a TargetError that apply waits for, reconnecting each time so that a DSN that follows
the primary reaches the new one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from bridge.codec.image_text import stored_text
from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import ConfigError, PermanentError, TargetError, TransientError
from bridge.model.event import ChangeEvent
from bridge.ports.sink import KeyType, SinkCapabilities, TableSpec
from bridge.runtime.settings import PostgresTarget
from connectors.sinks import sql_names
from connectors.sinks.common import (
    KeyValue,
    Tables,
    coalesce,
    full_image,
    key_identity,
    key_types,
    wire_key,
)

log = logging.getLogger(__name__)

LAYOUT = ("item", "item_exact", "version", "deleted")
_PG_TYPES: dict[KeyType, str] = {"S": "text", "N": "numeric", "B": "bytea"}
# SQLSTATE classes worth retrying: connection exception, transaction rollback (serialization,
# deadlock), insufficient resources, operator intervention (shutdown), system error.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_TRANSIENT_STATES = frozenset({"55P03", "55006"})  # lock not available, object in use
# The target's fault, whatever the event: authorization (28), access rule / schema (42),
# invalid catalog / schema name (3D, 3F).
_TARGET_CLASSES = frozenset({"28", "42", "3D", "3F"})
_READ_ONLY = "25006"  # read_only_sql_transaction
# TCP keepalives: a server that vanished without closing the socket (host down, network cut)
# is noticed in ~25 s and reported as TransientError, instead of a write blocking forever.
_CONNECT: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
_MAX_IDENT = 63  # PostgreSQL silently truncates longer names: two tables could collide
# pg_class.relkind as the words of error messages; tables and views as sql_names expects them.
_RELKINDS = {
    "r": "table",
    "p": "table",
    "v": "view",
    "m": "materialized view",
    "i": "index",
    "I": "index",
    "S": "sequence",
    "f": "foreign table",
    "c": "composite type",
    "t": "TOAST table",
}


class _PgTable:
    """The statements for one target table."""

    def __init__(self, spec: TableSpec, schema: str, index: int = 0) -> None:
        self.spec = spec
        self.names = sql_names.plan(spec, LAYOUT, sql_names.exact, _MAX_IDENT)
        columns = self.names.key_columns
        self.types = [_PG_TYPES[t] for _, t in key_types(spec)]
        table = sql.Identifier(schema, self.names.table)
        view = sql.Identifier(schema, self.names.view)
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in columns)
        key_defs = sql.SQL("").join(
            sql.SQL("{} {} NOT NULL, ").format(sql.Identifier(k), sql.SQL(t))
            for k, t in zip(columns, self.types, strict=True)
        )
        self.ddl = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {table} ({key_defs}item jsonb, item_exact bytea, "
                "version bigint NOT NULL, deleted boolean NOT NULL, PRIMARY KEY ({keys}))"
            ).format(table=table, key_defs=key_defs, keys=keys),
            sql.SQL(
                "CREATE OR REPLACE VIEW {view} AS "
                "SELECT {keys}, item, item_exact, version FROM {table} WHERE NOT deleted"
            ).format(view=view, keys=keys, table=table),
        ]
        key_arrays = sql.SQL(", ").join(sql.SQL("%b::" + t + "[]") for t in self.types)
        # The WHERE is `bridge.model.versioning.wins(excluded, stored)` in SQL: a higher version, or
        # a delete over a write at an equal version (test_sink_contract holds it to the rule).
        conflict = sql.SQL(
            "ON CONFLICT ({keys}) DO UPDATE SET item = excluded.item, "
            "item_exact = excluded.item_exact, version = excluded.version, "
            "deleted = excluded.deleted "
            "WHERE stored.version < excluded.version OR (stored.version = excluded.version "
            "AND excluded.deleted AND NOT stored.deleted)"
        ).format(keys=keys)
        self.upsert = sql.SQL(
            "INSERT INTO {table} AS stored ({keys}, item, item_exact, version, deleted) "
            "SELECT * FROM unnest({key_arrays}, %b::text[]::jsonb[], %b::bytea[], "
            "%b::bigint[], %b::boolean[]) {conflict}"
        ).format(table=table, keys=keys, key_arrays=key_arrays, conflict=conflict)
        # The bulk path: COPY the batch's rows into a session-private staging table, then
        # one INSERT … SELECT with the same conflict rule. COPY is the cheapest way rows
        # enter PostgreSQL; the merge keeps last-write-wins and the tombstones exactly
        # (the rows are coalesced to one per key first, so no row is touched twice).
        # ON COMMIT DELETE ROWS empties it at every commit (a rollback discards the rows
        # anyway); IF NOT EXISTS in every transaction keeps it correct behind a pooler
        # that hands each transaction another server session.
        stage = sql.Identifier(f"ddb_bridge_stage_{index}")
        self.stage_ddl = sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {stage} ({key_defs}item jsonb, item_exact bytea, "
            "version bigint NOT NULL, deleted boolean NOT NULL) ON COMMIT DELETE ROWS"
        ).format(stage=stage, key_defs=key_defs)
        self.copy = sql.SQL(
            "COPY {stage} ({keys}, item, item_exact, version, deleted) FROM STDIN"
        ).format(stage=stage, keys=keys)
        self.merge = sql.SQL(
            "INSERT INTO {table} AS stored ({keys}, item, item_exact, version, deleted) "
            "SELECT {keys}, item, item_exact, version, deleted FROM {stage} {conflict}"
        ).format(table=table, keys=keys, stage=stage, conflict=conflict)
        q_cols = [sql.Identifier(f"k{i}") for i in range(len(self.types))]
        self.select = sql.SQL(
            "SELECT q.ord, t.item::text, t.item_exact FROM unnest({key_arrays}) "
            "WITH ORDINALITY AS q({q_cols}, ord) JOIN {table} AS t ON {join} "
            "WHERE NOT t.deleted"
        ).format(
            key_arrays=key_arrays,
            q_cols=sql.SQL(", ").join(q_cols),
            table=table,
            join=sql.SQL(" AND ").join(
                sql.SQL("t.{} = q.{}").format(sql.Identifier(k), c)
                for k, c in zip(columns, q_cols, strict=True)
            ),
        )
        # numeric keys come back as text so that no float or Decimal formatting is involved.
        self.scan = sql.SQL("SELECT {cols} FROM {table} WHERE NOT deleted").format(
            cols=sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier(k))
                if t == "numeric"
                else sql.Identifier(k)
                for k, t in zip(columns, self.types, strict=True)
            ),
            table=table,
        )


def _jsonb_safe(av: Any) -> Any:
    """A copy with U+0000 (which jsonb rejects) replaced by U+FFFD in every string and name."""
    if isinstance(av, str):
        return av.replace("\x00", "\ufffd")
    if isinstance(av, list):
        return [_jsonb_safe(v) for v in av]
    if isinstance(av, dict):
        return {_jsonb_safe(k): _jsonb_safe(v) for k, v in av.items()}
    return av


def _event_item_columns(event: ChangeEvent) -> tuple[str, bytes | None]:
    text = stored_text(event)
    # Checked text carries U+0000 only as the escape \u0000 (a raw control character is
    # not JSON); such an item takes the parsing path for its exact copy.
    if text is not None and b"\\u0000" not in text:
        return text.decode("utf-8"), None
    return _item_columns(full_image(event))


def _item_columns(image: Item) -> tuple[str, bytes | None]:
    text = attrs.dumps(image)
    # JSON escapes U+0000 as \u0000; the test may also match an escaped backslash followed
    # by "u0000", which only costs an unneeded exact copy.
    if "\\u0000" not in text:
        return text, None
    return attrs.dumps(_jsonb_safe(image)), text.encode("utf-8")


class PostgresSink:
    capabilities = SinkCapabilities(
        native_timestamps=False, ttl=False, tombstones=True, image_text=True
    )

    def __init__(self, settings: PostgresTarget) -> None:
        self.settings = settings
        self._dsn = settings.dsn.get_secret_value()
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()  # one connection, used serially
        self._tables = Tables([])
        self._sql: dict[str, _PgTable] = {}
        self._stage = True  # COPY through a staging table (False: no TEMP privilege)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        try:
            self._conn = psycopg.connect(self._dsn, autocommit=False, **_CONNECT)
        except psycopg.Error as exc:
            raise _translate(exc, "connect to PostgreSQL") from exc
        return self._conn

    def _failed(self, exc: psycopg.Error, what: str, table: str | None = None) -> Exception:
        """Roll back (or drop a broken connection) and translate the error."""
        conn = self._conn
        if conn is not None:
            # Read-only: the next attempt reconnects, which reaches a new primary after a
            # failover when the DSN follows it (target_session_attrs, a proxy, DNS).
            if conn.broken or conn.closed or exc.sqlstate == _READ_ONLY:
                conn.close()
                self._conn = None
            else:
                try:
                    conn.rollback()
                except psycopg.Error:
                    # The rollback failing means the connection is unusable: reconnect next.
                    conn.close()
                    self._conn = None
        return _translate(exc, what, table)

    def open(self, tables: Sequence[TableSpec], create_schema: bool = False) -> None:
        schema = _schema_name(self.settings)
        pg_tables = {spec.target: _PgTable(spec, schema, i) for i, spec in enumerate(tables)}
        sql_names.check_distinct([(t.spec, t.names) for t in pg_tables.values()], sql_names.exact)
        self._tables = Tables(tables)
        self._sql = pg_tables
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    # Under CREATE … IF NOT EXISTS, a relation of another kind holding one of
                    # our names (a view, an index, a sequence) would be taken silently.
                    cur.execute(
                        "SELECT c.relkind::text, c.relname FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %s AND c.relname = ANY(%s)",
                        (
                            schema,
                            [n for t in pg_tables.values() for n in (t.names.table, t.names.view)],
                        ),
                    )
                    existing = [(_RELKINDS.get(kind, kind), name) for kind, name in cur.fetchall()]
                    for table in pg_tables.values():
                        sql_names.check_existing(
                            table.spec, table.names, existing, sql_names.exact, f"schema {schema}"
                        )
                    if create_schema:
                        # Serializes concurrent workers creating the same objects, which
                        # would otherwise race on the catalog (duplicate key in pg_type).
                        cur.execute("SELECT pg_advisory_xact_lock(hashtext('ddb-bridge schema'))")
                        cur.execute(_schema_ddl(schema))
                        for table in pg_tables.values():
                            for ddl in table.ddl:
                                cur.execute(ddl)
                    else:
                        for table in pg_tables.values():
                            if ("table", table.names.table) not in existing:
                                raise ConfigError(
                                    f"target table {schema}.{table.names.table} does not exist "
                                    "(create it with --create-schema)"
                                )
                conn.commit()
            except psycopg.Error as exc:
                raise self._failed(exc, "create schema") from exc
            except ConfigError:
                conn.rollback()
                raise

    def _table(self, name: str) -> _PgTable:
        return self._sql[self._tables.get(name).target]

    def write_batch(self, events: Sequence[ChangeEvent]) -> None:
        if not events:
            return
        statements: list[tuple[_PgTable, list[tuple[Any, ...]]]] = []
        for target, winners in coalesce(events, self._tables).items():
            rows: list[tuple[Any, ...]] = []
            for ident, event in winners.items():
                if event.is_delete:
                    rows.append((*ident, None, None, event.version, True))
                else:
                    item, exact = _event_item_columns(event)
                    rows.append((*ident, item, exact, event.version, False))
            statements.append((self._sql[target], rows))
        with self._lock:
            conn = self._connection()
            # The table a refusal is about: the batch's, until a statement names one.
            current = ", ".join(table.spec.target for table, _ in statements)
            try:
                with conn.cursor() as cur:
                    for table, rows in statements:
                        current = table.spec.target
                        if self._stage:
                            _copy_merge(cur, table, rows)
                        else:
                            cur.execute(table.upsert, [list(c) for c in zip(*rows, strict=True)])
                conn.commit()
                return
            except _NoTempPrivilege as exc:
                assert isinstance(exc.__cause__, psycopg.Error)
                self._failed(exc.__cause__, "create a staging table", current)
                log.warning(
                    "no TEMP privilege on the database: writing through INSERT … unnest "
                    "instead of COPY (slower; GRANT TEMP to the apply role to use COPY)",
                    extra={"target_table": current, "error": str(exc.__cause__)},
                )
                self._stage = False
            except psycopg.Error as exc:
                raise self._failed(exc, _describe(events), current) from exc
        self.write_batch(events)  # once more, without the staging table

    def read_items(self, table: str, keys: Sequence[Item]) -> list[Item | None]:
        pg = self._table(table)
        idents = [key_identity(pg.spec, key) for key in keys]
        out: list[Item | None] = [None] * len(keys)
        if not keys:
            return out
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    cur.execute(pg.select, [list(col) for col in zip(*idents, strict=True)])
                    rows = cur.fetchall()
                conn.rollback()  # read only: end the transaction, keep no snapshot open
            except psycopg.Error as exc:
                raise self._failed(exc, f"read {pg.spec.target}") from exc
        for ordinal, text, exact in rows:
            out[ordinal - 1] = attrs.loads(bytes(exact) if exact is not None else text)
        return out

    def scan_keys(self, table: str) -> Iterator[Item]:
        pg = self._table(table)
        # A connection of its own with a server-side cursor: no table-sized result in memory,
        # and no long transaction on the writing connection.
        try:
            with (
                psycopg.connect(self._dsn, **_CONNECT) as conn,
                conn.cursor(name="ddb_bridge_scan") as cur,
            ):
                cur.itersize = 2000
                cur.execute(pg.scan)
                for row in cur:
                    yield wire_key(pg.spec, [_key_back(v) for v in row])
        except psycopg.Error as exc:
            raise _translate(exc, f"scan {pg.spec.target}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _NoTempPrivilege(Exception):
    """The role may not create temporary tables: the sink falls back to INSERT … unnest."""


def _schema_name(settings: PostgresTarget) -> str:
    schema = settings.schema_name
    if len(schema.encode("utf-8")) > _MAX_IDENT or "\x00" in schema:
        raise ConfigError(
            f"schema_name {schema!r} is not a PostgreSQL name (at most {_MAX_IDENT} bytes)"
        )
    return schema


def _schema_ddl(schema: str) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


def ddl(spec: TableSpec, settings: PostgresTarget) -> list[str]:
    """The statements `open(create_schema=True)` runs for `spec` (`ddb-bridge schema sql`)."""
    schema = _schema_name(settings)
    statements = [_schema_ddl(schema), *_PgTable(spec, schema).ddl]
    # No connection: identifiers quote the same without one, and the DDL holds no literal.
    return [statement.as_string(None) for statement in statements]


def _copy_merge(cur: psycopg.Cursor[Any], table: _PgTable, rows: list[tuple[Any, ...]]) -> None:
    """One table's rows of a batch: COPY into the staging table, merge into the table."""
    try:
        cur.execute(table.stage_ddl, prepare=False)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _NoTempPrivilege() from exc
    with cur.copy(table.copy) as copy:
        write_row = copy.write_row
        for row in rows:
            write_row(row)
    cur.execute(table.merge)


def _describe(events: Sequence[ChangeEvent]) -> str:
    """What a failed write was: the table and key when it was one event (the worker's
    poison-isolation retries one at a time, so the dead-letter reason names the item)."""
    if len(events) == 1:
        event = events[0]
        return f"write table {event.table} key {attrs.dumps(event.keys)} version {event.version}"
    return f"write {len(events)} events"


def _key_back(value: Any) -> KeyValue:
    return bytes(value) if isinstance(value, memoryview) else value


def _translate(exc: psycopg.Error, what: str, table: str | None = None) -> Exception:
    state = exc.sqlstate
    if state is None:
        # No server verdict: the connection failed, broke or timed out.
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return TransientError(f"PostgreSQL: {what}: {exc}")
        return PermanentError(f"PostgreSQL: {what}: {exc}")
    if state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES:
        return TransientError(f"PostgreSQL: {what}: [{state}] {exc}")
    if state == _READ_ONLY:
        return TargetError(
            f"PostgreSQL: {what}: [{state}] the server accepts no writes ({exc}); a standby "
            "after a failover, or default_transaction_read_only is on",
            table=table,
            retryable=True,
        )
    if state[:2] in _TARGET_CLASSES:
        return TargetError(f"PostgreSQL: {what}: [{state}] {exc}", table=table)
    return PermanentError(f"PostgreSQL: {what}: [{state}] {exc}")
