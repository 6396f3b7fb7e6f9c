"""`ddb-bridge status` as text at 80 columns or piped: long shard ids, owners and checkpoints
wrap onto more lines instead of being cut to `shardId-000…`; `--wide` keeps one line a row."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bridge.status.report import ShardStatus, StatusReport, StreamStatus, TableStatus
from ddb_bridge.cli.commands import status

SHARD = "shardId-00000001733581234567-8a0f3c1e"
OWNER = "ip-10-0-3-17.eu-west-1.compute.internal:41235/stream-worker-7"
CHECKPOINT = "49655839124471299178917318716237401925473116934184435714"


def report() -> StatusReport:
    shard = ShardStatus(SHARD, OWNER, CHECKPOINT, 3.0, False, unread=0, ms_behind=0)
    table = TableStatus(
        table="orders",
        stream_only=False,
        item_lifetime_s=None,
        stream=StreamStatus(stream_arn="arn:s", captured_since_ms=1_000, shards=[shard]),
        backfill_runs=[],
        dlq_topic="ddb.orders.dlq",
        dlq_depth=0,
        targets=[],
    )
    return StatusReport(generated_at_ms=10_000, tables=[table], attention=[])


def rendered(wide: bool, width: int = 80) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, soft_wrap=True)
    status.print_report(report(), console=console, wide=wide)
    return out.getvalue()


@pytest.mark.parametrize("width", [60, 80])
def test_nothing_is_cut_at_80_columns(width: int) -> None:
    text = rendered(wide=False, width=width)
    assert "…" not in text, text
    # The body rows between the header's rule and the bottom border: a value wrapped over
    # lines is read back whole by joining its column's cells.
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("└"))
    columns = [line.split("│")[1:-1] for line in lines[start:end]]
    values = ["".join(cells[i].strip() for cells in columns) for i in range(3)]
    assert values == [SHARD, OWNER, CHECKPOINT], text
    assert max(len(line) for line in text.splitlines()) <= width, text


def test_wide_keeps_every_value_on_one_line() -> None:
    text = rendered(wide=True)
    assert "…" not in text
    row = next(line for line in text.splitlines() if SHARD in line)
    assert OWNER in row and CHECKPOINT in row, text


def test_the_command_takes_wide() -> None:
    from ddb_bridge.cli.main import build_parser

    args = build_parser().parse_args(["status", "--wide"])
    assert args.wide is True
