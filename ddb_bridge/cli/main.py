"""Entry point: discovers the command modules in `ddb_bridge.cli.commands` and dispatches.

Exit codes (`helptext.EXIT_CODES`, listed in every `--help`): 0 ok, 1 failure, 2 usage or
configuration error, 130 interrupted, 141 output closed early (`ddb-bridge config show |
head`: quiet, as a shell tool killed by SIGPIPE).
Error messages go through `bridge.redact`, so a secret in an exception's text is masked.
Each command module exposes `register(subparsers)`, which adds its parser and sets
`func(args) -> int` as the default.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from bridge import __version__, logs
from bridge.errors import BridgeError, ConfigError, Unavailable
from bridge.redact import redact_text
from ddb_bridge.cli import commands
from ddb_bridge.cli.helptext import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OUTPUT_CLOSED,
    EXIT_UNAVAILABLE,
    HelpFormatter,
    add_exit_codes,
)

__all__ = ["HelpFormatter", "build_parser", "main"]

log = logging.getLogger("ddb-bridge")


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
    add_exit_codes(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        # --help, --version and usage errors print, then exit; a closed pipe shows here.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return _output_closed()
        raise
    logs.setup(getattr(args, "log_level", "INFO"), getattr(args, "log_format", "text"))
    try:
        code: int = args.func(args)
        # Flush here, not at interpreter exit, so a closed pipe is caught below.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _output_closed()
    except Unavailable as exc:
        log.error("%s", exc)
        print(f"ddb-bridge: unavailable: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ConfigError as exc:
        print(f"ddb-bridge: configuration error: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    except BridgeError as exc:
        log.error("%s", exc)
        print(f"ddb-bridge: error: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("ddb-bridge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _output_closed() -> int:
    """The reader of stdout went away (`| head`): stop quietly with 128 + SIGPIPE."""
    # Whatever is still buffered cannot be written; point stdout at /dev/null so the flush at
    # interpreter exit does not print a second BrokenPipeError.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OUTPUT_CLOSED


if __name__ == "__main__":
    sys.exit(main())
