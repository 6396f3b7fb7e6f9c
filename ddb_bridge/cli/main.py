"""Entry point: discovers the command modules in `ddb_bridge.cli.commands` and dispatches.

Exit codes (`helptext.EXIT_CODES`, listed in every `--help`): 0 ok, 1 failure, 2 usage or
configuration error, 130 interrupted, 141 output closed early (`ddb-bridge config show |
head`: quiet, as a shell tool killed by SIGPIPE).
Error messages go through `bridge.runtime.redact`, so a secret in an exception's text is masked.
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

from botocore.exceptions import BotoCoreError, ClientError

from bridge import __version__
from bridge.model.errors import BridgeError, ConfigError, Unavailable
from bridge.runtime import logs
from bridge.runtime.redact import redact_text
from bridge.runtime.settings import name_the_command
from connectors.dynamodb.aws_errors import NO_CREDENTIALS, NOT_ANSWERING
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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given the arguments of one run that name a command, only that
    command's parser, so a run imports the modules of its own command alone (each launch of a
    daemon otherwise paid ~0.3 s of CPU importing the drivers of every other command)."""
    parser = argparse.ArgumentParser(
        prog="ddb-bridge",
        description="Move a live DynamoDB table to another database through Kafka.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ddb-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__))
    named = _named_command(argv, names)
    for name in [named] if named else names:
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    add_exit_codes(parser)
    return parser


def _named_command(argv: Sequence[str] | None, names: list[str]) -> str | None:
    """The command a run names as its first argument, when it is one of ours; else None (no
    argument, `--help`, `--version`, a typo: those need every command's parser)."""
    if argv is None:
        return None
    first = next(iter(argv), None)
    return first if first in names else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(sys.argv[1:] if argv is None else argv)
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
    # An assumed role's session is named after the command ("ddb-bridge-stream"), for CloudTrail.
    name_the_command(getattr(args, "command", None) or "cli")
    try:
        code: int = args.func(args)
        # Flush here, not at interpreter exit, so a closed pipe is caught below.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _output_closed()
    except KeyboardInterrupt:
        print("ddb-bridge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (BridgeError, BotoCoreError, ClientError) as exc:
        return _failed(args, exc)


def _failed(args: argparse.Namespace, exc: BridgeError | BotoCoreError | ClientError) -> int:
    """Every failure of a command ends here: one line, the documented exit code.

    A bridge error caused by AWS (a connector translated botocore's exception: what it was
    doing, but not what to do) and a botocore error no code of the command caught are judged
    by that AWS error: no credentials is a configuration error, an endpoint that does not
    answer is 75, a refusal is a failure; each with the advice that fits.
    """
    aws = _aws_cause(exc)
    if aws is not None:
        kind, code, advice = _aws_failure(aws)
        if isinstance(exc, BridgeError):
            if isinstance(exc, ConfigError | Unavailable) or code == EXIT_FAILURE:
                # The connector's own verdict stands (a missing table is a configuration
                # error, whatever AWS error revealed it); only the advice is added.
                kind, code = _bridge_failure(exc)
            said = f"{exc}; {advice}" if advice and advice not in str(exc) else str(exc)
        else:
            said = f"AWS: {exc}; {advice}" if advice else f"AWS: {exc}"
        _say_once(args, kind, Exception(said))
        return code
    kind, code = _bridge_failure(exc)
    _say_once(args, kind, exc)
    return code


def _bridge_failure(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, Unavailable):
        return "unavailable", EXIT_UNAVAILABLE
    if isinstance(exc, ConfigError):
        return "configuration error", EXIT_CONFIG
    return "error", EXIT_FAILURE


def _aws_cause(exc: BaseException) -> BotoCoreError | ClientError | None:
    """The botocore error `exc` is, or was raised from (`raise ... from`), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BotoCoreError | ClientError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def _aws_failure(exc: Exception) -> tuple[str, int, str]:
    if isinstance(exc, NO_CREDENTIALS):
        return (
            "configuration error",
            EXIT_CONFIG,
            "give credentials the AWS way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, ~/.aws, an instance role) or set [aws] profile / access_key_id",
        )
    if isinstance(exc, NOT_ANSWERING):
        return (
            "unavailable",
            EXIT_UNAVAILABLE,
            "check [aws] region, endpoint_url and [aws.endpoints], and run it again once AWS "
            "is reachable",
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ThrottlingException", "ProvisionedThroughputExceededException"):
            return ("unavailable", EXIT_UNAVAILABLE, "run it again later")
        return ("error", EXIT_FAILURE, "check the table, region and the credentials' permissions")
    return ("error", EXIT_FAILURE, "")


def _say_once(args: argparse.Namespace, kind: str, exc: Exception) -> None:
    """The error once on stderr: a JSON log line for `--log-format json` (a log shipper reads
    it), else the plain `ddb-bridge: <kind>: …` line a person reads."""
    if getattr(args, "log_format", "text") == "json":
        log.error("%s: %s", kind, exc)
    else:
        print(f"ddb-bridge: {kind}: {redact_text(str(exc))}", file=sys.stderr)


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
