"""`ddb-bridge status`: where each table's migration stands, and whether it can cut over.

Exit 0 when nothing needs attention (the verdict may still be NOT READY: a back-fill in
progress is healthy), 1 when something does: a data-loss alarm, dead letters, apply lag
above `--max-lag`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from rich.console import Console
from rich.table import Table

from bridge.kafka.reach import ensure_reachable
from bridge.runtime.settings import Settings, load_settings
from bridge.status.report import StatusReport, TableStatus, as_json

DESCRIPTION = """\
Per table: the stream producer's shard leases (owner, checkpoint and its age, unread
changes past the checkpoint and the age of the oldest, data-loss alarms), back-fill runs
(parts done/total, items), each target's apply group lag per partition and in total (the
broker's high watermarks minus the group's committed offsets), the DLQ depth, the estimated
time to catch up (with --sample-s), the last `verify`, and a cut-over verdict per target.

READY needs all of: the back-fill's latest run finished (stream-only migrations: capture
began more than tables.item_lifetime_s ago), every stream shard read to its end with no
data-loss alarm, apply lag 0, an empty DLQ, and a full verify with 0 differences that
started after the back-fill finished. NOT READY lists what is missing.

Exit 1 ("needs attention") for a data-loss alarm, a non-empty DLQ, or apply lag above
--max-lag (unset by default: lag alone is expected while a back-fill is applied).

