"""Entry point: discovers the command modules in `bridge.cli.commands` and dispatches.

Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 130 interrupted.
Each command module exposes `register(subparsers)`, which adds its parser and sets
`func(args) -> int` as the default.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from bridge import __version__, logs
from bridge.cli import commands
from bridge.errors import BridgeError, ConfigError

log = logging.getLogger("ddb-bridge")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddb-bridge",
        description="Move a live DynamoDB table to another database through Kafka.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ddb-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every command takes."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="TOML config file [env DDB_BRIDGE_CONFIG; default ./bridge.toml if present]",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(getattr(args, "log_level", "INFO"))
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"ddb-bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        log.error("%s", exc)
        print(f"ddb-bridge: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ddb-bridge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
