"""The dashboard server without services: requests never wait for a gather, failures show
on the page, the lag history is a bounded ring buffer, the page loads nothing from outside."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from bridge.status.report import (
    GroupStatus,
    StatusReport,
    StreamStatus,
    TableStatus,
    TargetStatus,
    Verdict,
)
from ddb_bridge.dashboard.server import Sampler, page_html


def _report(lag: int | None, at_ms: int) -> StatusReport:
    table = TableStatus(
        table="orders",
        stream_only=False,
        item_lifetime_s=None,
        stream=StreamStatus(stream_arn=None, captured_since_ms=None),
        backfill_runs=[],
        dlq_topic="ddb.orders.dlq",
        dlq_depth=0,
        targets=[],
    )
    group = GroupStatus(group="g", topic="ddb.orders.changes", partitions=[], lag=lag)
    table.targets.append(
        TargetStatus(
            target="pg",
            group=group.group,
            topic=group.topic,
            partitions=[],
            lag=lag,
            consumed_per_s=None,
            eta_s=None,
            verify=None,
            verdict=Verdict(ready=False, missing=["verify has not run for pg"]),
        )
    )
    return StatusReport(generated_at_ms=at_ms, tables=[table], attention=[])


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.headers["Content-Type"], resp.read()


def _lags(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lag half of each history sample (the rates have their own test)."""
    return [{"at_ms": h["at_ms"], "lag": h["lag"]} for h in history]


def _api(url: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_get(url + "api/status")[2])
    return data


def test_a_slow_gather_never_blocks_the_page_or_the_api(serve: Callable[[Sampler], str]) -> None:
    release = threading.Event()

    def slow() -> StatusReport:
        release.wait(30)
        return _report(7, 1_000)

    sampler = Sampler(slow, interval_s=0.01)
    sampler.start()  # its first gather blocks until released
    url = serve(sampler)
    try:
        time.sleep(0.1)
        started = time.monotonic()
        assert _api(url) == {
            "interval_s": 0.01,
            "report": None,
            "error": None,
            "error_at_ms": None,
            "history": [],
        }
        status, content_type, body = _get(url)
        assert time.monotonic() - started < 2
        assert (status, content_type) == (200, "text/html; charset=utf-8")
        assert b"/api/status" in body
        release.set()
        deadline = time.monotonic() + 10
        while _api(url)["report"] is None:
            assert time.monotonic() < deadline, "the sampler never recorded its gather"
            time.sleep(0.02)
        (table,) = _api(url)["report"]["tables"]
        assert table["targets"][0]["lag"] == 7
    finally:
        release.set()
        sampler.stop()


def test_a_failed_gather_is_shown_and_keeps_the_last_report(
    serve: Callable[[Sampler], str],
) -> None:
    outcomes: list[Any] = [_report(5, 1_000), RuntimeError("broker 127.0.0.1:9 unreachable")]

    def gather() -> StatusReport:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        report: StatusReport = outcome
        return report

    sampler = Sampler(gather, interval_s=60)
    url = serve(sampler)
    sampler.sample_once()
    sampler.sample_once()
    api = _api(url)
    assert api["error"] == "RuntimeError: broker 127.0.0.1:9 unreachable"
    assert api["report"]["generated_at_ms"] == 1_000
    assert _lags(api["history"]) == [{"at_ms": 1_000, "lag": {"orders -> pg": 5}}]
    # What the command raises at start (a config error) is raised; anything else is shown.
    outcomes.append(RuntimeError("still down"))
    sampler.sample_once(raising=(ValueError,))
    assert _api(url)["error"] == "RuntimeError: still down"
    outcomes.append(ValueError("no such table"))
    with pytest.raises(ValueError, match="no such table"):
        sampler.sample_once(raising=(ValueError,))


def test_lag_history_is_a_ring_buffer_of_the_latest_samples() -> None:
    lags = iter([9, 6, None, 2, 0])
    clock = iter(range(1_000, 6_000, 1_000))
    sampler = Sampler(lambda: _report(next(lags), next(clock)), interval_s=1, history=3)
    for _ in range(5):
        sampler.sample_once()
    assert _lags(sampler.snapshot()["history"]) == [
        {"at_ms": 3_000, "lag": {"orders -> pg": None}},
        {"at_ms": 4_000, "lag": {"orders -> pg": 2}},
        {"at_ms": 5_000, "lag": {"orders -> pg": 0}},
    ]


