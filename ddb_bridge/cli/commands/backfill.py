"""`ddb-bridge backfill`: copy a table's existing items into its Kafka topic.

From a parallel Scan (`--from scan`) or a DynamoDB export (`--from export` with `--s3-uri`,
`--dir` or `--start-export`). Every item of one run carries the run's back-fill version, so
the back-fill can run while `ddb-bridge stream` captures the table, take days, be killed
and re-run (it resumes its run), and be shared by several workers (parts are claimed in the
lease table): `--processes` starts that many on this machine (default: one per CPU it may
use), which share the run's parts and the read budget. Before starting it checks that the stream
capture covers the run's version.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from bridge.kafka.reach import kafka_probe
from bridge.model.errors import ConfigError
from bridge.runtime import metrics_server
from bridge.runtime.settings import load_settings
from ddb_bridge.registry import source_class

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.common_options import add_metrics_port
    from ddb_bridge.cli.helptext import from_setting
    from ddb_bridge.cli.parsers import add_source_table, command

    p = command(
        sub,
        "backfill",
        "copy a table's existing items into Kafka (parallel scan or S3 export)",
        __doc__,
    )
    add_metrics_port(p, "backfill")
    add_source_table(p)
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        choices=["scan", "export"],
        help="read the table with a parallel Scan, or from a DynamoDB export (S3 or a copy)",
    )
    scan = p.add_argument_group("scan")
    scan.add_argument(
        "--segments",
        type=int,
        default=None,
        help=f"parallel scan segments of a new run [default: {from_setting('backfill.segments')}]",
    )
    scan.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads in each process [default: one per part of the run (scan segment or "
        "export file), at most 16, shared out among the processes; an export reads one "
        "file per process]",
    )
    scan.add_argument(
        "--page-size", type=int, default=0, help="items per Scan page (0: DynamoDB's 1 MB pages)"
    )
    scan.add_argument(
        "--max-items-per-second",
        type=float,
        default=None,
        help="read budget of this command (its processes share it), 0 = unlimited "
        f"[default: {from_setting('backfill.max_items_per_second')}]",
    )
    scan.add_argument(
        "--max-rcu-per-second",
        type=float,
        default=None,
        help="read-capacity budget of this command (its processes share it), 0 = unlimited "
        f"[default: {from_setting('backfill.max_rcu_per_second')}]",
    )
    scan.add_argument("--consistent-read", action="store_true", help="strongly consistent Scan")
    export = p.add_argument_group("export")
    where = export.add_mutually_exclusive_group()
    where.add_argument("--s3-uri", help="s3://bucket/prefix of an export (or of its manifest)")
    where.add_argument(
        "--dir",
        help="a local copy of an export: the folder of its manifests, or a folder holding "
        "one export below it, keys laid out as in the bucket (an incremental export's data "
        "files are in <prefix>/AWSDynamoDB/data/, beside its own folder)",
    )
    where.add_argument(
        "--start-export",
        action="store_true",
        help="request ExportTableToPointInTime (needs PITR), wait for it, then read it",
    )
    export.add_argument("--s3-bucket", help="with --start-export: destination bucket")
    export.add_argument("--s3-prefix", default=None, help="with --start-export: key prefix")
    export.add_argument(
        "--incremental-from",
        default=None,
        help="with --start-export: request an incremental export from this ISO time",
    )
    export.add_argument(
        "--incremental-to", default=None, help="with --incremental-from: end [default: now]"
    )
    export.add_argument(
        "--skip-bad-lines",
        action="store_true",
        help="send bad lines (not JSON, bad attribute values, bad or missing keys) to the "
        "DLQ topic (file, line, reason headers) instead of stopping; an incomplete export "
        "(manifest checksums or item counts disagree) still stops",
    )
    safety = p.add_argument_group("safety: the stream must cover the back-fill")
    safety.add_argument(
        "--no-stream",
        action="store_true",
        help="back-fill-only migration: no stream capture is required (writes during the "
        "back-fill are not migrated)",
    )
    safety.add_argument(
        "--force", action="store_true", help="run even if the stream-capture check fails"
    )
    runs = p.add_argument_group("runs and workers")
    runs.add_argument(
        "--processes",
        type=int,
        default=None,
        help="processes on this machine sharing the run's parts: this one and helpers it "
        "starts; useful with 2 or more parts (scan segments, export files); 1 = this process "
        f"alone [default: {from_setting('backfill.processes')}; 0 = one per CPU: the cgroup "
        "quota, else the cores]",
    )
    runs.add_argument("--run-id", default=None, help="join or resume this run")
    runs.add_argument(
        "--new-run",
        action="store_true",
        help="start a new run (new version) even if an unfinished one exists",
    )
    runs.add_argument(
        "--worker-id",
        default=None,
        help=f"lease owner name [default: {from_setting('stream.worker_id')}; "
        "else host-pid-random]",
    )
    p.add_argument(
        "--keep-expired",
        action="store_true",
        help="also publish items whose TTL has passed, instead of skipping and counting them "
        f"[default: {from_setting('backfill.skip_expired_ttl')}, which skips them]",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--export-poll-s",
        type=float,
        default=10.0,
        help="with --start-export: seconds between DescribeExport calls",
    )
    p.set_defaults(func=run)


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{option} {value!r}: not an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    # Imported when the command runs, like every connector: start-up stays free of boto3.
    from connectors.sources.backfill.processes import default_processes
    from connectors.sources.backfill.run_plan import BackfillRequest
    from connectors.sources.backfill.runner import run_backfill

    settings = load_settings(args.config)
    processes = args.processes if args.processes is not None else settings.backfill.processes
    if processes < 0:
        raise ConfigError(f"--processes {processes}: must be 1 or more (0: one per core)")
    out = Console(file=sys.stdout, highlight=False)
    err = Console(file=sys.stderr, highlight=False)
    request = BackfillRequest(
        table=args.table,
        segments=args.segments,
        threads=args.threads,
        page_size=args.page_size,
        max_items_per_second=args.max_items_per_second,
        max_rcu_per_second=args.max_rcu_per_second,
        consistent_read=args.consistent_read,
        s3_uri=args.s3_uri,
        dir=args.dir,
        start_export=args.start_export,
        s3_bucket=args.s3_bucket,
        s3_prefix=args.s3_prefix,
        incremental_from=_time(args.incremental_from, "--incremental-from"),
        incremental_to=_time(args.incremental_to, "--incremental-to"),
        skip_bad_lines=args.skip_bad_lines,
        no_stream=args.no_stream,
        force=args.force,
        run_id=args.run_id,
        new_run=args.new_run,
        worker_id=args.worker_id,
        keep_expired=args.keep_expired,
        export_poll_s=args.export_poll_s,
        processes=processes or default_processes(),
    )
    # SIGTERM stops like Ctrl-C: workers finish their page or file, save cursors, release
    # their claims, and the command exits 130.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Progress (items, parts done/total) on /metrics while the back-fill runs.
    server = metrics_server.serve(
        settings.metrics, "backfill", kafka_probe(settings.kafka), args.metrics_port
    )
    if server is not None:
        from connectors.dynamodb.reach import source_probe

        server.health.add_probe("source", source_probe(settings.aws, "dynamodb", args.table))
    try:
        outcome = run_backfill(
            settings,
            request,
            source_class(args.source)(),
            say=err.print,
            watch=lambda job, alive: _show_progress(job, alive, args, err),
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.close()
    if outcome.already_complete:
        out.print(
            f"back-fill run {outcome.run.run_id} of {args.table} is already complete "
            f"(--new-run publishes it again)"
        )
        return 0
    _summary(out, args.table, outcome)
    if outcome.interrupted:
        return 130
    return 0 if outcome.complete else 1


def _show_progress(job: Any, alive: Any, args: argparse.Namespace, err: Console) -> None:
    stats = job.stats
    from ddb_bridge.progress import progress as progress_bar

    progress = progress_bar(extra=["parts {task.fields[parts]}"], out=err, disable=args.no_progress)
    with progress:
        task = progress.add_task(args.table, total=stats.total_items, rate="0 items/s", parts="")
        last_n, last_t = 0, time.monotonic()
        while alive():
            time.sleep(0.25)
            now = time.monotonic()
            n = stats.seen
            rate = (n - last_n) / max(now - last_t, 1e-6)
            if now - last_t >= 1.0:
                last_n, last_t = n, now
            progress.update(
                task,
                completed=n,
                rate=f"{rate:,.0f} items/s",
                parts=f"{stats.parts_done}/{stats.parts_total}",
            )


def _phases(stats: Any) -> str:
    """`: 3.1 s start-up (plan, topics, helpers), 24.2 s reading`, when it read anything."""
    if stats.startup_s is None or stats.reading_s is None:
        return ""
    return f": {stats.startup_s:.1f} s start-up, {stats.reading_s:.1f} s reading"


def _summary(out: Console, table: str, outcome: Any) -> None:
    stats, run_info = outcome.stats, outcome.run
    elapsed = outcome.elapsed_s
    rate = stats.published / elapsed if elapsed > 0 else 0.0
    done = sum(1 for p in outcome.parts if p.done)
    out.print(
        f"back-fill {table} run {run_info.run_id} ({run_info.source}), "
        f"version {run_info.version}: {'complete' if outcome.complete else 'INCOMPLETE'}"
    )
    out.print(f"  items published          {stats.published:>14,}")
    out.print(f"  skipped, TTL expired     {stats.skipped_ttl:>14,}")
    out.print(f"  skipped, bad lines (DLQ) {stats.skipped_bad:>14,}")
    out.print(f"  bytes read               {stats.bytes_read:>14,}")
    if stats.bytes_uncompressed:
        out.print(f"  bytes uncompressed       {stats.bytes_uncompressed:>14,}")
    claimed = f"{stats.parts_claimed} claimed"
    if outcome.processes:
        claimed += f" by its {len(outcome.processes)} processes"
    out.print(
        f"  parts                    {done:>6} of {len(outcome.parts)} done "
        f"({stats.parts_skipped} finished before this process, {claimed})"
    )
    out.print(f"  elapsed                  {elapsed:>13.1f}s{_phases(stats)}")
    reading = stats.reading_s
    if reading:
        out.print(
            f"  rate                     {stats.seen / reading:>14,.0f} items/s while reading "
            f"(the progress bar's), {rate:,.0f} items/s over the whole run"
        )
    else:
        out.print(f"  rate                     {rate:>14,.0f} items/s over the whole run")
    for proc in outcome.processes:
        work = proc.work
        out.print(
            f"  process {proc.number} (pid {proc.pid:>7}) {work.get('published', 0):>10,} items, "
            f"{work.get('parts_done', 0)} parts finished: {proc.state}"
        )
