"""What every benchmark reports besides its figures: the machine, the broker, Python — and
where the figures go (`benchmarks/results/<name>.json`, which the tables of
docs/performance.md are built from).

Usage in a bench module:

    results = Results("publish")            # prints the machine and Python at once
    with bench_broker(results) as bootstrap: # records which broker it ran against
        ...
        results.figure("publish", measured, "events/s", baseline=("produce pre-encoded", base),
                       goal_ratio=0.5,        # prints the line, with the ratio first,
                       cpu_us_per_item=cpu.us_per(n))  # and the bridge's CPU per item
    results.write()                          # benchmarks/results/publish.json

Absolute figures move ~2.5x between machines of the same kind; the ratio to a baseline taken
in the same run on the same machine is what carries over, so it is printed first and stored
beside both absolute figures.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR", Path(__file__).parent / "results"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine a figure was taken on: CPU model, cores, memory, kernel."""
    memory_gib: float | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


@dataclass
class Figure:
    path: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline_value: float | None = None
    goal_ratio: float | None = None
    goal_value: float | None = None
    note: str | None = None
    # CPU µs the bridge's process spent per item (benchmarks/procfs.py), and the baseline's
    # process per item: unlike items/s, this carries over to a machine of other speed.
    cpu_us_per_item: float | None = None
    baseline_cpu_us_per_item: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline_value is None or self.baseline_value <= 0:
            return None
        return self.value / self.baseline_value

    def line(self) -> str:
        parts = []
        if self.ratio is not None:
            parts.append(f"ratio {self.ratio:.2f}")
        cpu = "" if self.cpu_us_per_item is None else f", CPU {self.cpu_us_per_item:,.1f} µs/item"
        parts.append(f"{self.path}: {self.value:,.0f} {self.unit}{cpu}")
        if self.baseline_name is not None and self.baseline_value is not None:
            base_cpu = (
                ""
                if self.baseline_cpu_us_per_item is None
                else f", CPU {self.baseline_cpu_us_per_item:,.1f} µs/item"
            )
            parts.append(
                f"same-run baseline {self.baseline_name}: {self.baseline_value:,.0f}{base_cpu}"
            )
        goals = []
        if self.goal_ratio is not None:
            goals.append(f"ratio >= {self.goal_ratio}")
        if self.goal_value is not None:
            goals.append(f">= {self.goal_value:,.0f} {self.unit}")
        if goals:
            parts.append("goal " + ", ".join(goals))
        if self.note:
            parts.append(self.note)
        return " | ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline_name,
            "baseline_value": self.baseline_value,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "goal_ratio": self.goal_ratio,
            "goal_value": self.goal_value,
            "note": self.note,
            "cpu_us_per_item": _round(self.cpu_us_per_item),
            "baseline_cpu_us_per_item": _round(self.baseline_cpu_us_per_item),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass
class Results:
    """The figures of one benchmark run, printed as they come and written at the end."""

    name: str
    quiet: bool = False
    broker: str | None = None
    figures: list[Figure] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    started: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    )

    def __post_init__(self) -> None:
        self.machine = machine()
        if not self.quiet:
            m = self.machine
            print(
                f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; "
                f"Python {m['python']}",
                flush=True,
            )

    def set_broker(self, description: str) -> None:
        self.broker = description

    def figure(
        self,
        path: str,
        value: float,
        unit: str,
        *,
        baseline: tuple[str, float] | None = None,
        goal_ratio: float | None = None,
        goal_value: float | None = None,
        note: str | None = None,
        cpu_us_per_item: float | None = None,
        baseline_cpu_us_per_item: float | None = None,
    ) -> Figure:
        fig = Figure(
            cpu_us_per_item=cpu_us_per_item,
            baseline_cpu_us_per_item=baseline_cpu_us_per_item,
            path=path,
            value=value,
            unit=unit,
            baseline_name=baseline[0] if baseline else None,
            baseline_value=baseline[1] if baseline else None,
            goal_ratio=goal_ratio,
            goal_value=goal_value,
            note=note,
        )
        self.figures.append(fig)
        if not self.quiet:
            print(fig.line(), flush=True)
        return fig

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "started": self.started,
            "commit": _commit(),
            "machine": self.machine,
            "broker": self.broker,
            "command": " ".join([Path(sys.executable).name, "-m", "benchmarks", self.name]),
            "figures": [f.as_json() for f in self.figures],
            **({"extra": self.extra} if self.extra else {}),
        }

    def write(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"{self.name}.json"
        out.write_text(json.dumps(self.as_json(), indent=2) + "\n")
        if not self.quiet:
            print(f"results: {out}", flush=True)
        return out
