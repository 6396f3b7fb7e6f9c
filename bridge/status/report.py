"""What `ddb-bridge status` reports, and the cut-over verdict drawn from it.

Plain dataclasses, filled by the gatherers (`ddb_bridge.status.gather_status`: the lease
table through `connectors.sources.migration_state`, Kafka through `bridge.status.kafka`),
turned into JSON by `as_json` and into words by the CLI. They hold no clients, so a
dashboard can gather once and render as it likes.

The verdict for one table and one target (`verdict`) is READY only when every condition
holds; otherwise it lists each missing one in plain words:
- the back-fill's latest run is DONE, or, for a stream-only migration, capture began more
  than the items' lifetime ago (every item alive now was written, hence captured, since);
- the stream is captured, every shard is read to its end, no data-loss alarm;
- the target's apply group has no lag, and the table's DLQ is empty;
- the group skipped no events deleted before it read them (retention), or a back-fill ran
  to its end after the last such skip (`kafka.retention_ms` shorter than a stop of apply);
- the last full `verify` of this table and target found 0 differences and started after
  the back-fill finished.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bridge.kafka.skipped_offsets import SkippedRange


@dataclass(frozen=True)
class VerifyOutcome:
    """One `verify` run, as recorded in the lease table (`verify#<table>#<target>`)."""

    table: str
    target: str
    started_at_ms: int
    finished_at_ms: int
    source_items: int
    target_rows_checked: int
    missing: int
    extra: int
    different: int
    sample_rate: float

    @property
    def differences(self) -> int:
        return self.missing + self.extra + self.different


@dataclass(frozen=True)
class ShardStatus:
    shard_id: str
    owner: str | None
    checkpoint: str
    checkpoint_age_s: float | None  # None: never checkpointed by a version that records it
    finished: bool
    # Records of this shard past its checkpoint, as status read them (None: not read, e.g.
    # a finished or stopped shard), and how old the oldest of them is.
    unread: int | None
    ms_behind: int | None
    data_loss: str | None = None
    error: str | None = None  # why the shard could not be read past its checkpoint


@dataclass(frozen=True)
class StreamStatus:
    stream_arn: str | None  # None: the table has no stream
    captured_since_ms: int | None  # None: `ddb-bridge stream` never started on it
    data_loss: list[dict[str, Any]] = field(default_factory=list)
    shards: list[ShardStatus] = field(default_factory=list)
    unleased_shards: list[str] = field(default_factory=list)  # no lease yet: not discovered


@dataclass(frozen=True)
class BackfillRun:
    run_id: str
    kind: str
    state: str
    parts: int
    parts_done: int
    items: int
    total_items: int | None
    created_at_ms: int | None
    finished_at_ms: int | None

    @property
    def done(self) -> bool:
        return self.state == "DONE"


@dataclass(frozen=True)
class PartitionStatus:
    partition: int
    committed: int | None
    end: int
    lag: int


@dataclass(frozen=True)
class GroupStatus:
    """One apply consumer group on one table's change topic."""

    group: str
    topic: str
    partitions: list[PartitionStatus]
    lag: int | None  # None: the topic does not exist yet
    consumed_per_s: float | None = None  # from two samples; None: not sampled
    eta_s: float | None = None  # None: no lag, not sampled, or not catching up
    note: str | None = None
    # Ranges deleted before the group read them (bridge/kafka/skipped_offsets.py).
    skipped: list[SkippedRange] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    ready: bool
    missing: list[str]


@dataclass(frozen=True)
class TargetStatus:
    target: str
    group: str
    topic: str
    partitions: list[PartitionStatus]
    lag: int | None
    consumed_per_s: float | None
    eta_s: float | None
    verify: VerifyOutcome | None
    verdict: Verdict
    skipped: list[SkippedRange] = field(default_factory=list)


