"""The soak benchmark's pure parts: /proc parsing, slopes and flat-or-growing verdicts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak import series, verdicts
from benchmarks.soak_metrics import (
    THRESHOLDS,
    ProcSample,
    children_of,
    parse_stat_ppid,
    parse_status,
    sample_process,
    second_half,
    slope,
    verdict,
)

STATUS = """\
Name:\tpython
Umask:\t0022
State:\tS (sleeping)
Pid:\t4242
PPid:\t1
VmPeak:\t  812345 kB
VmHWM:\t   99999 kB
VmRSS:\t   61234 kB
RssAnon:\t   40000 kB
Threads:\t17
SigQ:\t0/95694
"""


def fake_proc(root: Path, pid: int, status: str, fds: int, ppid: int, comm: str) -> None:
    d = root / str(pid)
    (d / "fd").mkdir(parents=True)
    (d / "status").write_text(status)
    for n in range(fds):
        (d / "fd" / str(n)).write_text("")
    (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560\n")
    (d / "cmdline").write_bytes(comm.encode() + b"\0--flag\0")


def test_parse_status_reads_rss_and_threads_only() -> None:
    assert parse_status(STATUS) == {"VmRSS": 61234, "Threads": 17}


def test_parse_status_of_a_zombie_has_no_rss() -> None:
    assert parse_status("Name:\tx\nState:\tZ (zombie)\nThreads:\t1\n") == {"Threads": 1}


def test_ppid_is_read_after_a_command_name_holding_spaces_and_parentheses() -> None:
    assert parse_stat_ppid("77 (a (weird) name) S 1234 77 77 0 -1") == 1234


def test_sample_process_from_a_proc_tree(tmp_path: Path) -> None:
    fake_proc(tmp_path, 4242, STATUS, fds=5, ppid=1, comm="python")
    assert sample_process(4242, tmp_path) == ProcSample(rss_kb=61234, threads=17, fds=5)
    assert sample_process(4243, tmp_path) is None  # gone


def test_sample_process_of_a_zombie_is_none(tmp_path: Path) -> None:
    fake_proc(tmp_path, 9, "Name:\tx\nThreads:\t1\n", fds=0, ppid=1, comm="x")
    assert sample_process(9, tmp_path) is None


def test_children_of_lists_direct_children_only(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, STATUS, fds=1, ppid=1, comm="parent")
    fake_proc(tmp_path, 11, STATUS, fds=1, ppid=10, comm="moto_server")
    fake_proc(tmp_path, 12, STATUS, fds=1, ppid=11, comm="grandchild")
    (tmp_path / "self").mkdir()
    assert children_of(10, tmp_path) == {11: "moto_server --flag"}


def test_sample_process_sees_a_real_child_open_files() -> None:
    """The live /proc: a child holding 20 more files shows 20 more fds."""
    code = (
        "import sys, time; fs = [open(sys.executable, 'rb') for _ in range(int(sys.argv[1]))]; "
        "print('ready', flush=True); time.sleep(30)"
    )
    counts = []
    for opened in (0, 20):
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(opened)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            got = sample_process(child.pid)
            assert got is not None
            assert got.threads >= 1 and got.rss_kb > 1000
            counts.append(got.fds)
        finally:
            child.kill()
            child.wait()
    assert counts[1] - counts[0] == 20
    assert os.getpid() in {int(p) for p in os.listdir("/proc") if p.isdigit()}


def test_slope_is_exact_on_a_line_and_zero_when_undefined() -> None:
    assert slope([(0, 1), (1, 3), (2, 5), (3, 7)]) == pytest.approx(2.0)
    assert slope([(5, 1)]) == 0.0
    assert slope([(5, 1), (5, 9)]) == 0.0


def test_second_half_starts_at_the_middle_of_the_time_span() -> None:
    points = [(float(t), float(t)) for t in range(0, 101, 10)]
    assert [t for t, _ in second_half(points)] == [50, 60, 70, 80, 90, 100]


def minutes_of(values_per_sample: list[float], every_s: float = 5.0) -> list[tuple[float, float]]:
    return [(i * every_s, v) for i, v in enumerate(values_per_sample)]


def test_rss_growing_20_mb_an_hour_after_warm_up_is_growing() -> None:
    # 30 minutes, 5 s samples: warm-up climb, then +20 MB/h (a real leak).
    points = [(t, 100 + (t / 3600) * 20 + (30 if t > 60 else t / 2)) for t in range(0, 1801, 5)]
    v = verdict("apply", "rss_mb", points, THRESHOLDS["rss_mb"])
    assert not v.flat
    assert v.slope_per_h == pytest.approx(20, rel=0.01)
    assert v.delta == pytest.approx(5, abs=0.1)  # 15 minutes at 20 MB/h


def test_rss_flat_after_warm_up_with_noise_is_flat() -> None:
    points = [(t, 150 + (0.3 if (t // 5) % 2 else -0.3)) for t in range(0, 1801, 5)]
    points = [(0.0, 90.0), (5.0, 120.0), *points[2:]]  # the warm-up is ignored
    v = verdict("stream", "rss_mb", points, THRESHOLDS["rss_mb"])
    assert v.flat
    assert abs(v.slope_per_h) < 1


def test_rss_step_within_the_allocator_noise_is_flat_even_in_a_short_run() -> None:
    # 3 minutes: a single 1 MB step in the second half extrapolates to > 10 MB/h.
    points = [(float(t), 100.0 if t < 150 else 101.0) for t in range(0, 181, 5)]
    v = verdict("stream", "rss_mb", points, THRESHOLDS["rss_mb"])
    assert v.slope_per_h > 10
    assert v.flat


def test_fds_growing_one_per_back_fill_is_growing() -> None:
    points = [(float(t), 40.0 + t // 300) for t in range(0, 1801, 5)]  # +1 every 5 minutes
    v = verdict("stream", "fds", points, THRESHOLDS["fds"])
    assert v.delta == 3
    assert not v.flat


def test_fds_wobbling_by_one_are_flat_and_a_drop_of_three_is_not() -> None:
    wobble = [(float(t), 40.0 + (t // 5) % 2) for t in range(0, 601, 5)]
    assert verdict("apply", "fds", wobble, THRESHOLDS["fds"]).flat
    drop = [(float(t), 40.0 if t < 450 else 37.0) for t in range(0, 601, 5)]
    assert not verdict("apply", "fds", drop, THRESHOLDS["fds"]).flat


def test_one_sample_is_no_verdict() -> None:
    v = verdict("apply", "threads", [(0.0, 12.0)], THRESHOLDS["threads"])
    assert not v.flat
    assert "TOO FEW SAMPLES" in v.line()


def test_series_leaves_out_the_drain_and_absent_processes() -> None:
    def row(t: float, phase: str, rss_kb: int | None) -> dict[str, object]:
        procs = {} if rss_kb is None else {"stream": {"rss_kb": rss_kb, "fds": 9, "threads": 3}}
        return {"t": t, "phase": phase, "processes": procs}

    samples = [row(0, "run", 2048), row(5, "run", None), row(10, "run", 3072), row(15, "drain", 1)]
    assert series(samples, "stream", "rss_mb") == [(0.0, 2.0), (10.0, 3.0)]  # type: ignore[arg-type]
    assert series(samples, "stream", "fds") == [(0.0, 9.0), (10.0, 9.0)]  # type: ignore[arg-type]
    found = verdicts(samples)  # type: ignore[arg-type]
    assert {(v.process, v.metric) for v in found} == {
        (p, m) for p in ("stream", "apply") for m in ("rss_mb", "fds", "threads")
    }
    assert not next(v for v in found if v.process == "apply").flat  # no samples, no verdict


def test_each_back_fill_gets_the_peaks_of_its_own_window() -> None:
    from benchmarks.soak import BackfillRun, SoakRun, backfill_verdicts

    def row(t: float, rss_kb: int | None) -> dict[str, object]:
        procs = {} if rss_kb is None else {"backfill": {"rss_kb": rss_kb, "fds": 10, "threads": 9}}
        return {"t": t, "phase": "run", "processes": procs}

    run = SoakRun(
        samples=[row(0, None), row(5, 51200), row(10, 102400), row(15, None), row(20, 20480)],
        backfills=[
            BackfillRun(started_s=4, ended_s=12, exit_code=0),
            BackfillRun(started_s=18, ended_s=21.5, exit_code=0),
        ],
    )
    first, second = backfill_verdicts(run)
    assert (first["samples"], first["peak_rss_mb"], first["duration_s"]) == (2, 100.0, 8.0)
    assert (second["samples"], second["peak_rss_mb"], second["duration_s"]) == (1, 20.0, 3.5)


def test_tracemalloc_report_names_the_line_that_grew() -> None:
    import tracemalloc

    from benchmarks.soak_tracemalloc import _snapshot, report

    tracemalloc.start(5)
    try:
        baseline = _snapshot()
        held = [bytes(1000) + bytes([i % 256]) for i in range(2000)]  # ~2 MB kept alive
        text = report(_snapshot(), baseline, 60.0)
    finally:
        tracemalloc.stop()
    assert len(held) == 2000
    first = text.splitlines()[1]  # the largest growth, after the header
    assert first.endswith(f"{Path(__file__).name}:{held_line()}"), text
    assert float(first.split()[0]) > 1500  # KiB


def held_line() -> int:
    """The line of `held = ...` above, found rather than hard-coded."""
    lines = Path(__file__).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip().startswith("held = ["))
