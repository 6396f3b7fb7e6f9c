"""The run's checks, over what the bridge itself recorded (lease table, committed offsets,
the target's rows, the topics) and what DynamoDB Streams holds; never over its logs.

Each check returns (how many cases it checked, the violations it found, worded for a human).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from tests.chaos.sampler import OffsetSample

# Checkpoint time (the stream process's clock) against the broker's LogAppendTime, same host:
# the append happens before the acknowledgement that allows the checkpoint, so the only slack
# needed is the two clocks' millisecond rounding.
CLOCK_TOLERANCE_MS = 5
SHARD_END = "SHARD_END"
NOT_IN_TOPIC = float("inf")


@dataclass(frozen=True)
class TopicEvent:
    partition: int
    offset: int
    key: str  # the item's `pk`
    version: int
    shard: str | None
    sequence: str | None
    append_ms: int  # the broker's LogAppendTime


def stream_checkpoints_behind_acks(
    checkpoints: Iterable[tuple[str, str, int]],
    stream: dict[str, list[str]],
    events: Iterable[TopicEvent],
    tolerance_ms: int = CLOCK_TOLERANCE_MS,
) -> tuple[int, list[str]]:
    """(a) For each sampled checkpoint C of shard S written at T: every record of S with a
    sequence number <= C is in the topic, appended at or before T (+ tolerance)."""
    first_append: dict[tuple[str, int], int] = {}
    for ev in events:
        if ev.shard is None or ev.sequence is None:
            continue
        pos = (ev.shard, int(ev.sequence))
        first_append[pos] = min(first_append.get(pos, ev.append_ms), ev.append_ms)
    # Per shard: sequence numbers in order and the latest first-append time up to each.
    ordered: dict[str, tuple[list[int], list[float]]] = {}
    for shard, seqs in stream.items():
        nums = sorted(int(s) for s in seqs)
        latest: list[float] = []
        worst = 0.0
        for n in nums:
            worst = max(worst, first_append.get((shard, n), NOT_IN_TOPIC))
            latest.append(worst)
        ordered[shard] = (nums, latest)
    checked, violations = 0, []
    for shard, checkpoint, at_ms in sorted(checkpoints, key=lambda c: c[2]):
        nums, latest = ordered.get(shard, ([], []))
        if checkpoint == SHARD_END:
            upto = len(nums)
        elif checkpoint.isdigit():
            upto = bisect.bisect_right(nums, int(checkpoint))
        else:  # TRIM_HORIZON: nothing read yet, nothing claimed
            continue
        checked += 1
        if upto and latest[upto - 1] > at_ms + tolerance_ms:
            bad = next(
                n
                for n in nums[:upto]
                if first_append.get((shard, n), NOT_IN_TOPIC) > at_ms + tolerance_ms
            )
            appended = first_append.get((shard, bad))
            when = "never" if appended is None else f"at {appended} ms"
            violations.append(
                f"shard {shard} checkpoint {checkpoint} written at {at_ms} ms, but record "
                f"{bad} reached the topic {when}"
            )
    return checked, violations


def stream_records_all_in_topic(
    stream: dict[str, list[str]], events: Iterable[TopicEvent]
) -> list[str]:
    seen = {(ev.shard, int(ev.sequence)) for ev in events if ev.shard and ev.sequence}
    missing = [(s, q) for s, seqs in stream.items() for q in seqs if (s, int(q)) not in seen]
    return [f"stream record {s}/{q} never reached the topic" for s, q in missing[:20]] + (
        [f"... {len(missing)} stream records missing in all"] if len(missing) > 20 else []
    )


def apply_offsets_behind_writes(
    samples: list[OffsetSample], events: Iterable[TopicEvent]
) -> tuple[int, list[str]]:
    """(b) For every sampled committed offset O of partition P: every event of P below O has a
    row whose version is at least the event's (rows read right after the offsets)."""
    per_key: dict[str, tuple[int, list[int], list[int]]] = {}
    grouped: dict[str, list[TopicEvent]] = defaultdict(list)
    for ev in events:
        grouped[ev.key].append(ev)
    for key, evs in grouped.items():
        evs.sort(key=lambda e: e.offset)
        partitions = {e.partition for e in evs}
        if len(partitions) != 1:  # one key, one partition: the Kafka key decides it
            raise AssertionError(f"key {key} is in partitions {sorted(partitions)}")
        highest, best = [], -1
        for e in evs:
            best = max(best, e.version)
            highest.append(best)
        per_key[key] = (evs[0].partition, [e.offset for e in evs], highest)
    rows: dict[str, int] = {}
    checked, violations = 0, []
    for sample in samples:
        rows.update(sample.row_changes)
        checked += 1
        for key, (partition, offsets, highest) in per_key.items():
            committed = sample.offsets.get(partition)
            if committed is None:
                continue
            below = bisect.bisect_left(offsets, committed)
            if below and rows.get(key, -1) < highest[below - 1]:
                violations.append(
                    f"at {sample.at_s:.1f}s partition {partition} committed offset {committed}, "
                    f"but key {key} has version {rows.get(key)} in the target, below "
                    f"{highest[below - 1]} of an event under that offset"
                )
                if len(violations) >= 20:
                    return checked, violations
    return checked, violations


