"""`python -m benchmarks [NAME ...] [--flag value ...]` (what `make bench` runs).

Runs every benchmarks/bench_*.py (or those named), each in a process of its own; flags after
the names go to each chosen benchmark (e.g. `python -m benchmarks export --items 100000`).
Each bench module exposes `main(argv)`, starts the services it needs itself, prints its
figures next to a same-run baseline and their ratio, and writes them to
benchmarks/results/<name>.json (benchmarks/report.py). At the end the figures of this run are
printed again as one Markdown table, ratios first, with the CPU µs per item of the
bridge's process (and of the baseline's) beside each rate: the table of docs/performance.md
is that output. Figures are printed, never asserted: speed is measured here, not in the test suite.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import RESULTS_DIR


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Benchmark names (everything before the first flag) and the flags passed on."""
    for i, arg in enumerate(argv):
        if arg.startswith("-"):
            return argv[:i], argv[i:]
    return argv, []


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def _cpu(fig: dict[str, Any]) -> str:
    """The CPU µs per item of the bridge's process, and of the baseline's in parentheses."""
    ours, base = fig.get("cpu_us_per_item"), fig.get("baseline_cpu_us_per_item")
    if ours is None:
        return "-"
    return _num(ours) + ("" if base is None else f" ({_num(base)})")


def table(results: list[dict[str, Any]]) -> str:
    """The figures of `results` (benchmarks/results/*.json) as a Markdown table."""
    rows = [
        "| benchmark | path | ratio | measured | CPU µs/item: bridge (baseline) "
        "| same-run baseline | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for fig in result["figures"]:
            goal = []
            if fig.get("goal_ratio") is not None:
                goal.append(f"ratio >= {fig['goal_ratio']}")
            if fig.get("goal_value") is not None:
                goal.append(f">= {_num(fig['goal_value'], fig['unit'])}")
            if fig.get("note"):
                goal.append(fig["note"])
            ratio = "-" if fig.get("ratio") is None else f"**{fig['ratio']:.2f}**"
            base = (
                f"{fig['baseline']}: {_num(fig['baseline_value'], fig['unit'])}"
                if fig.get("baseline")
                else "-"
            )
            rows.append(
                f"| {result['benchmark']} | {fig['path']} | {ratio} | "
                f"{_num(fig['value'], fig['unit'])} | {_cpu(fig)} | {base} | "
                f"{'; '.join(goal) or '-'} |"
            )
    first = results[0] if results else None
    if first is not None:
        m = first["machine"]
        rows.append("")
        rows.append(
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python "
            f"{m['python']}; broker: {first.get('broker') or 'none'}; commit {first['commit']}."
        )
    return "\n".join(rows)


def main(argv: list[str]) -> None:
    # The broker and Cassandra node measured against run at full speed (both JIT tiers), not
    # in the tests' cheaper first tier (ddb_bridge/services/kafka_jars.py: SHORT_LIVED_JVM).
    # Set here, for the benchmarks' processes: set at import, the tests that import a
    # benchmark's module turned it on for every service of their pytest worker.
    os.environ.setdefault("DDB_BRIDGE_SERVICES_JIT", "full")
    names, flags = split_args(argv)
    here = Path(__file__).parent
    known = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    chosen = [n for n in known if not names or n in names or n.removeprefix("bench_") in names]
    if not chosen or (names and len(chosen) < len(names)):
        sys.exit(f"no benchmark matches {names}; known: {', '.join(known)}")
    started = time.time()
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        # Each in a process of its own: on Linux a child's peak RSS (what bench_export reads
        # with wait4) starts from its parent's RSS at fork, so a benchmark run after another
        # in one process reported the earlier one's memory (~300 MB instead of ~80 MB).
        done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *flags], check=False)
        if done.returncode != 0:
            sys.exit(f"{name} failed with exit code {done.returncode}")
    fresh = [
        json.loads(p.read_text())
        for p in sorted(RESULTS_DIR.glob("*.json"))
        if p.stat().st_mtime >= started
    ]
    print("\n=== this run, ratios first (benchmarks/results/*.json) ===\n")
    print(table(fresh))


if __name__ == "__main__":
    main(sys.argv[1:])
