"""How a command's parser is made, so every command and action is built the same way: its
help formatted by `HelpFormatter` (defaults and exit codes stated alike), the common options
first, and the few options several commands share spelled once."""

from __future__ import annotations

import argparse
from typing import TypeAlias

from ddb_bridge.cli.common_options import add_common
from ddb_bridge.cli.helptext import HelpFormatter

# A string: argparse's class is not subscriptable at run time.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def command(
    sub: Subparsers,
    name: str,
    help: str,
    description: str | None = None,
    *,
    common: bool = True,
) -> argparse.ArgumentParser:
    """The parser of a command (or of one action of a command group) under `sub`; with
    `common`, it takes the options every command takes (`add_common`)."""
    parser = sub.add_parser(name, help=help, description=description, formatter_class=HelpFormatter)
    if common:
        add_common(parser)
    return parser


def actions(parser: argparse.ArgumentParser, dest: str, metavar: str = "ACTION") -> Subparsers:
    """The actions of a command group (`dlq list`, `schema cql`): one must be named."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar)
    sub.required = True
    return sub


def add_source_table(parser: argparse.ArgumentParser) -> None:
    """`--table T`, required: the one source table a command works on."""
    parser.add_argument("--table", required=True, help="source DynamoDB table")
