"""benchmarks/report.py and the summary of `python -m benchmarks`: what a run records is
what the README's Performance table is built from, so its shape is tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import __main__ as runner
from benchmarks import report


def test_a_run_records_machine_broker_figures_and_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    results = report.Results("publish")
    results.set_broker("Apache Kafka 4.4.0 (KRaft) on 127.0.0.1:9092")
    results.figure(
        "publish", 40_000, "events/s", baseline=("produce pre-encoded", 160_000), goal_ratio=0.5
    )
    written = json.loads(results.write().read_text())
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("machine: ")
    assert "ratio 0.25 | publish: 40,000 events/s | same-run baseline produce pre-encoded" in (
        printed
    )
    assert written["broker"].startswith("Apache Kafka 4.4.0")
    assert written["machine"]["cores"] >= 1 and written["machine"]["cpu"]
    assert written["machine"]["python"].count(".") == 2
    (fig,) = written["figures"]
    assert fig["ratio"] == 0.25 and fig["goal_ratio"] == 0.5 and fig["value"] == 40_000

    table = runner.table([written])
    assert "| publish | publish | **0.25** | 40,000 events/s |" in table
    assert "produce pre-encoded: 160,000 events/s | ratio >= 0.5 |" in table
    assert "broker: Apache Kafka 4.4.0" in table


def test_a_figure_without_baseline_has_no_ratio() -> None:
    fig = report.Figure("peak RSS", 90.0, "MB")
    assert fig.ratio is None and fig.line() == "peak RSS: 90 MB"


def test_names_come_before_the_flags_passed_on() -> None:
    assert runner.split_args(["export", "apply", "--items", "10"]) == (
        ["export", "apply"],
        ["--items", "10"],
    )
    assert runner.split_args([]) == ([], [])


def test_cpu_per_item_is_printed_recorded_and_tabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 26 item 5: every figure can carry the bridge's CPU µs per item (and the
    baseline's), printed beside the rate, in the results JSON and in the summary table."""
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    results = report.Results("apply")
    results.figure(
        "apply -> CQL",
        12_000,
        "rows/s",
        baseline=("driver batches", 16_000),
        cpu_us_per_item=61.234,
        baseline_cpu_us_per_item=38.5,
    )
    results.figure("peak RSS", 90.0, "MB")
    written = json.loads(results.write().read_text())
    printed = capsys.readouterr().out
    assert "apply -> CQL: 12,000 rows/s, CPU 61.2 µs/item" in printed
    assert "driver batches: 16,000, CPU 38.5 µs/item" in printed
    with_cpu, without = written["figures"]
    assert with_cpu["cpu_us_per_item"] == 61.23 and with_cpu["baseline_cpu_us_per_item"] == 38.5
    assert without["cpu_us_per_item"] is None
    table = runner.table([written])
    assert "| **0.75** | 12,000 rows/s | 61.2 (38.5) | driver batches: 16,000 rows/s |" in table
    assert "| peak RSS | - | 90.0 MB | - | - |" in table


def test_process_cpu_counts_the_work_done_inside_its_window() -> None:
    from benchmarks.procfs import ProcessCpu

    with ProcessCpu() as idle:
        pass
    with ProcessCpu() as busy:
        sum(i * i for i in range(3_000_000))  # ~0.1-0.3 s of one core
    assert idle.seconds < 0.05 < busy.seconds
    assert busy.us_per(1000) == pytest.approx(busy.seconds * 1000)
    assert busy.us_per(0) is None
