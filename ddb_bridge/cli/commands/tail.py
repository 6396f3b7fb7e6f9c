"""`ddb-bridge tail`: the change events of a table as they arrive, decoded, one per line.

Built on the public consumer API (`bridge.consumer.events`) without a consumer group: it is
assigned every partition and commits nothing, so it never disturbs `apply` or your own
consumers. Ctrl-C (or SIGTERM) ends it with exit 0; a closed stdout (`| head -3`) with 141,
quietly, even while no event comes to be written.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from bridge.consumer import Undecodable, events
from bridge.consumer.text import json_line, text_line
from bridge.kafka.reach import ensure_reachable
from bridge.model.key_filter import KeyFilter
from bridge.runtime.settings import load_settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ddb_bridge.cli.parsers import command

    p = command(
        sub,
        "tail",
        "print a table's change events as they arrive, decoded",
        (
            "Print the change events of a table's topic, decoded, one per line:\n"
            "  TIME OP ORIGIN KEY v=VERSION NEW-IMAGE   (TIME: the change time, UTC)\n"
            "or, with --json, one JSON object per line (images in DynamoDB JSON).\n"
            "Reads without a consumer group and commits nothing. Ctrl-C ends it (exit 0)."
        ),
    )
    p.add_argument(
        "--table",
        required=True,
        action="append",
        help="source table whose change topic to read (repeat for several)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line, for scripts (jq)")
    p.add_argument(
        "--key",
        type=_key_filter,
        metavar="KEY",
        help="only events of this key: name=value[,name=value] (e.g. pk=a,sk=2) or DynamoDB "
        """JSON (e.g. '{"pk":{"S":"a"}}'); naming only some key attributes matches all the """
        "items that share them",
    )
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the oldest event the topic holds, not at the events published after "
        "the start",
    )
    p.add_argument("--max", type=int, metavar="N", help="stop after printing N events (exit 0)")
    p.set_defaults(func=run)


def _key_filter(spec: str) -> KeyFilter:
    try:
        return KeyFilter.parse(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{spec!r}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    try:
        return _tail(args)
    except KeyboardInterrupt:
        return 0  # Ctrl-C before the reading began (once it has, a handler stops the loop)


def _tail(args: argparse.Namespace) -> int:
    from bridge.model.errors import ConfigError

    if args.max is not None and args.max < 1:
        raise ConfigError(f"--max must be at least 1, got {args.max}")
    settings = load_settings(args.config)
    ensure_reachable(settings.kafka)
    tables: list[str] = list(dict.fromkeys(args.table))
    key: KeyFilter | None = args.key
    render = json_line if args.json else lambda c: text_line(c, with_table=len(tables) > 1)

    def undecodable(bad: Undecodable) -> None:
        # Shown, not skipped silently: `apply` dead-letters such a record with this reason.
        log.error(
            "not a change event: %s",
            bad.reason,
            extra={"topic": bad.topic, "partition": bad.partition, "offset": bad.offset},
        )

    stream = events(
        settings.kafka,
        tables,
        None,
        from_beginning=args.from_beginning,
        on_undecodable=undecodable,
        on_idle=_raise_if_stdout_closed,
    )
    printed = 0
    with stream, _stop_on_signals(stream.stop):
        log.info(
            "tailing",
            extra={
                "topics": ",".join(stream.topics),
                "from": "beginning" if args.from_beginning else "latest",
            },
        )
        for consumed in stream.records():
            if key is not None and not key.matches(consumed.event.keys):
                continue
            print(render(consumed), flush=True)
            printed += 1
            if args.max is not None and printed >= args.max:
                break
    return 0


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call `stop` (the loop ends at its next poll) while inside."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_if_stdout_closed() -> None:
    """While no event comes, notice a reader of stdout that went away (`| head -3` has its
    lines) instead of waiting for the next event to fail writing: a pipe whose reading end
    is closed polls as POLLERR."""
    try:
        fd = sys.stdout.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return
    except (OSError, ValueError):
        return  # not a real file (captured, closed): nothing to watch
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR and POLLHUP are reported whatever the mask
    if any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in poller.poll(0)):
        raise BrokenPipeError(f"stdout (fd {fd}) has no reader")