@dataclass(frozen=True)
class DurabilityStatus:
    """The change topic's replication as the cluster reports it (bridge/kafka/durability.py)."""

    brokers: int
    replication_factor: int
    min_insync_replicas: int
    durable: bool
    development: bool  # one broker: not durable, and not expected to be
    advice: list[str]


@dataclass(frozen=True)
class TableStatus:
    table: str
    stream_only: bool
    item_lifetime_s: int | None
    stream: StreamStatus
    backfill_runs: list[BackfillRun]
    dlq_topic: str
    dlq_depth: int
    targets: list[TargetStatus]
    durability: DurabilityStatus | None = None  # None: the topic does not exist yet

    @property
    def backfill_done(self) -> bool:
        return bool(self.backfill_runs) and self.backfill_runs[-1].done


@dataclass(frozen=True)
class StatusReport:
    generated_at_ms: int
    tables: list[TableStatus]
    attention: list[str]  # why the exit code is 1; empty when healthy

    @property
    def healthy(self) -> bool:
        return not self.attention


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def stream_problems(stream: StreamStatus) -> list[str]:
    if stream.stream_arn is None:
        return []  # no stream: a back-fill-only migration of a table that no longer changes
    if stream.captured_since_ms is None:
        return ["the stream is not captured (no capture record: start `ddb-bridge stream`)"]
    out = [f"data-loss alarm on {a['shard_id']}: {a['message']}" for a in stream.data_loss]
    out += [
        f"data-loss alarm on {s.shard_id}: {s.data_loss}"
        for s in stream.shards
        if s.data_loss is not None
    ]
    behind = [s for s in stream.shards if s.unread]
    if behind:
        worst = max(s.ms_behind or 0 for s in behind)
        out.append(
            f"stream producer behind on {_plural(len(behind), 'shard')} (oldest unread "
            f"change {worst} ms old)"
        )
    unreadable = [f"{s.shard_id}: {s.error}" for s in stream.shards if s.error is not None]
    if unreadable:
        out.append("stream position unknown on " + "; ".join(unreadable))
    if stream.unleased_shards:
        out.append(
            "shards not yet leased by the stream producer: " + ", ".join(stream.unleased_shards)
        )
    return out


def backfill_problems(table: TableStatus, now_ms: int) -> list[str]:
    if table.stream_only:
        started = table.stream.captured_since_ms
        lifetime = table.item_lifetime_s or 0
        if started is None:
            return []  # stream_problems already says capture never began
        if now_ms - started < lifetime * 1000:
            return [
                f"capture began {(now_ms - started) / 1000:.0f} s ago, less than the item "
                f"lifetime {lifetime} s (stream-only: items written before capture may "
                "still be alive)"
            ]
        return []
    if not table.backfill_runs:
        return ["no back-fill has run (`ddb-bridge backfill`, or declare stream_only)"]
    last = table.backfill_runs[-1]
    if not last.done:
        return [
            f"back-fill run {last.run_id} is not finished ({last.parts_done}/{last.parts} "
            f"parts, {last.items} items)"
        ]
    return []


def verify_problems(table: TableStatus, target: str, verify: VerifyOutcome | None) -> list[str]:
    if verify is None:
        return [f"verify has not run for {target}"]
    out = []
    if verify.sample_rate < 1:
        out.append(
            f"the last verify of {target} checked a sample ({verify.sample_rate:g}), not every item"
        )
    if verify.differences:
        out.append(f"the last verify of {target} found {_plural(verify.differences, 'difference')}")
    if not table.stream_only and table.backfill_runs:
        finished = table.backfill_runs[-1].finished_at_ms
        if finished is not None and verify.started_at_ms < finished:
            out.append(f"the last verify of {target} ran before the back-fill finished")
    return out


def unrepaired_skips(table: TableStatus, skipped: list[SkippedRange]) -> list[SkippedRange]:
    """The skipped ranges no finished back-fill has repaired: one found by `status` alone
    (apply has not run since), or found after the last finished back-fill began."""
    runs = [r for r in table.backfill_runs if r.done and r.created_at_ms is not None]
    repaired_since = max((r.created_at_ms or 0 for r in runs), default=None)
    return [
        s
        for s in skipped
        if s.detected_at_ms is None or repaired_since is None or repaired_since <= s.detected_at_ms
    ]