def retaken_checkpoints(stream_log: str) -> dict[str, list[int]]:
    """Per shard, the checkpoints a lease was taken again at after this process lost it
    (the stream's own log lines "lease lost" and then "took lease ... checkpoint=N")."""
    lost: set[str] = set()
    out: dict[str, list[int]] = defaultdict(list)
    for line in stream_log.splitlines():
        shard = re.search(r"shard=(\S+)", line)
        if shard is None:
            continue
        if "lease lost" in line:
            lost.add(shard.group(1))
        elif "took lease" in line and shard.group(1) in lost:
            at = re.search(r"checkpoint=(\d+)", line)
            if at is not None:
                out[shard.group(1)].append(int(at.group(1)))
    return dict(out)


def stream_records_once_in_order(
    events: Iterable[TopicEvent], retaken: dict[str, list[int]] | None = None
) -> tuple[list[str], int]:
    """Each stream record (shard, sequence) in the topic once, and each key's stream events
    in increasing version along its partition (the idempotent producer keeps both across a
    leader change; a retry without it could duplicate or reorder). A record after a
    checkpoint its shard's lease was taken again at (`retaken`) may be there twice, copies
    alike; the later copy is left out of the order check. Returns the violations and how
    many such second copies there were."""
    out: list[str] = []
    copies: dict[tuple[str, str], list[TopicEvent]] = defaultdict(list)
    for ev in events:
        if ev.shard is None or ev.sequence is None:
            continue  # back-fill events
        copies[(ev.shard, ev.sequence)].append(ev)
    republished = 0
    by_key: dict[str, list[TopicEvent]] = defaultdict(list)
    for (shard, seq), evs in copies.items():
        evs.sort(key=lambda e: e.offset)
        after_retake = any(int(seq) > at for at in (retaken or {}).get(shard, []))
        alike = len({(e.partition, e.version) for e in evs}) == 1
        if len(evs) == 2 and after_retake and alike:
            republished += 1
        elif len(evs) > 1:
            out.append(
                f"stream record {shard}/{seq} is in the topic {len(evs)} times "
                f"(offsets {[e.offset for e in evs]})"
            )
        by_key[evs[0].key].append(evs[0])
    for key, kept in by_key.items():
        kept.sort(key=lambda e: e.offset)
        for before, after in itertools.pairwise(kept):
            if after.version <= before.version:
                out.append(
                    f"key {key}: version {after.version} at offset {after.offset} follows "
                    f"version {before.version} at offset {before.offset}"
                )
    return out, republished