def test_unknown_paths_are_404(serve: Callable[[Sampler], str]) -> None:
    url = serve(Sampler(lambda: _report(0, 0), interval_s=1))
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(url + "metrics")
    assert err.value.code == 404


def test_the_page_is_self_contained() -> None:
    page = page_html().decode()
    # Offline machines: no external script, style sheet, font or image.
    for outside in ("<link", " src=", "@import", "url(", "http://", "https://"):
        assert outside not in page, outside
    assert "<script>" in page and "<style>" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--serve", "70000"], "--serve must be a port 0..65535, got 70000"),
        (["--serve", "0", "--interval-s", "0"], "--interval-s must be > 0, got 0.0"),
        (["--serve", "0", "--json"], "--json and --serve do not go together"),
    ],
)
def test_bad_serve_options_are_config_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ddb_bridge.cli.main import main

    assert main(["status", *args]) == 2
    assert message in capsys.readouterr().err


def test_stop_says_whether_a_gather_in_flight_was_abandoned() -> None:
    """`status --serve` leaves with os._exit when the sampler is still inside a client call
    (finalizing around it can hang): `stop` must tell the two cases apart."""
    entered, release = threading.Event(), threading.Event()
    calls = 0

    def gather() -> StatusReport:
        nonlocal calls
        calls += 1
        if calls > 1:  # the sampler thread's first gather blocks, as on a broker timeout
            entered.set()
            release.wait(30)
        return _report(1, 1_000)

    stuck = Sampler(gather, interval_s=0.01)
    stuck.sample_once()
    stuck.start()
    assert entered.wait(10)
    try:
        assert stuck.stop(timeout_s=0.2) is False
    finally:
        release.set()
    quiet = Sampler(lambda: _report(1, 1_000), interval_s=60)
    quiet.start()
    assert quiet.stop(timeout_s=5) is True


def test_history_carries_back_fill_and_apply_rates_beside_lag() -> None:
    """Each sample after the first holds items/s of the table's back-fill run and events/s
    committed by each apply group, from the change since the sample before."""
    from bridge.status.report import BackfillRun, PartitionStatus

    def sample(at_ms: int, items: int, run_id: str, committed: list[int | None]) -> StatusReport:
        base = _report(3, at_ms)
        (table,) = base.tables
        (target,) = table.targets
        run = BackfillRun(
            run_id=run_id, kind="scan", state="RUNNING", parts=2, parts_done=0, items=items,
            total_items=None, created_at_ms=0, finished_at_ms=None,
        )  # fmt: skip
        parts = [
            PartitionStatus(partition=p, committed=c, end=100_000, lag=1)
            for p, c in enumerate(committed)
        ]
        table.backfill_runs.append(run)
        table.targets[0] = dataclasses.replace(target, partitions=parts)
        return base

    reports = iter(
        [
            sample(10_000, 0, "r1", [None, None]),
            sample(12_000, 4_000, "r1", [100, 300]),  # 2,000 items/s; 200 events/s
            sample(13_000, 4_500, "r1", [400, 300]),  # 500 items/s; 300 events/s
            sample(14_000, 200, "r2", [None, 300]),  # a new run; an offset unknown
        ]
    )
    sampler = Sampler(lambda: next(reports), interval_s=1)
    for _ in range(4):
        sampler.sample_once()
    history = sampler.snapshot()["history"]
    assert [h["backfill_per_s"] for h in history] == [
        {"orders": None},
        {"orders": 2_000.0},
        {"orders": 500.0},
        {"orders": None},  # another run: its items are not the first one's
    ]
    assert [h["applied_per_s"] for h in history] == [
        {"orders -> pg": None},  # no sample before
        {"orders -> pg": 200.0},  # no commit yet counts 0: nothing consumed there
        {"orders -> pg": 300.0},
        {"orders -> pg": 0.0},  # offsets went back (a reset group): never a negative rate
    ]
    assert [h["lag"] for h in history] == [{"orders -> pg": 3}] * 4
