"""The options every command takes (`--config`, `--log-level`, `--log-format`), and the
daemons' `--metrics-port`."""

from __future__ import annotations

import argparse

from bridge.runtime.settings import CONFIG_ENV, DEFAULT_CONFIG


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
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text: one line per event with key=value context; json: one JSON object per "
        "line (for log shippers)",
    )


def add_metrics_port(parser: argparse.ArgumentParser, daemon: str) -> None:
    """A daemon's `--metrics-port` (its `/metrics` and `/healthz`)."""
    from bridge.runtime.metrics_server import PORT_OFFSETS

    offset = PORT_OFFSETS[daemon]
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve /metrics and /healthz on this port; 0 turns them off [default: setting "
        f"metrics.port{f' + {offset}' if offset else ''}, {9464 + offset} unless configured]",
    )
