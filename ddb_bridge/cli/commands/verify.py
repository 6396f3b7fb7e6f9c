"""`ddb-bridge verify`: compare the source table with the target, item by item.

Exit code 0 only when nothing differs; 1 when something does (the report names the first
differences with their keys and attributes).
"""

from __future__ import annotations

import argparse

from bridge.runtime.settings import load_settings
from bridge.verify.passes import VerifyReport
from ddb_bridge.verification import verify_table


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.helptext import from_setting
    from ddb_bridge.cli.parsers import add_source_table, command

    p = command(
        sub,
        "verify",
        "compare source and target; exit 0 only when they agree",
        "Compare every item of a source table with the target (or a random "
        "share, --sample),\nre-reading the ones that differ once after --recheck-delay-s "
        "(a change still on its\nway is not a difference); exit 0 only when they agree.",
    )
    add_source_table(p)
    p.add_argument(
        "--target", default=None, help=f"target name [default: {from_setting('apply.target')}]"
    )
    p.add_argument(
        "--sample",
        type=float,
        default=1.0,
        metavar="RATE",
        help="check only this share of items (0 < RATE <= 1), chosen at random",
    )
    p.add_argument(
        "--segments",
        type=int,
        default=None,
        help=f"parallel scan segments [default: {from_setting('backfill.segments')}]",
    )
    p.add_argument("--show", type=int, default=10, help="how many differences to list")
    p.add_argument("--consistent-read", action="store_true", help="strongly consistent scan")
    p.add_argument(
        "--recheck-delay-s",
        type=float,
        default=1.0,
        help="pause before re-reading suspected differences (changes in flight)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bridge.model.errors import ConfigError

    if not 0 < args.sample <= 1:
        raise ConfigError(f"--sample must be in (0, 1], got {args.sample}")
    settings = load_settings(args.config)
    report = verify_table(
        settings,
        args.table,
        args.target,
        sample_rate=args.sample,
        segments=args.segments,
        show=args.show,
        consistent=args.consistent_read,
        recheck_delay_s=args.recheck_delay_s,
    )
    print_report(report)
    return 0 if report.ok else 1


def print_report(report: VerifyReport) -> None:
    lines = [
        f"verify {report.table} -> {report.target}"
        + (f" (sample {report.sample_rate:g})" if report.sample_rate < 1 else ""),
        f"  source items checked : {report.source_items}"
        + (f" ({report.expired_ttl} expired, awaiting TTL deletion)" if report.expired_ttl else ""),
        f"  target rows checked  : {report.target_rows_checked}",
        f"  missing in target    : {report.missing}",
        f"  only in target       : {report.extra}",
        f"  different            : {report.different}",
    ]
    for diff in report.examples:
        lines.append(f"    {diff.describe()}")
    lines.append(f"{report.differences} differences")
    print("\n".join(lines))
