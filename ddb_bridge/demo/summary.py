"""What the demo measured, and the words it prints about it.

Every figure is labelled with where it comes from, so two numbers that differ say why: the
writer counts its requests, the stream counts changes that changed an item, Kafka holds the
stream's records plus one back-fill event per item the scan read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.verify.passes import VerifyReport

# Below this share of the asked-for rate the summary says the writer fell short, and why.
SHORT_OF_RATE = 0.9


@dataclass
class WriterCounts:
    puts: int = 0
    updates: int = 0
    deletes: int = 0
    # Deletes of a key the writer had deleted before: DynamoDB writes no stream record.
    absent_deletes: int = 0
    # Updates of a key with no item (they create it): moto writes two stream records for
    # each, where DynamoDB writes one.
    creating_updates: int = 0
    seconds: float = 0.0
    asked_per_s: float = 0.0

    @property
    def total(self) -> int:
        return self.puts + self.updates + self.deletes

    @property
    def expected_records(self) -> int:
        """The stream records moto writes for these changes."""
        return self.total - self.absent_deletes + self.creating_updates

    @property
    def per_s(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0


@dataclass
class DemoResult:
    items: int = 0
    writer: WriterCounts = field(default_factory=WriterCounts)
    events: int = 0  # every event the demo's reader found in the change topic
    backfill_events: int = 0  # of which the back-fill published (origin SCAN)
    stream_records: int = 0  # records in the DynamoDB stream once the writer stopped
    backfill_s: float = 0.0
    catch_up_s: float = 0.0
    apply_s: float = 0.0
    final_lag: int = -1
    verify: VerifyReport | None = None
    verify_s: float = 0.0
    total_s: float = 0.0  # from the start to the end of verify
    workdir: str = ""
    # (seconds since start, apply lag) as `ddb-bridge status --json` reported it during the run.
    status_lags: list[tuple[float, int]] = field(default_factory=list)
    status_command: str = ""
    dashboard_url: str = ""

    @property
    def ok(self) -> bool:
        return self.verify is not None and self.verify.ok and self.final_lag == 0

    @property
    def stream_events(self) -> int:
        return self.events - self.backfill_events


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def writer_line(w: WriterCounts) -> str:
    said = f"{w.total:,} changes in {w.seconds:.1f} s: {w.per_s:,.0f}/s"
    if w.asked_per_s and w.per_s < SHORT_OF_RATE * w.asked_per_s:
        return said + (
            f" (asked for {w.asked_per_s:,.0f}/s: one change at a time, each waiting for "
            "moto's answer)"
        )
    return said + f" (asked for {w.asked_per_s:,.0f}/s)"


def stream_line(result: DemoResult) -> str:
    w = result.writer
    if result.stream_records == w.expected_records:
        why = (
            f"{w.total:,} changes - {_n(w.absent_deletes, 'delete')} of an item already gone, "
            f"which write none, + {_n(w.creating_updates, 'update')} re-creating one, which "
            "moto records twice"
        )
    else:
        why = (
            f"the writer made {w.total:,} changes: {_n(w.absent_deletes, 'delete')} of an item "
            f"already gone, which write none, and {_n(w.creating_updates, 'update')} re-creating "
            "one, which moto records twice"
        )
    return f"{result.stream_records:,} ({why})"


def kafka_line(result: DemoResult) -> str:
    said = (
        f"{result.events:,} = {result.stream_events:,} from the stream + "
        f"{result.backfill_events:,} from the back-fill (one per item its scan read)"
    )
    extra = result.stream_events - result.stream_records
    if extra > 0:
        said += f"; {extra:,} stream records were published twice (at-least-once)"
    return said


def summary(result: DemoResult) -> str:
    w = result.writer
    lines = [
        "",
        "ddb-bridge demo summary",
        f"  items seeded          : {result.items:,} (before the stream was enabled: the "
        "back-fill carries them)",
        f"  writer                : {writer_line(w)}",
        f"                          = {w.updates:,} updates + {w.deletes:,} deletes + "
        f"{w.puts:,} inserts",
        f"  stream records        : {stream_line(result)}",
        f"  events in Kafka       : {kafka_line(result)}",
        f"  back-fill             : {result.backfill_s:.1f} s (parallel scan, while the "
        "writer ran)",
        f"  apply                 : had every event {result.apply_s:.1f} s after it started "
        "(it follows the writer)",
        f"  catch-up              : {result.catch_up_s:.1f} s from the writer's stop to "
        f"apply lag {result.final_lag}",
    ]
    if result.status_lags:
        lags = " -> ".join(f"{lag:,}" for _, lag in result.status_lags)
        lines.append(
            f"  `status` apply lag    : {lags} (events in Kafka not yet applied, as "
            "`ddb-bridge status` read it every 15 s)"
        )
    v = result.verify
    if v is not None:
        lines.append(
            f"  verified              : {v.source_items:,} items in DynamoDB against "
            f"{v.target_rows_checked:,} rows in SQLite, in {result.verify_s:.1f} s"
        )
        lines += [f"    {d.describe()}" for d in v.examples]
    lines.append(f"  total                 : {result.total_s:.1f} s, from the start to verified")
    if v is not None:
        lines.append(f"{v.differences} differences")
    return "\n".join(lines)


def keep_up_hints(result: DemoResult, commands: list[tuple[str, str]], pid: int) -> str:
    """What to try while `--keep-up` holds the stack up: (what it shows, command) pairs, and
    how to stop the demo (process `pid`)."""
    lines = [
        "",
        "The stack stays up (moto, Kafka, stream, apply, SQLite, dashboard; the writer has "
        "stopped) until Ctrl-C or SIGTERM. Try, from another terminal:",
        f"  live dashboard        : {result.dashboard_url}",
    ]
    lines += [f"  {what:<22}: {command}" for what, command in commands]
    lines.append(f"  {'stop':<22}: Ctrl-C, or kill -TERM {pid}")
    return "\n".join(lines)
