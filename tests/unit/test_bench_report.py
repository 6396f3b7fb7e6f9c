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