def skip_problem(table: TableStatus, target: str, group: str, skipped: list[SkippedRange]) -> str:
    ranges = unrepaired_skips(table, skipped)
    events = sum(s.events for s in ranges)
    where = "; ".join(s.words() for s in ranges)
    return (
        f"apply group {group} skipped up to {_plural(events, 'event')} of {table.table} deleted "
        f"from the change topic before it read them ({where}): back-fill {target} again"
    )


def verdict(
    table: TableStatus, group: GroupStatus, verify: VerifyOutcome | None, target: str, now_ms: int
) -> Verdict:
    missing = backfill_problems(table, now_ms) + stream_problems(table.stream)
    if unrepaired_skips(table, group.skipped):
        missing.append(skip_problem(table, target, group.group, group.skipped))
    if group.lag is None:
        missing.append(f"topic {group.topic} does not exist yet (nothing published)")
    elif group.lag:
        missing.append(f"apply group {group.group} is {_plural(group.lag, 'event')} behind")
    if table.dlq_depth:
        missing.append(f"{_plural(table.dlq_depth, 'dead letter')} in {table.dlq_topic}")
    missing += verify_problems(table, target, verify)
    return Verdict(ready=not missing, missing=missing)


def attention(tables: list[TableStatus], max_lag: int | None) -> list[str]:
    """What needs an operator now (exit 1): alarms, dead letters, lag above `max_lag`."""
    out = []
    for t in tables:
        alarms = len(t.stream.data_loss) + sum(1 for s in t.stream.shards if s.data_loss)
        if alarms:
            out.append(f"{t.table}: {_plural(alarms, 'data-loss alarm')} (run a new back-fill)")
        if t.dlq_depth:
            out.append(f"{t.table}: {_plural(t.dlq_depth, 'dead letter')} in {t.dlq_topic}")
        d = t.durability
        if d is not None and not d.durable and not d.development:
            out.append(
                f"{t.table}: the change topic is not durable against the loss of one broker "
                f"(replication factor {d.replication_factor}, min.insync.replicas "
                f"{d.min_insync_replicas}, {d.brokers} brokers): " + "; ".join(d.advice)
            )
        for target in t.targets:
            if unrepaired_skips(t, target.skipped):
                out.append(
                    f"{t.table}: {skip_problem(t, target.target, target.group, target.skipped)}"
                )
            if max_lag is not None and target.lag is not None and target.lag > max_lag:
                out.append(
                    f"{t.table}: apply group {target.group} is "
                    f"{_plural(target.lag, 'event')} behind (--max-lag {max_lag})"
                )
    return out


def as_json(report: StatusReport) -> dict[str, Any]:
    """The report as JSON-able data (the shape `status --json` prints)."""
    tables = []
    for t in report.tables:
        targets = []
        for target in t.targets:
            data = dataclasses.asdict(target)
            if target.verify is not None:
                data["verify"]["differences"] = target.verify.differences
            targets.append(data)
        tables.append(
            {
                "table": t.table,
                "stream_only": t.stream_only,
                "item_lifetime_s": t.item_lifetime_s,
                "stream": dataclasses.asdict(t.stream),
                "backfill": {
                    "done": t.backfill_done,
                    "runs": [dataclasses.asdict(r) for r in t.backfill_runs],
                },
                "dlq": {"topic": t.dlq_topic, "depth": t.dlq_depth},
                "kafka_durability": (
                    None if t.durability is None else dataclasses.asdict(t.durability)
                ),
                "targets": targets,
            }
        )
    return {
        "generated_at_ms": report.generated_at_ms,
        "healthy": report.healthy,
        "attention": report.attention,
        "tables": tables,
    }
