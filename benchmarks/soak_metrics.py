"""The pure parts of the soak benchmark (benchmarks/soak.py): what a process uses, read from
/proc, and whether a series of samples is flat or growing.

A long-lived daemon leaks when its resident memory, open file descriptors or threads keep
growing after warm-up. The verdict looks only at the second half of the run (the first half
is warm-up: imports, caches, the first back-fill, connection pools filling) and gives two
figures per metric: the least-squares slope scaled to one hour, and the last sample minus the
first sample of that half. The thresholds are stated beside every verdict (THRESHOLDS).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcSample:
    rss_kb: int
    threads: int
    fds: int


def parse_status(text: str) -> dict[str, int]:
    """VmRSS (kB) and Threads from the text of /proc/<pid>/status; a key the kernel did not
    write (VmRSS is absent for a zombie) is absent here too."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("VmRSS", "Threads"):
            out[key] = int(value.split()[0])
    return out


def parse_stat_ppid(text: str) -> int:
    """The parent pid from the text of /proc/<pid>/stat. The command name (field 2) is in
    parentheses and may itself hold spaces and parentheses, so fields are counted after the
    last ')'."""
    rest = text[text.rindex(")") + 2 :].split()
    return int(rest[1])  # rest[0] is the state, rest[1] the ppid


def sample_process(pid: int, proc: Path = PROC) -> ProcSample | None:
    """RSS, threads and open fds of `pid`, or None when it is gone (or a zombie)."""
    try:
        status = parse_status((proc / str(pid) / "status").read_text())
        fds = len(os.listdir(proc / str(pid) / "fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    if "VmRSS" not in status or "Threads" not in status:
        return None
    return ProcSample(rss_kb=status["VmRSS"], threads=status["Threads"], fds=fds)


def children_of(pid: int, proc: Path = PROC) -> dict[int, str]:
    """pid -> command line of every live direct child of `pid`."""
    out: dict[int, str] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if parse_stat_ppid((entry / "stat").read_text()) != pid:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
        out[int(entry.name)] = cmdline.strip()
    return out


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points, in y per unit of x; 0 for fewer than 2 distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var_x = sum((x - mean_x) ** 2 for x, _ in points)
    if var_x == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var_x


def second_half(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points from the middle of the time span on (the warm-up is the first half)."""
    if not points:
        return []
    start, end = points[0][0], points[-1][0]
    middle = start + (end - start) / 2
    return [p for p in points if p[0] >= middle]


@dataclass(frozen=True)
class Threshold:
    """When a metric counts as flat over the second half.

    `max_slope_per_h`: the least-squares growth per hour may not exceed it. `max_delta`: the
    last-minus-first growth may not exceed it. `either`: flat when either bound holds (RSS:
    a slope from a few minutes is extrapolated sixty-fold, so a step of the allocator within
    `max_delta` is not called a leak); otherwise both must hold (fds and threads, whose
    samples are exact counts: the fitted growth over the window and last-minus-first must
    both stay within +-max_delta).
    """

    unit: str
    max_slope_per_h: float | None
    max_delta: float
    either: bool


# RSS in MB; fds and threads in counts.
THRESHOLDS: dict[str, Threshold] = {
    "rss_mb": Threshold("MB", max_slope_per_h=10.0, max_delta=2.0, either=True),
    "fds": Threshold("fds", max_slope_per_h=None, max_delta=2.0, either=False),
    "threads": Threshold("threads", max_slope_per_h=None, max_delta=2.0, either=False),
}


def describe(threshold: Threshold) -> str:
    if threshold.max_slope_per_h is not None and threshold.either:
        return (
            f"slope <= {threshold.max_slope_per_h:g} {threshold.unit}/h or second-half growth "
            f"<= {threshold.max_delta:g} {threshold.unit}"
        )
    return f"second-half growth and fitted growth within +-{threshold.max_delta:g} {threshold.unit}"


@dataclass(frozen=True)
class Verdict:
    process: str
    metric: str
    samples: int
    window_s: float
    slope_per_h: float
    delta: float
    fitted_growth: float
    flat: bool
    threshold: str

    def line(self) -> str:
        state = "FLAT" if self.flat else "GROWING"
        if self.samples < 2:
            state = "TOO FEW SAMPLES"
        return (
            f"{self.process:<8} {self.metric:<8} {state:<8} slope {self.slope_per_h:+.2f}/h, "
            f"second half last-first {self.delta:+.2f} over {self.window_s:.0f}s "
            f"({self.samples} samples; flat: {self.threshold})"
        )


def verdict(
    process: str, metric: str, points: Sequence[tuple[float, float]], threshold: Threshold
) -> Verdict:
    """Flat or growing, from the second half of `points` ((seconds, value) in time order)."""
    half = second_half(points)
    window = half[-1][0] - half[0][0] if len(half) >= 2 else 0.0
    per_s = slope(half)
    delta = half[-1][1] - half[0][1] if len(half) >= 2 else 0.0
    fitted = per_s * window
    if len(half) < 2:
        flat = False
    elif threshold.either and threshold.max_slope_per_h is not None:
        flat = per_s * 3600 <= threshold.max_slope_per_h or delta <= threshold.max_delta
    else:
        slope_ok = threshold.max_slope_per_h is None or per_s * 3600 <= threshold.max_slope_per_h
        flat = slope_ok and abs(delta) <= threshold.max_delta and abs(fitted) <= threshold.max_delta
    return Verdict(
        process=process,
        metric=metric,
        samples=len(half),
        window_s=window,
        slope_per_h=per_s * 3600,
        delta=delta,
        fitted_growth=fitted,
        flat=flat,
        threshold=describe(threshold),
    )
