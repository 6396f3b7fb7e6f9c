"""What `backfill` prints around its progress bar: log lines go through the bar's console
(above the bar, not into its line), and the summary gives the rate while reading (the bar's)
and over the whole run (with start-up), each labelled."""

from __future__ import annotations

import io
import logging
import os
import re

from rich.console import Console

from connectors.sources.backfill.runner import BackfillOutcome
from connectors.sources.backfill.runs import RunInfo
from connectors.sources.backfill.stats import Stats
from ddb_bridge.cli.commands.backfill import _summary
from ddb_bridge.progress import progress


def test_log_lines_while_the_bar_is_shown_go_through_its_console() -> None:
    root = logging.getLogger()
    plain = io.StringIO()
    handler = logging.StreamHandler(plain)
    root.addHandler(handler)
    before = root.level
    root.setLevel(logging.INFO)
    try:
        shown = io.StringIO()
        bar = progress(out=Console(file=shown, force_terminal=True, width=100))
        with bar:
            bar.add_task("orders", total=10, rate="0 items/s")
            logging.getLogger("ddb-bridge.test").info("claimed back-fill part 3")
        logging.getLogger("ddb-bridge.test").info("after the bar")
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
    assert "claimed back-fill part 3" in shown.getvalue()
    assert "claimed back-fill part 3" not in plain.getvalue()
    assert "after the bar" in plain.getvalue(), "the handler's stream is put back"


def test_the_summary_labels_the_reading_rate_and_the_overall_rate() -> None:
    stats = Stats(published=24_000)
    stats.started_at, stats.first_item_at, stats.last_item_at = 100.0, 106.0, 118.0
    outcome = BackfillOutcome(
        RunInfo("orders", "r1", "scan", 1, 4, 1, "scan, 4 segments"), stats, elapsed_s=20.0
    )
    out = io.StringIO()
    _summary(Console(file=out, width=120), "orders", outcome)
    text = out.getvalue()
    assert re.search(r"2,000 items/s while reading", text), text  # 24,000 in 12 s
    assert re.search(r"1,200 items/s over the whole run", text), text  # 24,000 in 20 s
    assert re.search(r"6\.0 ?s start-up", text), text


def test_a_handler_whose_stream_was_closed_does_not_stop_the_bar() -> None:
    """A root handler left with a closed stream (here: a closed file) is swapped like any other;
    the bar must not fail flushing it (seen in the full suite, a handler of an earlier test
    still on the root logger)."""
    root = logging.getLogger()
    closed = open(os.devnull, "w")  # noqa: SIM115 (closed on purpose before use)
    handler = logging.StreamHandler(closed)
    root.addHandler(handler)
    closed.close()
    try:
        shown = io.StringIO()
        bar = progress(out=Console(file=shown, force_terminal=True, width=100))
        with bar:
            bar.add_task("orders", total=1, rate="0 items/s")
        assert handler.stream is closed, "the handler's own stream is put back"
    finally:
        root.removeHandler(handler)
