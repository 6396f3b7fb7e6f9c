"""SQLite sink: the embedded default target (the SQL mapping of the PostgreSQL sink).

One table per DynamoDB table (the target name): a column per key attribute, `item` (the
whole item as DynamoDB JSON text, lossless; NULL for a tombstone), `version`, `deleted`
(0/1), and the view `<table>_live` of live rows. Names: `sql_names` (a key attribute named
like a layout column gets the column `key_<name>`; SQLite ignores ASCII case in names, so
target names differing only in case are refused). Writes are upserts that only replace a row
holding an older version (a delete wins a tie), so applying any events, in any order, any
number of times leaves every row at its newest state; a REMOVE keeps a tombstone row so no
older write can bring the item back (docs/design.md, section 11).

Key columns: S as TEXT, B as BLOB (the raw bytes), N as the number's canonical decimal text
(`attrs.normalize_number`: `1`, `1.0` and `1e0` are the same key). Not REAL, which is a
64-bit float: 38-digit keys would collide and equal numbers could differ. The cost is that
N keys sort as text, not numerically; cast in queries that need numeric order.

Delivery guarantee: `write_batch` commits the whole batch in one transaction in WAL mode with
`synchronous=FULL` before returning, so a returned batch survives a crash or power loss.

Whose fault a refusal is: a read-only database, no permission, a corrupt or foreign file,
a table or column that is not there are the target's (TargetError: apply stops, as none of
them ends while this connection stays open); a value SQLite cannot take (too big, a
constraint) is the event's (PermanentError, dead-lettered).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import ConfigError, PermanentError, TargetError, TransientError
from bridge.model.event import ChangeEvent
from bridge.ports.sink import KeyType, SinkCapabilities, TableSpec
from bridge.runtime.settings import SqliteTarget
from connectors.sinks import sql_names
from connectors.sinks.common import (
    Tables,
    coalesce,
    item_text,
    key_identity,
    key_types,
    wire_key,
)

LAYOUT = ("item", "version", "deleted")
_SQL_TYPES: dict[KeyType, str] = {"S": "TEXT", "N": "TEXT", "B": "BLOB"}
# Primary result codes worth retrying: another writer holds the lock, I/O trouble, disk full.
_TRANSIENT_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)

# The database as a whole refuses: read-only (file, mount or format), permissions, an
# authorizer, a file that is not (or no longer) a sound database.
_TARGET_CODES = frozenset(
    {
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_AUTH,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
    }
)
# SQLITE_ERROR covers both a missing table/column (the schema changed under us) and
# statement errors; the message tells them apart.
_SCHEMA_MESSAGES = ("no such table", "no such column", "has no column named")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _SqlTable:
    """The statements for one target table."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.names = sql_names.plan(spec, LAYOUT, sql_names.sqlite_fold)
        for name in (self.names.table, self.names.view):
            if sql_names.sqlite_fold(name).startswith("sqlite_"):
                raise ConfigError(
                    f"table {spec.source}: SQLite reserves names starting with sqlite_ "
                    f"({name!r}): set target_table for {spec.source} in [[tables]]"
                )
        self.name = quote(self.names.table)
        self.view = quote(self.names.view)
        keys = [quote(k) for k in self.names.key_columns]
        key_list = ", ".join(keys)
        self.ddl = [
            f"CREATE TABLE IF NOT EXISTS {self.name} ("
            + "".join(
                f"{column} {_SQL_TYPES[t]} NOT NULL, "
                for column, (_, t) in zip(keys, key_types(spec), strict=True)
            )
            + "item TEXT, version INTEGER NOT NULL, deleted INTEGER NOT NULL, "
            f"PRIMARY KEY ({key_list})) WITHOUT ROWID",
            f"CREATE VIEW IF NOT EXISTS {self.view} AS "
            f"SELECT {key_list}, item, version FROM {self.name} WHERE deleted = 0",
        ]
        marks = ", ".join("?" for _ in range(len(keys) + 3))
        # The WHERE is `bridge.model.versioning.wins(excluded, stored)` in SQL: a higher version, or
        # a delete over a write at an equal version (test_sink_contract holds it to the rule).
        self.upsert = (
            f"INSERT INTO {self.name} ({key_list}, item, version, deleted) VALUES ({marks}) "
            f"ON CONFLICT ({key_list}) DO UPDATE SET "
            "item = excluded.item, version = excluded.version, deleted = excluded.deleted "
            f"WHERE {self.name}.version < excluded.version OR "
            f"({self.name}.version = excluded.version AND excluded.deleted > {self.name}.deleted)"
        )
        where = " AND ".join(f"{k} = ?" for k in keys)
        self.select = f"SELECT item, deleted FROM {self.name} WHERE {where}"
        self.scan = f"SELECT {key_list} FROM {self.name} WHERE deleted = 0"


