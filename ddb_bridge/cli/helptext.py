"""How `--help` states defaults and exit codes, so every command says them the same way.

An option's help shows its default once, as `[default: …]`: written in the help text when
the option falls back to a setting (`from_setting` reads the key's default from the settings
models, so the text cannot go stale) or to something computed; appended by `HelpFormatter`
when the option has a plain default of its own. Flags (store_true) and options without a
default show none. Every parser ends with the exit codes, from `EXIT_CODES`, which
`ddb_bridge.cli.main` returns.
"""

from __future__ import annotations

import argparse
import signal
import textwrap
from typing import Any

from bridge.runtime.config_template import toml_value
from bridge.runtime.settings import ENV_PREFIX, Settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 75  # sysexits.h EX_TEMPFAIL
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 128 + signal.SIGPIPE  # 141, what a shell reports for `yes | head`

EXIT_CODES = {
    EXIT_OK: "success (`verify`: no differences; `stream`, `apply`, `audit`, `tail` and "
    "`status --serve`: stopped by SIGTERM or SIGINT, cleanly)",
    EXIT_FAILURE: "failure; the message says what failed (`verify`: differences found; "
    "`backfill`: run incomplete; `dlq redrive`: undecodable records selected; `audit`: an "
    "undecodable record; `status`: something needs attention)",
    EXIT_CONFIG: "usage or configuration error: bad option, unknown or invalid key or "
    f"{ENV_PREFIX}… variable, missing config file",
    EXIT_UNAVAILABLE: "Kafka or `apply`'s target did not answer at start-up (creating topics, "
    "joining the group, opening the target): nothing is lost, run the command again (a "
    "supervisor's restart); the message names the broker or target",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C (`backfill` also by SIGTERM: run it again to resume)",
    EXIT_OUTPUT_CLOSED: "stdout closed early (`ddb-bridge tail --table T | head`: its reader "
    "went away while it was still writing), quietly",
}


def exit_codes_epilog() -> str:
    lines = ["exit codes:"]
    for code, meaning in EXIT_CODES.items():
        lines += textwrap.wrap(
            meaning,
            79,
            initial_indent=f"  {code:>3}  ",
            subsequent_indent=" " * 7,
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def from_setting(key: str) -> str:
    """`setting apply.batch_size = 500, env DDB_BRIDGE__APPLY__BATCH_SIZE` for a `[default: …]`."""
    section, name = key.split(".")
    model: Any = Settings.model_fields[section].annotation
    field = model.model_fields[name]  # KeyError: the help names a setting that does not exist
    default = field.get_default(call_default_factory=True)
    env = f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
    if default is None:
        return f"setting {key} (unset), env {env}"
    return f"setting {key} = {toml_value(default)}, env {env}"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; an option's own default appended once; option
    help wrapped at spaces only, so `ddb-bridge.apply.NAME` is never split at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        text = " ".join(text.split())
        return textwrap.wrap(text, width, break_on_hyphens=False) or [""]

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text is None or "[default" in text or action.required or not action.option_strings:
            return text
        if action.default in (None, argparse.SUPPRESS) or action.nargs == 0:
            return text  # no value, or a flag: absent means off
        return f"{text} [default: %(default)s]"


def add_exit_codes(parser: argparse.ArgumentParser) -> None:
    """The exit codes at the end of the help of `parser` and of every subcommand below it."""
    parser.epilog = "\n\n".join(p for p in (parser.epilog, exit_codes_epilog()) if p)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                add_exit_codes(sub)
