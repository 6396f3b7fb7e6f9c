"""Table, view and key-column names of the SQL targets (SQLite, PostgreSQL).

Every name is quoted in every statement, so any name DynamoDB allows (dots, dashes, quotes,
spaces, non-ASCII) keeps its exact spelling. What quoting cannot fix is decided here:

- Key columns are named like their key attributes, so SQL over the target reads naturally.
  A key attribute whose name the target cannot use as is — one of the layout's own columns
  (`item`, `version`, `deleted`, ...), another key column under the database's case rules
  (SQLite: `id` = `ID`), longer than PostgreSQL's 63 bytes, or holding U+0000 — gets the
  column `key_<name>` instead (shortened with a digest when too long). The mapping depends
  only on the key schema, so every run and every worker derives the same one. The item's
  JSON keeps the attribute's real name either way.
- Table and view names are the user's to choose (`target_table`), so a clash is refused when
  the schema is opened, naming the table and the setting: two target names that the database
  would take for one (SQLite ignores ASCII case even in quoted names: `Orders` is `orders`),
  or a target named like another table's view `<table>_live`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bridge.model.errors import ConfigError
from bridge.ports.sink import TableSpec

log = logging.getLogger(__name__)

VIEW_SUFFIX = "_live"
KEY_PREFIX = "key_"

Fold = Callable[[str], str]
"""A name as the database compares it."""

_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def sqlite_fold(name: str) -> str:
    """SQLite compares identifiers ignoring the case of ASCII letters only."""
    return name.translate(_ASCII_UPPER)


def exact(name: str) -> str:
    """PostgreSQL compares quoted identifiers exactly."""
    return name


@dataclass(frozen=True)
class SqlNames:
    table: str
    view: str
    key_columns: tuple[str, ...]  # in the order of spec.key_names


def _fits(name: str, max_bytes: int | None) -> bool:
    return "\x00" not in name and (max_bytes is None or len(name.encode("utf-8")) <= max_bytes)


def _shorten(name: str, max_bytes: int | None) -> str:
    """`name` if usable, else a readable prefix of it plus a digest of the whole name."""
    if _fits(name, max_bytes):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    room = (max_bytes if max_bytes is not None else len(name.encode("utf-8"))) - len(digest) - 1
    prefix = name.replace("\x00", "").encode("utf-8")[:room].decode("utf-8", "ignore")
    return f"{prefix}_{digest}"


def key_columns(
    spec: TableSpec, layout: Iterable[str], fold: Fold, max_bytes: int | None = None
) -> tuple[str, ...]:
    """The column of each key attribute (see the module docstring)."""
    taken = {fold(name) for name in layout}
    columns: dict[str, str] = {}
    # First the attributes that keep their own name, so a rename never takes theirs.
    for attr in spec.key_names:
        if _fits(attr, max_bytes) and fold(attr) not in taken:
            columns[attr] = attr
            taken.add(fold(attr))
    for attr in spec.key_names:
        if attr in columns:
            continue
        column = _shorten(KEY_PREFIX + attr, max_bytes)
        while fold(column) in taken:
            column = _shorten(KEY_PREFIX + column, max_bytes)
        columns[attr] = column
        taken.add(fold(column))
        log.info(
            "key attribute stored under another column name",
            extra={"table": spec.source, "attribute": repr(attr), "column": repr(column)},
        )
    return tuple(columns[attr] for attr in spec.key_names)


def plan(
    spec: TableSpec, layout: Iterable[str], fold: Fold, max_bytes: int | None = None
) -> SqlNames:
    """The names of one table's objects; refuses a table or view name the target would cut."""
    view = spec.target + VIEW_SUFFIX
    for name in (spec.target, view):
        if not _fits(name, max_bytes):
            limit = "U+0000" if "\x00" in name else f"longer than {max_bytes} bytes"
            raise ConfigError(
                f"table {spec.source}: target name {name!r} is {limit}, which the target "
                f"cannot hold: set target_table for {spec.source} in [[tables]] to a shorter name"
            )
    return SqlNames(spec.target, view, key_columns(spec, layout, fold, max_bytes))


def _reason(a: str, b: str, kinds: tuple[str, str]) -> str:
    if a != b and sqlite_fold(a) == sqlite_fold(b):
        return "SQLite ignores the case of names"
    if "view" in kinds:
        return f"each target table comes with a view named <table>{VIEW_SUFFIX}"
    return "the name is taken"


def check_distinct(tables: Sequence[tuple[TableSpec, SqlNames]], fold: Fold) -> None:
    """Refuse target names that would be one table or view for the database."""
    seen: dict[str, tuple[TableSpec, str, str]] = {}
    for spec, names in tables:
        for kind, name in (("table", names.table), ("view", names.view)):
            held = seen.get(fold(name))
            if held is not None:
                other, other_kind, other_name = held
                reason = _reason(other_name, name, (other_kind, kind))
                raise ConfigError(
                    f"tables {other.source} and {spec.source}: the {other_kind} "
                    f"{other_name!r} and the {kind} {name!r} would be one object in the target "
                    f"({reason}): set target_table for one of them in [[tables]]"
                )
            seen[fold(name)] = (spec, kind, name)


def check_existing(
    spec: TableSpec,
    names: SqlNames,
    existing: Iterable[tuple[str, str]],
    fold: Fold,
    where: str,
) -> None:
    """Refuse when the database already holds another object under one of our names.

    `existing`: (kind, name) of the tables and views present, kind "table" or "view" (any
    other kind of relation, e.g. a PostgreSQL index, as its own word).
    """
    wanted = {fold(names.table): ("table", names.table), fold(names.view): ("view", names.view)}
    for kind, name in existing:
        want = wanted.get(fold(name))
        if want is None or want == (kind, name):
            continue
        want_kind, want_name = want
        reason = _reason(want_name, name, (want_kind, kind))
        raise ConfigError(
            f"table {spec.source}: its {want_kind} {want_name!r} would be the existing "
            f"{kind} {name!r} in {where} ({reason}): set target_table for {spec.source} "
            "in [[tables]]"
        )