def ddl(spec: TableSpec) -> list[str]:
    """The statements `open(create_schema=True)` runs for `spec` (`ddb-bridge schema sql`)."""
    return list(_SqlTable(spec).ddl)


class SqliteSink:
    capabilities = SinkCapabilities(
        native_timestamps=False, ttl=False, tombstones=True, image_text=True
    )

    def __init__(self, settings: SqliteTarget) -> None:
        self.settings = settings
        self.path = settings.path
        self._conn: sqlite3.Connection | None = None
        # The apply worker may call from an executor thread; one connection, used serially.
        self._lock = threading.Lock()
        self._tables = Tables([])
        self._sql: dict[str, _SqlTable] = {}

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when it returns ("returns when durable").
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise _translate(exc, f"open SQLite database {self.path}") from exc
        return conn

    def open(self, tables: Sequence[TableSpec], create_schema: bool = False) -> None:
        sql = {spec.target: _SqlTable(spec) for spec in tables}
        sql_names.check_distinct([(t.spec, t.names) for t in sql.values()], sql_names.sqlite_fold)
        self._tables = Tables(tables)
        self._sql = sql
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            try:
                existing = conn.execute(
                    "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')"
                ).fetchall()
                for table in self._sql.values():
                    sql_names.check_existing(
                        table.spec, table.names, existing, sql_names.sqlite_fold, self.path
                    )
                    if create_schema:
                        for ddl in table.ddl:
                            conn.execute(ddl)
                    elif ("table", table.names.table) not in existing:
                        raise ConfigError(
                            f"target table {table.names.table!r} does not exist in {self.path} "
                            "(create it with --create-schema)"
                        )
            except sqlite3.Error as exc:
                raise _translate(exc, f"create schema in {self.path}") from exc

    def _table(self, name: str) -> _SqlTable:
        return self._sql[self._tables.get(name).target]

    def write_batch(self, events: Sequence[ChangeEvent]) -> None:
        if not events:
            return
        rows_by_table: list[tuple[_SqlTable, list[tuple[Any, ...]]]] = []
        for target, winners in coalesce(events, self._tables).items():
            table = self._sql[target]
            rows = []
            for ident, event in winners.items():
                item = None if event.is_delete else item_text(event)
                rows.append((*ident, item, event.version, 1 if event.is_delete else 0))
            rows_by_table.append((table, rows))
        with self._lock:
            conn = self._require()
            # The table a refusal is about: the batch's, until a statement names one.
            current = ", ".join(table.spec.target for table, _ in rows_by_table)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for table, rows in rows_by_table:
                        current = table.spec.target
                        conn.executemany(table.upsert, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite may already have rolled back (e.g. SQLITE_READONLY, SQLITE_FULL);
                    # a ROLLBACK then fails and would hide the error that matters.
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _translate(
                    exc, f"write {len(events)} events to {self.path}", current
                ) from exc

    def read_items(self, table: str, keys: Sequence[Item]) -> list[Item | None]:
        sql = self._table(table)
        out: list[Item | None] = []
        with self._lock:
            conn = self._require()
            try:
                for key in keys:
                    row = conn.execute(sql.select, key_identity(sql.spec, key)).fetchone()
                    out.append(attrs.loads(row[0]) if row is not None and not row[1] else None)
            except sqlite3.Error as exc:
                raise _translate(exc, f"read {sql.spec.target}") from exc
        return out

    def scan_keys(self, table: str) -> Iterator[Item]:
        sql = self._table(table)
        # A connection of its own: WAL lets it read a consistent snapshot while writes go on.
        reader = self._connect()
        try:
            cursor = reader.execute(sql.scan)
            while True:
                try:
                    rows = cursor.fetchmany(1000)
                except sqlite3.Error as exc:
                    raise _translate(exc, f"scan {sql.spec.target}") from exc
                if not rows:
                    return
                for row in rows:
                    yield wire_key(sql.spec, row)
        finally:
            reader.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise PermanentError("SqliteSink used before open()")
        return self._conn


def _translate(exc: sqlite3.Error, what: str, table: str | None = None) -> Exception:
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    if code is not None and code & 0xFF in _TRANSIENT_CODES:
        return TransientError(f"{what}: {exc}")
    if code is not None and code & 0xFF in _TARGET_CODES:
        return TargetError(f"{what}: {name}: {exc}", table=table)
    schema_gone = any(m in str(exc) for m in _SCHEMA_MESSAGES)
    if code is not None and code & 0xFF == sqlite3.SQLITE_ERROR and schema_gone:
        return TargetError(f"{what}: {exc}", table=table)
    return PermanentError(f"{what}: {exc}")