With --serve PORT: a live dashboard instead of one report. A background thread gathers the
status every --interval-s and keeps the apply lag history (the last 720 samples); the page
at http://HOST:PORT/ polls /api/status (the latest report as --json prints it, and the lag
history). Runs until Ctrl-C or SIGTERM, then exits 0."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.parsers import command

    p = command(
        sub,
        "status",
        "lag, back-fill progress, DLQ, last verify and a cut-over verdict per table",
        DESCRIPTION,
    )
    p.add_argument(
        "--table",
        action="append",
        default=None,
        help="report this table (repeatable) [default: every [[tables]] entry]",
    )
    p.add_argument(
        "--target",
        action="append",
        default=None,
        help="report this target (repeatable) [default: every [targets.<name>] section]",
    )
    p.add_argument(
        "--stream-only",
        action="store_true",
        help="judge every table as a stream-only migration (as tables.stream_only does)",
    )
    p.add_argument(
        "--max-lag",
        type=int,
        default=None,
        metavar="EVENTS",
        help="exit 1 when an apply group's total lag exceeds this [default: unset, lag "
        "alone never needs attention]",
    )
    p.add_argument(
        "--sample-s",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="when some group lags, read the groups again after this long to estimate "
        "consumption rate and time to catch up (0: do not)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--wide",
        action="store_true",
        help="one line per shard and partition, however narrow the terminal [default: long "
        "values wrap to the terminal's width, 80 columns when piped]",
    )
    p.add_argument(
        "--serve",
        type=int,
        default=None,
        metavar="PORT",
        help="serve a live dashboard on this port (0: any free port, printed) instead of "
        "printing one report",
    )
    p.add_argument("--host", default="127.0.0.1", help="address the dashboard listens on")
    p.add_argument(
        "--interval-s",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="with --serve: how often the status is gathered (one chart sample each)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bridge.model.errors import ConfigError
    from ddb_bridge.status import gather_status

    if args.max_lag is not None and args.max_lag < 0:
        raise ConfigError(f"--max-lag must be >= 0, got {args.max_lag}")
    if args.sample_s < 0:
        raise ConfigError(f"--sample-s must be >= 0, got {args.sample_s}")
    if args.serve is not None and args.json:
        raise ConfigError(
            "--json and --serve do not go together: the dashboard serves JSON at /api/status"
        )
    if args.serve is not None and not 0 <= args.serve <= 65535:
        raise ConfigError(f"--serve must be a port 0..65535, got {args.serve}")
    if args.interval_s <= 0:
        raise ConfigError(f"--interval-s must be > 0, got {args.interval_s}")
    settings = load_settings(args.config)
    if args.serve is not None:
        return serve(args, settings)  # keeps serving, and shows, through an outage
    ensure_reachable(settings.kafka)
    report = gather_status(
        settings,
        args.table or (),
        args.target or (),
        stream_only=args.stream_only,
        sample_s=args.sample_s,
        max_lag=args.max_lag,
    )
    if args.json:
        print(json.dumps(as_json(report), indent=2, sort_keys=True))
    else:
        print_report(report, wide=args.wide)
    return 0 if report.healthy else 1


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the dashboard until SIGINT/SIGTERM; exit 0 (stopping it is the normal end)."""
    import signal
    import threading

    from bridge.model.errors import ConfigError
    from ddb_bridge.dashboard.server import Sampler, make_server
    from ddb_bridge.status import gather_status

    sampler = Sampler(
        lambda: gather_status(
            settings,
            args.table or (),
            args.target or (),
            stream_only=args.stream_only,
            sample_s=args.sample_s,
            max_lag=args.max_lag,
        ),
        args.interval_s,
    )
    # The first gather in the foreground, so a wrong table or target is a config error
    # (exit 2) at start, not a message on a page nobody opened yet. A broker or AWS error is
    # not: the page shows it and the next sample retries, as it would an hour later.
    sampler.sample_once(raising=(ConfigError,))
    try:
        server = make_server(args.host, args.serve, sampler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.serve}: {exc}") from exc
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    sampler.start()
    thread = threading.Thread(target=server.serve_forever, name="dashboard-http", daemon=True)
    thread.start()
    port = server.server_address[1]
    print(f"dashboard: http://{args.host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        sampled = sampler.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not sampled:
        # The sampler is still inside a librdkafka or botocore call. Ending the interpreter
        # around a thread in a C client can hang in finalization (seen once: a dashboard alive
        # 30 s after SIGTERM); the dashboard holds nothing to save, so leave at once.
        print(
            "dashboard: stopped; a status sample still waiting on Kafka or AWS was abandoned",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        os._exit(0)
    return 0


def _ago(ms: int | None, now_ms: int) -> str:
    return "-" if ms is None else _duration((now_ms - ms) / 1000) + " ago"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# Wide enough for any row: `--wide` prints each table at its natural width, however narrow
# the terminal (a pager or a file takes the long lines).
WIDE = 1_000


def print_report(report: StatusReport, console: Console | None = None, wide: bool = False) -> None:
    console = console or Console(highlight=False, soft_wrap=True)
    for table in report.tables:
        _print_table(console, table, report.generated_at_ms, wide)
    if report.attention:
        console.print("[bold red]needs attention:[/]")
        for line in report.attention:
            console.print(f"  - {line}")
    else:
        console.print("nothing needs attention")


def _grid(*headers: str) -> Table:
    """A table whose long values (shard ids, owners, checkpoints) wrap onto more lines
    rather than being cut to `shardId-000…`: an operator copies them into other commands."""
    grid = Table()
    for header in headers:
        grid.add_column(header, overflow="fold")
    return grid


def _print_grid(console: Console, grid: Table, wide: bool) -> None:
    if wide:
        # Console.print caps `width` at the console's own: a console as wide as the row.
        Console(file=console.file, width=WIDE, highlight=False).print(grid)
    else:
        console.print(grid)


def _print_table(console: Console, t: TableStatus, now_ms: int, wide: bool = False) -> None:
    console.rule(f"[bold]{t.table}")
    s = t.stream
    if s.stream_arn is None:
        console.print("stream: the table has no stream")
    elif s.captured_since_ms is None:
        console.print("stream: not captured (no capture record)")
    else:
        console.print(f"stream: captured since {_ago(s.captured_since_ms, now_ms)}")
        shards = _grid("shard", "owner", "checkpoint", "checkpoint age", "unread", "ms behind")
        for sh in s.shards:
            shards.add_row(
                sh.shard_id,
                sh.owner or "-",
                sh.checkpoint,
                _duration(sh.checkpoint_age_s),
                "-" if sh.unread is None else str(sh.unread),
                sh.data_loss or sh.error or ("-" if sh.ms_behind is None else str(sh.ms_behind)),
            )
        _print_grid(console, shards, wide)
        for alarm in s.data_loss:
            console.print(f"[red]data-loss alarm[/] {alarm['shard_id']}: {alarm['message']}")
        if s.unleased_shards:
            console.print("shards without a lease: " + ", ".join(s.unleased_shards))
    if t.stream_only:
        console.print(f"back-fill: none (stream-only, item lifetime {t.item_lifetime_s} s)")
    elif not t.backfill_runs:
        console.print("back-fill: none yet")
    for run in t.backfill_runs:
        total = f" of ~{run.total_items}" if run.total_items is not None else ""
        console.print(
            f"back-fill {run.run_id} ({run.kind}): {run.state}, {run.parts_done}/{run.parts} "
            f"parts, {run.items} items{total}"
        )
    console.print(f"DLQ {t.dlq_topic}: {t.dlq_depth}")
    d = t.durability
    if d is not None:
        figures = (
            f"replication factor {d.replication_factor}, min.insync.replicas "
            f"{d.min_insync_replicas}, {d.brokers} broker(s)"
        )
        if d.development:
            console.print(f"Kafka: {figures} (single broker: development only)")
        elif d.durable:
            console.print(f"Kafka: {figures}: survives the loss of one broker")
        else:
            console.print(f"[red]Kafka: {figures}: NOT durable against one broker's loss[/]")
            for step in d.advice:
                console.print(f"  fix: {step}")
    for target in t.targets:
        lag = "-" if target.lag is None else str(target.lag)
        rate = "" if target.consumed_per_s is None else f", {target.consumed_per_s:,.0f} events/s"
        if target.lag in (0, None) or target.consumed_per_s is None:
            eta = ""  # caught up, or not sampled (--sample-s 0)
        elif target.eta_s is None:
            eta = ", lag not falling: no catch-up estimate"
        else:
            eta = f", catch-up in ~{_duration(target.eta_s)}"
        console.print(f"target {target.target}: group {target.group}, lag {lag}{rate}{eta}")
        if target.partitions:
            parts = _grid("partition", "committed", "end", "lag")
            for p in target.partitions:
                committed = "-" if p.committed is None else str(p.committed)
                parts.add_row(str(p.partition), committed, str(p.end), str(p.lag))
            _print_grid(console, parts, wide)
        v = target.verify
        if v is None:
            console.print("  last verify: never")
        else:
            console.print(
                f"  last verify: {_ago(v.finished_at_ms, now_ms)}, {v.differences} differences, "
                f"{v.source_items} items checked"
                + (f" (sample {v.sample_rate:g})" if v.sample_rate < 1 else "")
            )
        if target.verdict.ready:
            console.print(f"  [bold green]READY[/] to cut over {t.table} -> {target.target}")
        else:
            console.print(f"  [bold yellow]NOT READY[/] to cut over {t.table} -> {target.target}:")
            for missing in target.verdict.missing:
                console.print(f"    - {missing}")
