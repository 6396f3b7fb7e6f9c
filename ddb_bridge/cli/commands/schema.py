"""`ddb-bridge schema cql --table T`: print the keyspace/table DDL the CQL mapping implies.

The key schema comes from the config (`[[tables]] hash_key = …`) when declared there, else
from DescribeTable on the source; the keyspace, replication and map column from the CQL
target (`--target`, else `[apply].target` when it is a CQL target, else the only one).
The same statements are what `apply --create-schema` runs.
"""

from __future__ import annotations

import argparse

from bridge.model.errors import ConfigError
from bridge.runtime.settings import ScyllaTarget, Settings, load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.common_options import add_common
    from ddb_bridge.cli.helptext import HelpFormatter

    schema = sub.add_parser("schema", help="print target schema DDL", formatter_class=HelpFormatter)
    kinds = schema.add_subparsers(dest="schema_kind", metavar="KIND")
    kinds.required = True
    cql = kinds.add_parser(
        "cql", help="the CQL (ScyllaDB/Cassandra) keyspace and table", formatter_class=HelpFormatter
    )
    add_common(cql)
    cql.add_argument("--table", required=True, help="source DynamoDB table")
    cql.add_argument(
        "--target",
        default=None,
        help="CQL target name [default: setting apply.target if it names a scylla target, "
        "else the only scylla target, else an unnamed one with keyspace 'migrated']",
    )
    cql.set_defaults(func=run_cql)


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


def run_cql(args: argparse.Namespace) -> int:
    # The CLI is the composition root: connectors are imported here, lazily.
    from connectors.dynamodb import aws
    from connectors.sinks.scylla import ddl

    settings = load_settings(args.config)
    target = cql_target(settings, args.target)
    spec = aws.table_spec(None, settings, args.table)
    print("\n\n".join(statement + ";" for statement in ddl(spec, target)))
    return 0
