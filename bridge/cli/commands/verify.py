"""`ddb-bridge verify`: compare the source table with the target, item by item.

Exit code 0 only when nothing differs; 1 when something does (the report names the first
differences with their keys and attributes).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bridge.settings import Settings, load_settings
from bridge.verify import Verifier, VerifyReport


def register(sub: argparse._SubParsersAction) -> None:
    from bridge.cli.main import HelpFormatter, add_common

    p = sub.add_parser(
        "verify",
        help="compare source and target; exit 0 only when they agree",
        formatter_class=HelpFormatter,
    )
    add_common(p)
    p.add_argument("--table", required=True, help="source DynamoDB table")
    p.add_argument("--target", default=None, help="target name [default: [apply].target]")
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
        help="parallel scan segments [default: [backfill].segments]",
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
    from bridge.errors import ConfigError

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


def verify_table(
    settings: Settings,
    table: str,
    target_name: str | None = None,
    *,
    sample_rate: float = 1.0,
    segments: int | None = None,
    show: int = 10,
    consistent: bool = False,
    recheck_delay_s: float = 1.0,
) -> VerifyReport:
    # The CLI is the composition root: connectors are imported here, lazily, never by the core.
    from bridge.cli.progress import progress
    from bridge.registry import sink_class
    from connectors import aws
    from connectors.sources.dynamodb_reader import batch_get, scan_pages

    target_name = target_name or settings.apply.target
    target = settings.target(target_name)
    ddb = aws.client("dynamodb", settings.aws)
    spec = aws.table_spec(ddb, settings, table)
    sink: Any = sink_class(target.type)(target)
    sink.open([spec], create_schema=False)
    try:
        total = aws.describe_table(ddb, table).get("ItemCount") or None
        with progress() as bar:
            task = bar.add_task(f"verify {table}", total=total, rate="")
            started = time.monotonic()

            def advance(n: int) -> None:
                done = bar.tasks[0].completed + n
                rate = done / max(time.monotonic() - started, 1e-6)
                bar.update(task, advance=n, rate=f"{rate:,.0f} items/s")

            verifier = Verifier(
                spec,
                sink,
                lambda keys: batch_get(ddb, table, spec.key_names, keys),
                target_name=f"{target.type}:{target_name}",
                sample_rate=sample_rate,
                recheck_delay_s=recheck_delay_s,
                max_examples=show,
                on_progress=advance,
            )
            verifier.forward(
                scan_pages(
                    lambda: aws.client("dynamodb", settings.aws),
                    table,
                    segments or settings.backfill.segments,
                    consistent=consistent,
                    sample_rate=sample_rate,
                )
            )
            verifier.reverse()
        return verifier.finish()
    finally:
        sink.close()


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
