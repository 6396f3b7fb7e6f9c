"""`ddb-bridge dlq list|show|redrive --table T`: dead letters you can act on.

`list` shows every dead letter of a table (where it is in the DLQ, when, why, where it came
from, its item key, whether it was re-driven); `show` one of them in full, its event decoded
or its bytes in hex and base64; `redrive` re-publishes chosen dead letters, key and value
byte for byte, into the changes topic once their cause is fixed (a dry run unless
`--execute`). The reading and re-driving is in `bridge/dlq/topic.py` and
`bridge/dlq/redrive.py`.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import sys
from typing import Any

from bridge.dlq.redrive import Candidate, decode, redrive, select
from bridge.dlq.topic import (
    DlqRecord,
    ledger_topic,
    parse_position,
    read_dead_letter,
    read_dead_letters,
    read_ledger,
)
from bridge.kafka.reach import ensure_reachable
from bridge.kafka.schema_registry import make_codec
from bridge.model import attrs
from bridge.model.errors import ConfigError
from bridge.model.event import ChangeEvent
from bridge.runtime.settings import load_settings

REASON_WIDTH = 160


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.parsers import actions, add_source_table, command

    dlq = command(
        sub,
        "dlq",
        "list, show and re-drive dead letters (<prefix><table>.dlq)",
        (
            "Dead letters are change records the target could never accept (or that did not\n"
            "decode). Fix the cause, then `redrive` puts them back on the changes topic.\n"
            "What was re-driven is kept in <prefix><table>.dlq.redriven, so re-driving\n"
            "twice publishes nothing twice."
        ),
        common=False,
    )
    dlq_actions = actions(dlq, "dlq_command")

    def action(name: str, help: str, description: str) -> argparse.ArgumentParser:
        p = command(dlq_actions, name, help, description)
        add_source_table(p)
        return p

    ls = action(
        "list",
        "every dead letter: position, time, reason, origin, item key",
        "List the dead letters of a table, oldest first per DLQ partition. Exit 0.",
    )
    ls.add_argument("--json", action="store_true", help="a JSON array, one object per record")
    ls.set_defaults(func=run_list)

    show = action(
        "show",
        "one dead letter in full, its event decoded",
        "Show one dead letter: its headers and its event decoded (single-object or Confluent\n"
        "framing), or its bytes in hex and base64 when it does not decode.",
    )
    show.add_argument("--offset", required=True, metavar="P:O", help="DLQ partition:offset")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(func=run_show)

    rd = action(
        "redrive",
        "re-publish dead letters into the changes topic (dry run unless --execute)",
        "Re-publish the chosen dead letters' key and value, byte for byte, into the changes\n"
        "topic (versions unchanged: last-write-wins makes it idempotent), then mark them\n"
        "re-driven. Without --execute, only lists what would be re-driven. Records already\n"
        "re-driven are skipped; records that do not decode are refused unless --force.\n"
        "Exit 1 when something chosen is refused (nothing is published then).",
    )
    which = rd.add_mutually_exclusive_group()
    which.add_argument(
        "--offset", metavar="P:O[,P:O...]", help="these dead letters (DLQ partition:offset)"
    )
    which.add_argument("--all", action="store_true", help="every dead letter")
    rd.add_argument(
        "--reason",
        metavar="SUBSTRING",
        help="only those whose reason contains this text (case-insensitive; alone: of all)",
    )
    rd.add_argument("--execute", action="store_true", help="publish (default: a dry run)")
    rd.add_argument(
        "--force", action="store_true", help="re-publish undecodable records too, as they are"
    )
    rd.set_defaults(func=run_redrive)


# -- list ----------------------------------------------------------------------------------


def _time(ms: int | None) -> str:
    if ms is None:
        return "?"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def _item_key(record: DlqRecord, event: ChangeEvent | None) -> str | None:
    """The item key as DynamoDB JSON: the event's, else the Kafka key when it is one."""
    if event is not None and isinstance(event.keys, dict):
        try:
            return attrs.dumps(event.keys)
        except Exception:  # a malformed key is one reason a record is dead-lettered
            pass
    if record.key:
        try:
            return attrs.dumps(attrs.loads(record.key))
        except Exception:
            return None
    return None


def _summary(
    record: DlqRecord, event: ChangeEvent | None, ledger: dict[str, str]
) -> dict[str, Any]:
    topic, partition, offset = record.origin
    origin: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
    if record.export_line is not None:
        origin = {"file": record.export_line[0], "line": record.export_line[1]}
    return {
        "dlq": record.position,
        "time": _time(record.timestamp_ms),
        "error": record.error,
        "reason": record.reason,
        "origin": origin,
        "key": _item_key(record, event),
        "version": event.version if event is not None else None,
        "redriven": record.position in ledger,
    }


def _origin_text(origin: dict[str, Any]) -> str:
    if "file" in origin:
        return f"export file {origin['file']} line {origin['line']}"
    return f"{origin['topic']}/{origin['partition']}@{origin['offset']}"


