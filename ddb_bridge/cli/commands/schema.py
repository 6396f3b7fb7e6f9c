"""`ddb-bridge schema cql|sql --table T`: print the DDL `apply --create-schema` would run.

`cql`: the keyspace and table the CQL mapping implies (ScyllaDB, Cassandra); `sql`: the
schema, table and view of a PostgreSQL or SQLite target. The key schema comes from the config
(`[[tables]] hash_key = …`) when declared there, else from DescribeTable on the source; the
target is `--target`, else `[apply].target` when of the right kind, else the only one. The
statements are the sinks' own (`connectors.sinks.*.ddl`), so they cannot differ.
"""

from __future__ import annotations

import argparse

from bridge.model.errors import ConfigError
from bridge.runtime.settings import (
    PostgresTarget,
    ScyllaTarget,
    Settings,
    SqliteTarget,
    TargetSettings,
    load_settings,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.parsers import actions, add_source_table, command

    schema = command(
        sub,
        "schema",
        "print the target schema DDL that `apply --create-schema` runs",
        "Print the DDL `apply --create-schema` would run, to review it or have it run by hand.",
        common=False,
    )
    kinds = actions(schema, "schema_kind", "KIND")
    cql = command(
        kinds,
        "cql",
        "the CQL (ScyllaDB/Cassandra) keyspace and table",
        "Print the CQL keyspace and table for one source table.",
    )
    add_source_table(cql)
    cql.add_argument(
        "--target",
        default=None,
        help="CQL target name [default: setting apply.target if it names a scylla target, "
        "else the only scylla target, else an unnamed one with keyspace 'migrated']",
    )
    cql.set_defaults(func=run_cql)

    sql = command(
        kinds,
        "sql",
        "the PostgreSQL or SQLite schema, table and view",
        "Print the SQL schema, table and view for one source table, for the "
        "target's dialect (PostgreSQL or SQLite).",
    )
    add_source_table(sql)
    sql.add_argument(
        "--target",
        default=None,
        help="PostgreSQL or SQLite target name [default: setting apply.target if it names "
        "one, else the only one]",
    )
    sql.set_defaults(func=run_sql)


def cql_target(settings: Settings, name: str | None) -> ScyllaTarget:
    if name is not None:
        target = settings.target(name)
        if not isinstance(target, ScyllaTarget):
            raise ConfigError(f"targets.{name} is of type {target.type!r}, not 'scylla'")
        return target
    default = settings.targets.get(settings.apply.target)
    if isinstance(default, ScyllaTarget):
        return default
    found = {n: t for n, t in settings.targets.items() if isinstance(t, ScyllaTarget)}
    if len(found) > 1:
        raise ConfigError(f"several scylla targets ({', '.join(sorted(found))}): choose --target")
    return next(iter(found.values()), ScyllaTarget(type="scylla"))


SqlTarget = PostgresTarget | SqliteTarget


def sql_target(settings: Settings, name: str | None) -> SqlTarget:
    if name is not None:
        target: TargetSettings = settings.target(name)
        if not isinstance(target, SqlTarget):
            raise ConfigError(f"targets.{name} is of type {target.type!r}, not postgres or sqlite")
        return target
    default = settings.targets.get(settings.apply.target)
    if isinstance(default, SqlTarget):
        return default
    found = {n: t for n, t in settings.targets.items() if isinstance(t, SqlTarget)}
    if len(found) != 1:
        which = f"several ({', '.join(sorted(found))})" if found else "no"
        raise ConfigError(f"{which} postgres or sqlite targets configured: choose --target")
    return next(iter(found.values()))


def run_sql(args: argparse.Namespace) -> int:
    from connectors.dynamodb import aws
    from connectors.sinks import postgres, sqlite

    settings = load_settings(args.config)
    target = sql_target(settings, args.target)
    spec = aws.table_spec(None, settings, args.table)
    if isinstance(target, PostgresTarget):
        statements = postgres.ddl(spec, target)
    else:
        statements = sqlite.ddl(spec)
    print("\n\n".join(statement + ";" for statement in statements))
    return 0


def run_cql(args: argparse.Namespace) -> int:
    # The CLI is the composition root: connectors are imported here, lazily.
    from connectors.dynamodb import aws
    from connectors.sinks.scylla import ddl

    settings = load_settings(args.config)
    target = cql_target(settings, args.target)
    spec = aws.table_spec(None, settings, args.table)
    print("\n\n".join(statement + ";" for statement in ddl(spec, target)))
    return 0
