"""The dashboard page's layout in headless Chromium at two window widths, on a sampler fed
with made-up status reports (no services: the page, not the pipeline, is under test here;
tests/e2e/test_dashboard.py renders it over a real running pipeline).

The charts follow the window's width, carry gridlines, keep their legend outside the plot,
show apply lag and, beside it, back-fill items/s and applied events/s; the page never says
it is waiting for a first sample while it also says the last one failed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

from bridge.status.report import (
    BackfillRun,
    PartitionStatus,
    StatusReport,
    StreamStatus,
    TableStatus,
    TargetStatus,
    Verdict,
)
from ddb_bridge.dashboard.server import Sampler
from tests.e2e.test_dashboard import CHROMIUM, _chromium

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium not installed (apt-get install --no-install-recommends chromium)",
    ),
]

# body margin 16 px and card padding 12 px + border 1 px, on each side.
CARD_INSET = 2 * (16 + 12 + 1)


def report(at_ms: int, backfilled: int, committed: int, end: int) -> StatusReport:
    run = BackfillRun(
        run_id="r1", kind="scan", state="RUNNING", parts=4, parts_done=1, items=backfilled,
        total_items=10_000, created_at_ms=0, finished_at_ms=None,
    )  # fmt: skip
    partition = PartitionStatus(partition=0, committed=committed, end=end, lag=end - committed)
    target = TargetStatus(
        target="local", group="ddb-bridge.apply.local", topic="ddb.orders.changes",
        partitions=[partition], lag=end - committed, consumed_per_s=None, eta_s=None,
        verify=None, verdict=Verdict(ready=False, missing=["verify has not run for local"]),
    )  # fmt: skip
    table = TableStatus(
        table="orders", stream_only=False, item_lifetime_s=None,
        stream=StreamStatus(stream_arn=None, captured_since_ms=None), backfill_runs=[run],
        dlq_topic="ddb.orders.dlq", dlq_depth=0, targets=[target],
    )  # fmt: skip
    return StatusReport(generated_at_ms=at_ms, tables=[table], attention=[])


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    svg: str | None  # id of the enclosing <svg>, if any
    text: str = ""
    classes: set[str] = field(default_factory=set)


class Dom(HTMLParser):
    """Every element with its attributes, its text, and the chart it sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._stack: list[Element] = []

    def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attributes}
        outer = next((e for e in reversed(self._stack) if e.tag == "svg"), None)
        svg = a.get("id") if tag == "svg" else (outer.attrs.get("id") if outer else None)
        element = Element(tag, a, svg, classes=set(a.get("class", "").split()))
        self.elements.append(element)
        if tag not in ("line", "polyline", "rect", "circle", "path", "br", "meta", "i"):
            self._stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i].tag == tag:
                del self._stack[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._stack:
            element.text += data

    def by_id(self, id_: str) -> Element:
        (found,) = [e for e in self.elements if e.attrs.get("id") == id_]
        return found

    def inside(self, svg: str, tag: str) -> list[Element]:
        return [e for e in self.elements if e.svg == svg and e.tag == tag]


def render(url: str, width: int) -> Dom:
    dom = Dom()
    dom.feed(_chromium(f"--window-size={width},900", "--dump-dom", url))
    return dom


def _no_overlap(labels: list[Element], axis: str, room: float) -> None:
    """Labels along one axis are at least `room` px apart (a label is ~`room` long)."""
    places = sorted(float(e.attrs[axis]) for e in labels)
    gaps = [b - a for a, b in itertools.pairwise(places)]
    assert all(gap >= room for gap in gaps), (axis, places)


def test_charts_follow_the_window_with_gridlines_a_legend_outside_and_three_series(
    serve: Callable[[Sampler], str],
) -> None:
    # A back-fill at 1,000 items/s, apply at 800 events/s, lag growing: three samples 1 s apart.
    samples = iter(
        [report(10_000, 0, 0, 500), report(11_000, 1_000, 800, 1_700),
         report(12_000, 2_000, 1_600, 2_900)]
    )  # fmt: skip
    sampler = Sampler(lambda: next(samples), interval_s=1)
    for _ in range(3):
        sampler.sample_once()
    url = serve(sampler)
    widths = {}
    for window in (800, 1400):
        dom = render(url, window)
        for chart, series in (
            ("lag-chart", {"orders -> local: apply lag"}),
            (
                "rate-chart",
                {"orders: back-fill items/s", "orders -> local: applied events/s"},
            ),
        ):
            svg = dom.by_id(chart)
            width = float(svg.attrs["width"])
            # The card's whole inner width, whatever the window: no fixed-size plot.
            assert abs(width - (window - CARD_INSET)) <= 24, (chart, window, width)
            widths[(chart, window)] = width
            grid = [e for e in dom.inside(chart, "line") if "grid" in e.classes]
            assert len(grid) >= 3, (chart, grid)
            drawn = {e.attrs["data-series"] for e in dom.inside(chart, "polyline")}
            assert drawn == series, drawn
            # The legend is HTML beside the plot, not text drawn over it.
            legend = dom.by_id(f"{chart}-legend")
            assert legend.svg is None
            for name in series:
                assert name in legend.text
                assert all(name not in e.text for e in dom.inside(chart, "text"))
            ticks = [e for e in dom.inside(chart, "text") if "y-tick" in e.classes]
            _no_overlap(ticks, "y", 10)
            times = [e for e in dom.inside(chart, "text") if "x-tick" in e.classes]
            assert len(times) >= 2
            _no_overlap(times, "x", 100)  # a time label is ~70 px wide
        rates = dom.by_id("rate-chart")
        assert rates.attrs["data-max"] in ("1000", "1200"), rates.attrs  # 1,000/s fits
    assert widths[("lag-chart", 1400)] > widths[("lag-chart", 800)] + 500


def test_a_failed_first_sample_is_not_also_waited_for(serve: Callable[[Sampler], str]) -> None:
    def unreachable() -> StatusReport:
        raise ConnectionError("Could not connect to the endpoint URL: http://127.0.0.1:9/")

    sampler = Sampler(unreachable, interval_s=5)
    sampler.sample_once()
    dom = render(serve(sampler), 1000)
    meta, error = dom.by_id("meta").text, dom.by_id("error").text
    assert "waiting" not in meta, meta
    assert "no status sample yet" in meta and "retrying every 5 s" in meta, meta
    assert re.search(r"failed at \d", error), error
    assert "Could not connect to the endpoint URL: http://127.0.0.1:9/" in error


def test_a_failed_sample_after_a_good_one_says_which_one_is_shown(
    serve: Callable[[Sampler], str],
) -> None:
    outcomes: list[StatusReport | Exception] = [
        report(10_000, 0, 0, 5),
        ConnectionError("broker down"),
    ]

    def gather() -> StatusReport:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    sampler = Sampler(gather, interval_s=5)
    sampler.sample_once()
    sampler.sample_once()
    dom = render(serve(sampler), 1000)
    meta, error = dom.by_id("meta").text, dom.by_id("error").text
    assert "waiting" not in meta and "no status sample yet" not in meta, meta
    assert "last good sample" in meta, meta
    assert "broker down" in error and "showing the last good sample" in error, error