def run_list(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    ensure_reachable(settings.kafka)
    kafka = settings.kafka
    codec = make_codec(kafka)
    records = read_dead_letters(kafka, args.table)
    ledger = read_ledger(kafka, args.table)
    rows = [_summary(r, decode(codec, r)[0], ledger) for r in records]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    waiting = sum(not r["redriven"] for r in rows)
    print(
        f"{kafka.dlq_topic(args.table)}: {len(rows)} dead letters, {waiting} not re-driven "
        f"(re-drives kept in {ledger_topic(kafka, args.table)})"
    )
    for r in rows:
        origin = _origin_text(r["origin"])
        mark = "  [re-driven]" if r["redriven"] else ""
        reason = (
            r["reason"] if len(r["reason"]) <= REASON_WIDTH else r["reason"][:REASON_WIDTH] + "…"
        )
        print(f"{r['dlq']:>8}  {r['time']}  {r['error']}  from {origin}{mark}")
        print(f"          key {r['key'] or '(not decodable)'}")
        print(f"          {reason}")
    return 0


# -- show ----------------------------------------------------------------------------------


def _event_json(event: ChangeEvent) -> dict[str, Any]:
    def image(item: Any) -> Any:
        return json.loads(attrs.dumps(item)) if item is not None else None

    return {
        "table": event.table,
        "op": event.op.value,
        "origin": event.origin.value,
        "version": event.version,
        "keys": image(event.keys),
        "new_image": image(event.new_image),
        "old_image": image(event.old_image),
        "shard_id": event.shard_id,
        "sequence_number": event.sequence_number,
        "event_id": event.event_id,
        "approximate_creation_time_ms": event.approximate_creation_time_ms,
        "ttl_expired": event.ttl_expired,
    }


def run_show(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    ensure_reachable(settings.kafka)
    kafka = settings.kafka
    partition, offset = parse_position(args.offset)
    record = read_dead_letter(kafka, args.table, partition, offset)
    event, why = decode(make_codec(kafka), record)
    ledger = read_ledger(kafka, args.table)
    out: dict[str, Any] = {
        **_summary(record, event, ledger),
        "redrive": ledger.get(record.position),
        "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers},
        "kafka_key": record.key.decode("utf-8", "replace") if record.key is not None else None,
        "event": _event_json(event) if event is not None else None,
    }
    if event is None:
        value = record.value or b""
        out["undecodable"] = why
        out["value_hex"] = value.hex()
        out["value_base64"] = base64.b64encode(value).decode()
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    lines = [
        f"dead letter {kafka.dlq_topic(args.table)} {record.position}, {out['time']}",
        f"  origin   {_origin_text(out['origin'])}",
        f"  error    {out['error']}",
        f"  reason   {out['reason']}",
        f"  key      {out['kafka_key']}",
        f"  re-driven {out['redrive'] or 'no'}",
        "  headers",
        *(f"    {k}: {v}" for k, v in out["headers"].items()),
    ]
    if event is not None:
        lines += ["  event", *("    " + s for s in json.dumps(out["event"], indent=2).splitlines())]
    else:
        lines += [
            f"  value undecodable: {why}",
            f"  value ({len(record.value or b'')} bytes) hex    {out['value_hex']}",
            f"  value base64 {out['value_base64']}",
        ]
    print("\n".join(lines))
    return 0


# -- redrive -------------------------------------------------------------------------------


def _positions(text: str) -> set[tuple[int, int]]:
    return {parse_position(part) for part in text.split(",") if part.strip()}


def _line(c: Candidate) -> str:
    key = _item_key(c.record, c.event) or "(no key)"
    version = f" version {c.event.version}" if c.event is not None else ""
    return f"{c.record.position}  key {key}{version}  ({c.record.reason[:REASON_WIDTH]})"


def run_redrive(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    ensure_reachable(settings.kafka)
    kafka = settings.kafka
    if not (args.offset or args.all or args.reason):
        raise ConfigError("choose what to re-drive: --offset P:O[,...], --all or --reason TEXT")
    positions = _positions(args.offset) if args.offset else None
    records = read_dead_letters(kafka, args.table)
    if positions is not None:
        missing = positions - {(r.partition, r.offset) for r in records}
        if missing:
            names = ", ".join(f"{p}:{o}" for p, o in sorted(missing))
            raise ConfigError(f"no dead letter at {names} in {kafka.dlq_topic(args.table)}")
    chosen = select(
        records, read_ledger(kafka, args.table), make_codec(kafka), positions, args.reason
    )
    go = [c for c in chosen if c.verdict == "redrive"]
    undecodable = [c for c in chosen if c.verdict == "undecodable"]
    if args.force:
        go, undecodable = go + undecodable, []
        go.sort(key=lambda c: (c.record.partition, c.record.offset))
    already = [c for c in chosen if c.verdict == "already"]
    changes = kafka.changes_topic(args.table)
    for c in already:
        print(f"already re-driven: {c.record.position} ({c.why})")
    if not args.execute:
        print(f"dry run: {len(go)} dead letters would be re-driven into {changes}")
        for c in go:
            print(f"would re-drive {_line(c)}")
        for c in undecodable:
            print(f"refused (undecodable, re-drive with --force): {_line(c)}: {c.why}")
        print("run again with --execute to publish")
        return 0
    if undecodable:
        names = "; ".join(f"{c.record.position}: {c.why}" for c in undecodable)
        print(
            f"ddb-bridge: refused: {len(undecodable)} chosen dead letters do not decode "
            f"({names}); nothing was re-driven. Leave them out with --offset or --reason, "
            "or re-publish them as they are with --force",
            file=sys.stderr,
        )
        return 1
    if not go:
        print("nothing to re-drive" + (f" ({len(already)} already re-driven)" if already else ""))
        return 0
    for r in redrive(kafka, args.table, go):
        print(f"re-drove {r.record.position} -> {changes}/{r.partition}@{r.offset}")
    print(f"{len(go)} dead letters re-driven into {changes}")
    return 0
