"""Moving a consumer group's committed offsets: the Kafka side of `ddb-bridge replay`.

A replay re-reads change events a group already processed (or skips ones it has not). It is
safe for apply because every write is last-write-wins by version: an event applied twice
leaves the row as it was, so a replay only ever repairs rows that differ from the log.

Steps: `plan_replay` reads, per partition, the group's committed offset and the watermarks,
resolves the wanted offset (earliest, latest, a time, an offset, a shift) and clamps it to
[low watermark, high watermark]; it changes nothing. `execute` moves the offsets through the
admin API (AlterConsumerGroupOffsets). Kafka lets only an empty group's offsets be altered,
and a live worker would commit over them anyway, so both refuse while the group has members
(`GroupActiveError` names them).

Times are record timestamps, which the publisher sets to each event's DynamoDB change time
(`ChangeEvent.change_time_ms`); `--to-datetime T` starts each partition at its first record
whose change time is at or after T (Kafka's ListOffsets by timestamp).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from bridge.kafka import reads as kafka_reads
from bridge.kafka.publisher import admin_config
from bridge.model.errors import ConfigError, PermanentError, TransientError
from bridge.model.versioning import to_micros
from bridge.runtime.settings import KafkaSettings


class Mode(StrEnum):
    EARLIEST = "earliest"
    LATEST = "latest"
    DATETIME = "datetime"
    OFFSET = "offset"
    SHIFT = "shift"


@dataclass(frozen=True)
class ReplayTo:
    """Where to move the group: one mode and its argument."""

    mode: Mode
    time_ms: int | None = None  # DATETIME
    offsets: Mapping[int, int] = field(default_factory=dict)  # OFFSET: partition -> offset
    shift: int = 0  # SHIFT: added to the current offset (negative: back)

    def describe(self) -> str:
        if self.mode is Mode.DATETIME and self.time_ms is not None:
            when = datetime.fromtimestamp(self.time_ms / 1000, UTC).isoformat(
                timespec="milliseconds"
            )
            return f"to the first change at or after {when}"
        if self.mode is Mode.OFFSET:
            return "to offsets " + ",".join(f"{p}:{o}" for p, o in sorted(self.offsets.items()))
        if self.mode is Mode.SHIFT:
            return f"by {self.shift:+d}"
        return f"to {self.mode.value}"


class GroupActiveError(PermanentError):
    """The group has members: its offsets cannot (and must not) be moved under them."""


@dataclass(frozen=True)
class Member:
    member_id: str
    client_id: str
    host: str

    def describe(self) -> str:
        return f"member {self.member_id} (client {self.client_id}, host {self.host})"


@dataclass(frozen=True)
class Move:
    """One partition: where the group is, where it will be."""

    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    low: int
    high: int
    wanted: int  # before clamping to [low, high]
    new: int

    @property
    def current(self) -> int:
        """Where the group resumes today: its committed offset, or the log start offset when
        it has none or retention deleted it (apply consumes from the earliest record)."""
        if self.committed is None:
            return self.low
        return max(self.committed, self.low)

    @property
    def reprocessed(self) -> int:
        """Events already processed that the group will process again."""
        return max(0, self.current - self.new)

    @property
    def skipped(self) -> int:
        """Events not yet processed that the group will never process."""
        return max(0, self.new - self.current)

    @property
    def clamp_note(self) -> str | None:
        if self.wanted < self.low:
            return f"{self.wanted} is before the low watermark: clamped to {self.low}"
        if self.wanted > self.high:
            return f"{self.wanted} is past the high watermark: clamped to {self.high}"
        return None


@dataclass(frozen=True)
class ReplayPlan:
    group: str
    to: ReplayTo
    moves: list[Move]
    members: list[Member]
    warnings: list[str] = field(default_factory=list)

    @property
    def reprocessed(self) -> int:
        return sum(m.reprocessed for m in self.moves)

    @property
    def skipped(self) -> int:
        return sum(m.skipped for m in self.moves)

    def refusal(self) -> str:
        listed = "; ".join(m.describe() for m in self.members)
        return (
            f"consumer group {self.group} has {len(self.members)} active member(s): {listed}. "
            "Kafka moves only an idle group's offsets (and a running worker would commit over "
            "them): stop those consumers (SIGTERM the apply workers), then run replay again. "
            "No offset was changed"
        )


def parse_datetime(text: str) -> int:
    """An ISO 8601 time as ms since the epoch; a time without an offset is UTC
    (`to_micros` reads it so)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"--to-datetime {text!r} is not an ISO 8601 time (like 2026-01-31T12:00:00Z)"
        ) from exc
    # Record timestamps are whole ms: round a finer time up, so "at or after" still holds.
    return -(-to_micros(moment) // 1000)


def parse_offsets(text: str) -> dict[int, int]:
    """`PARTITION:OFFSET[,PARTITION:OFFSET...]` -> {partition: offset}."""
    out: dict[int, int] = {}
    for part in text.split(","):
        partition, sep, offset = part.strip().partition(":")
        try:
            if not sep:
                raise ValueError(part)
            p, o = int(partition), int(offset)
        except ValueError as exc:
            raise ConfigError(
                f"--to-offset {part.strip()!r}: expected PARTITION:OFFSET, like 0:1200,3:0"
            ) from exc
        if p < 0 or o < 0:
            raise ConfigError(f"--to-offset {part.strip()!r}: partition and offset must be >= 0")
        if p in out:
            raise ConfigError(f"--to-offset names partition {p} twice")
        out[p] = o
    return out


def parse_partitions(text: str) -> set[int]:
    try:
        wanted = {int(p) for p in text.split(",") if p.strip()}
    except ValueError as exc:
        raise ConfigError(f"--partitions {text!r}: expected numbers, like 0,2,5") from exc
    if not wanted or min(wanted) < 0:
        raise ConfigError(f"--partitions {text!r}: expected partition numbers >= 0")
    return wanted


def _admin(kafka: KafkaSettings) -> AdminClient:
    return AdminClient(admin_config(kafka))


def active_members(kafka: KafkaSettings, group: str, timeout_s: float = 10.0) -> list[Member]:
    admin = _admin(kafka)
    try:
        future = admin.describe_consumer_groups([group], request_timeout=timeout_s)[group]
        description = future.result(timeout=timeout_s)
    except KafkaException as exc:
        raise TransientError(f"describing consumer group {group}: {exc}") from exc
    return [
        Member(member_id=m.member_id, client_id=m.client_id, host=m.host)
        for m in description.members
    ]


def _partitions_of(reader: Consumer, topic: str, timeout_s: float) -> list[int]:
    found = kafka_reads.partitions_of(reader, topic, timeout_s)
    if not found:
        raise PermanentError(f"topic {topic} cannot be read: it does not exist")
    return found


def plan_replay(
    kafka: KafkaSettings,
    group: str,
    topics: Sequence[str],
    to: ReplayTo,
    partitions: set[int] | None = None,
    timeout_s: float = 10.0,
) -> ReplayPlan:
    """Where `group` is and where `to` would put it, on each partition of `topics` (all of
    them, or those in `partitions`; for Mode.OFFSET, those it names). Changes nothing."""
    if to.mode is Mode.OFFSET and partitions is not None and not set(to.offsets) <= partitions:
        outside = sorted(set(to.offsets) - partitions)
        raise ConfigError(f"--to-offset names partitions {outside} that --partitions leaves out")
    with kafka_reads.reader(kafka, "replay") as reader:
        tps: list[TopicPartition] = []
        for topic in topics:
            available = _partitions_of(reader, topic, timeout_s)
            chosen = set(available)
            if to.mode is Mode.OFFSET:
                chosen = set(to.offsets)
            elif partitions is not None:
                chosen = partitions
            missing = sorted(chosen - set(available))
            if missing:
                raise ConfigError(
                    f"topic {topic} has partitions {available[0]}..{available[-1]}, "
                    f"not {','.join(map(str, missing))}"
                )
            tps.extend(TopicPartition(topic, p) for p in sorted(chosen))
        slots = [(tp.topic, tp.partition) for tp in tps]
        with kafka_reads.OffsetFetcher(kafka) as offsets:
            committed = offsets.committed(group, slots, timeout_s)
        marks = {slot: kafka_reads.watermarks(reader, *slot, timeout_s) for slot in slots}
        by_time: dict[tuple[str, int], int] = {}
        if to.mode is Mode.DATETIME and to.time_ms is not None:
            # None: no record at or after that time; the group then starts at the end.
            found = kafka_reads.offsets_for_time(reader, slots, to.time_ms, timeout_s)
            by_time = {
                slot: marks[slot][1] if offset is None else offset for slot, offset in found.items()
            }

    moves = []
    for tp in tps:
        slot = (tp.topic, tp.partition)
        low, high = marks[slot]
        done = committed.get(slot)
        current = low if done is None else max(done, low)
        wanted = {
            Mode.EARLIEST: low,
            Mode.LATEST: high,
            Mode.OFFSET: to.offsets.get(tp.partition, current),
            Mode.SHIFT: current + to.shift,
            Mode.DATETIME: by_time.get(slot, high),
        }[to.mode]
        moves.append(
            Move(
                topic=tp.topic,
                partition=tp.partition,
                committed=done,
                low=low,
                high=high,
                wanted=wanted,
                new=min(max(wanted, low), high),
            )
        )
    warnings = _append_time_topics(kafka, topics, timeout_s) if to.mode is Mode.DATETIME else []
    return ReplayPlan(
        group=group, to=to, moves=moves, members=active_members(kafka, group), warnings=warnings
    )


def _append_time_topics(kafka: KafkaSettings, topics: Sequence[str], timeout_s: float) -> list[str]:
    """Warnings for topics whose records carry Kafka's receive time, not the change time.

    The bridge creates its topics with CreateTime; a topic made by hand, or altered, with
    LogAppendTime has the broker's clock in every record, so a time means "received by
    Kafka at", which can be much later than the change (a back-fill, a lagging stream).
    """
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    out = []
    admin = _admin(kafka)  # held while the futures run: a collected client cancels them
    try:
        described = admin.describe_configs(resources, request_timeout=timeout_s)
        for resource, future in described.items():
            entry = future.result(timeout=timeout_s).get("message.timestamp.type")
            if entry is not None and entry.value == "LogAppendTime":
                out.append(
                    f"topic {resource.name} has message.timestamp.type=LogAppendTime: its "
                    "record times are when Kafka received each event, not when the item "
                    "changed, so --to-datetime finds offsets by receive time"
                )
    except KafkaException as exc:
        out.append(f"cannot read message.timestamp.type of {', '.join(topics)}: {exc}")
    return out


def execute(kafka: KafkaSettings, plan: ReplayPlan, timeout_s: float = 30.0) -> None:
    """Commit the plan's new offsets for its group; refuses while the group has members."""
    members = active_members(kafka, plan.group, timeout_s)
    if members:
        raise GroupActiveError(ReplayPlan(plan.group, plan.to, plan.moves, members).refusal())
    request = [
        ConsumerGroupTopicPartitions(
            plan.group, [TopicPartition(m.topic, m.partition, m.new) for m in plan.moves]
        )
    ]
    admin = _admin(kafka)
    try:
        future = admin.alter_consumer_group_offsets(request, request_timeout=timeout_s)[plan.group]
        result: Any = future.result(timeout=timeout_s)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        # A member that joined after the check above: the broker refuses, nothing moved.
        raise PermanentError(
            f"Kafka refused to move the offsets of group {plan.group}: {err}. If a consumer "
            "joined the group meanwhile, stop it and run replay again"
        ) from exc
    failed = [
        f"{tp.topic}/{tp.partition}: {tp.error}"
        for tp in (result.topic_partitions or [])
        if tp.error is not None
    ]
    if failed:
        raise PermanentError(
            f"moving the offsets of group {plan.group} failed on " + "; ".join(failed)
        )
