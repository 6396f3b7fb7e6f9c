"""`ddb-bridge replay`: move a consumer group's offsets on the change topics (dry run first).

The Kafka work is in `bridge.kafka.replay`; this module reads the options, picks the group and
topics from the config, and prints the plan (a table, or `--json`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bridge.kafka.reach import ensure_reachable
from bridge.kafka.replay import Mode, ReplayPlan, ReplayTo
from bridge.model.errors import ConfigError
from bridge.runtime.settings import load_settings

DESCRIPTION = """\
Move the committed offsets of a consumer group on the change topics, so that it processes
events again (or skips them). Without --execute it only prints, per topic and partition, the
current offset, the new offset and how many events will be processed again.

The group: --target NAME means the apply group ddb-bridge.apply.NAME; --group G any group.
Kafka moves only an idle group's offsets: stop its workers first (replay refuses, naming
the members, while the group has any). Apply writes last-write-wins by version, so
replaying applied events changes nothing in the target, and repairs rows that were
changed or deleted there behind the bridge's back.

Each record's Kafka timestamp is its item's DynamoDB change time (stream records:
ApproximateCreationDateTime; back-fill snapshots: the run's version time), so
--to-datetime starts each partition at its first change at or after that time.
New offsets are clamped to what the topic holds: [low watermark, high watermark]."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.parsers import command

    p = command(
        sub,
        "replay",
        "move a consumer group's offsets (dry run unless --execute)",
        DESCRIPTION,
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--target", metavar="NAME", help="the apply group of [targets.NAME]: ddb-bridge.apply.NAME"
    )
    who.add_argument("--group", metavar="G", help="any consumer group id")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="the first offset still held")
    to.add_argument("--to-latest", action="store_true", help="the end: skip everything unread")
    to.add_argument(
        "--to-datetime",
        metavar="ISO8601",
        help="the first change at or after this time (UTC when it has no offset)",
    )
    to.add_argument(
        "--to-offset",
        metavar="PARTITION:OFFSET[,...]",
        help="these offsets, on the partitions named (of each topic)",
    )
    to.add_argument(
        "--shift-by",
        metavar="N",
        type=int,
        help="move each partition by N from its current offset (negative: back)",
    )
    p.add_argument(
        "--table",
        metavar="T",
        action="append",
        default=None,
        help="a source table whose change topic to move (repeatable) "
        "[default: every [[tables]] entry]",
    )
    p.add_argument(
        "--partitions",
        metavar="P[,P...]",
        default=None,
        help="only these partitions [default: all]",
    )
    p.add_argument("--execute", action="store_true", help="move the offsets (default: dry run)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def replay_to(args: argparse.Namespace) -> ReplayTo:
    from bridge.kafka.replay import parse_datetime, parse_offsets

    if args.to_earliest:
        return ReplayTo(Mode.EARLIEST)
    if args.to_latest:
        return ReplayTo(Mode.LATEST)
    if args.to_datetime is not None:
        return ReplayTo(Mode.DATETIME, time_ms=parse_datetime(args.to_datetime))
    if args.to_offset is not None:
        return ReplayTo(Mode.OFFSET, offsets=parse_offsets(args.to_offset))
    return ReplayTo(Mode.SHIFT, shift=args.shift_by)


def run(args: argparse.Namespace) -> int:
    from bridge.apply.app import group_id
    from bridge.kafka.replay import GroupActiveError, execute, parse_partitions, plan_replay

    settings = load_settings(args.config)
    ensure_reachable(settings.kafka)
    if args.target is not None:
        settings.target(args.target)  # an unknown target is a configuration error
        group = group_id(args.target)
    else:
        group = args.group
    tables = args.table or [t.name for t in settings.tables]
    if not tables:
        raise ConfigError("no tables to replay: add [[tables]] entries or pass --table")
    to = replay_to(args)
    partitions = parse_partitions(args.partitions) if args.partitions is not None else None
    topics = [settings.kafka.changes_topic(t) for t in tables]

    plan = plan_replay(settings.kafka, group, topics, to, partitions)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.execute and plan.members:
        raise GroupActiveError(plan.refusal())
    if args.execute:
        execute(settings.kafka, plan)
    if args.json:
        print(json.dumps(as_json(plan, executed=args.execute), indent=2))
    else:
        print_plan(plan, executed=args.execute)
    if plan.members and not args.execute:
        print(f"warning: --execute is refused until then: {plan.refusal()}", file=sys.stderr)
    return 0


def as_json(plan: ReplayPlan, executed: bool) -> dict[str, Any]:
    return {
        "group": plan.group,
        "to": plan.to.describe(),
        "executed": executed,
        "partitions": [
            {
                "topic": m.topic,
                "partition": m.partition,
                "committed": m.committed,
                "current": m.current,
                "new": m.new,
                "low": m.low,
                "high": m.high,
                "reprocess": m.reprocessed,
                "skip": m.skipped,
                "clamped": m.clamp_note,
            }
            for m in plan.moves
        ],
        "total_reprocess": plan.reprocessed,
        "total_skip": plan.skipped,
        "warnings": plan.warnings,
        "active_members": [
            {"member_id": m.member_id, "client_id": m.client_id, "host": m.host}
            for m in plan.members
        ],
    }


def print_plan(plan: ReplayPlan, executed: bool) -> None:
    header = ("TOPIC", "PARTITION", "CURRENT", "NEW", "LOW", "HIGH", "REPROCESS", "NOTE")
    rows = [header]
    for m in plan.moves:
        notes = [n for n in (m.clamp_note,) if n]
        if m.committed is None:
            notes.append("never committed: starts at the low watermark")
        if m.skipped:
            notes.append(f"skips {m.skipped} unprocessed")
        rows.append(
            (
                m.topic,
                str(m.partition),
                str(m.current),
                str(m.new),
                str(m.low),
                str(m.high),
                str(m.reprocessed),
                "; ".join(notes),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    verb = "moved" if executed else "would move (dry run; --execute to apply)"
    lines = [f"group {plan.group}: {verb} {plan.to.describe()}"]
    for r in rows:
        # The topic left-aligned, numbers right-aligned, the note as it comes.
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:-1], widths[1:], strict=True)
        ]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    total = f"total: {plan.reprocessed} events to re-process"
    if plan.skipped:
        total += f", {plan.skipped} skipped"
    lines.append(total)
    print("\n".join(lines))
