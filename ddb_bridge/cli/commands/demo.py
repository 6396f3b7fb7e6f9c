"""`ddb-bridge demo`: the whole migration on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.parsers import command
    from ddb_bridge.demo.brokers import BROKER_MODES

    p = command(
        sub,
        "demo",
        "embedded end-to-end run: moto, Apache Kafka (or Tansu), SQLite; no Docker, no AWS",
        "The whole migration on this machine: a moto DynamoDB table seeded with "
        "--items items,\nits stream, `stream`, a scan back-fill while a writer keeps changing "
        "items, `apply`\ninto SQLite, then `verify`; ends in a summary and `0 differences` "
        "(exit 1 otherwise).",
        common=False,
    )
    p.add_argument("--items", type=int, default=10_000, help="items seeded before the migration")
    p.add_argument(
        "--write-rate",
        type=float,
        default=150.0,
        help="writer changes per second during the migration",
    )
    p.add_argument(
        "--min-write-seconds",
        type=float,
        default=10.0,
        help="the writer runs at least this long (and through the back-fill)",
    )
    p.add_argument("--partitions", type=int, default=4, help="Kafka partitions of the topic")
    p.add_argument("--timeout-s", type=float, default=600.0, help="give up after this long")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep config, logs and target.db here [default: a temp dir, removed]",
    )
    p.add_argument(
        "--broker",
        choices=BROKER_MODES,
        default="auto",
        help="auto: Apache Kafka when Java 17+ can run it (jars fetched with Maven once), "
        "else the pip-installed Tansu broker; kafka or tansu: only that one",
    )
    p.add_argument(
        "--keep-up",
        action="store_true",
        help="after the summary, keep the stack up (moto, broker, stream, apply, SQLite, "
        "dashboard; the writer stops) and print commands to try, until Ctrl-C or SIGTERM; "
        "a temp work directory is removed then",
    )
    p.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log lines at this level and above",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ddb_bridge.demo.orchestrator import DemoOptions, main_entry

    return main_entry(
        DemoOptions(
            items=args.items,
            write_rate=args.write_rate,
            min_write_s=args.min_write_seconds,
            partitions=args.partitions,
            timeout_s=args.timeout_s,
            workdir=args.workdir,
            broker=args.broker,
        ),
        keep_up=args.keep_up,
    )
