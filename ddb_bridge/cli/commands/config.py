"""`ddb-bridge init` and `ddb-bridge config show`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bridge.model.errors import ConfigError
from bridge.runtime.config_template import render_template
from bridge.runtime.settings import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    ENV_PREFIX,
    config_path,
    load_settings,
    redacted,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.parsers import actions, command

    init = command(
        sub, "init", "write a bridge.toml listing every setting, its meaning and default"
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=run_init)

    config = command(sub, "config", "inspect the configuration", common=False)
    show = command(
        actions(config, "config_command"), "show", "print the effective config, secrets redacted"
    )
    show.add_argument("--format", choices=["json"], default="json", help="output format")
    show.set_defaults(func=run_show)


def run_init(args: argparse.Namespace) -> int:
    path = Path(args.config or "bridge.toml")
    if path.exists() and not args.force:
        raise ConfigError(f"{path} already exists (use --force to overwrite)")
    path.write_text(render_template(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    # On stderr, so that stdout stays the JSON alone (`config show | jq`).
    path = config_path(args.config)
    if path is None:
        print(
            f"ddb-bridge: no config file (no --config, ${CONFIG_ENV} unset, no "
            f"./{DEFAULT_CONFIG}): defaults and {ENV_PREFIX}* variables only",
            file=sys.stderr,
        )
    else:
        print(f"ddb-bridge: settings from {path.resolve()}", file=sys.stderr)
    print(json.dumps(redacted(settings), indent=2, sort_keys=True))
    return 0
