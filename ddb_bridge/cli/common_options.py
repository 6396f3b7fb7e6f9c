"""The options every command takes (`--config`, `--log-level`)."""

from __future__ import annotations

import argparse

from bridge.settings import CONFIG_ENV, DEFAULT_CONFIG


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every command takes."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help=f"TOML config file [default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG} if present]",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log lines at this level and above (to stderr)",
    )
