"""Runs one `ddb-bridge` command under tracemalloc and writes what grows: the soak's leak finder.

`python -m benchmarks.soak_tracemalloc OUT INTERVAL_S -- stream --config bridge.toml` runs the
command in this process with tracemalloc on (one frame: the allocating line). The first
snapshot, INTERVAL_S after start, is the baseline (after warm-up); every INTERVAL_S after that,
the 15 source lines whose live allocations grew most since the baseline, and since the last
report, are appended to OUT, with the traced total. A line that keeps climbing from report to
report is the leak. `python -m benchmarks.soak --trace-malloc` starts stream and apply this way
(tracemalloc slows them, and its own tables grow with every live allocation: their RSS figures
are then not comparable with a plain run; read the traced totals instead).
"""

from __future__ import annotations

import sys
import threading
import time
import tracemalloc
from pathlib import Path

TOP = 15


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
            tracemalloc.Filter(False, "<unknown>"),
        ]
    )


def report(
    snapshot: tracemalloc.Snapshot,
    baseline: tracemalloc.Snapshot,
    elapsed_s: float,
    since: str = "baseline",
) -> str:
    """The lines that grew most since `baseline`, one per line, largest growth first."""
    current, _peak = tracemalloc.get_traced_memory()
    lines = [f"== {elapsed_s:.0f}s: traced {current / 1024:.0f} KiB; growth since {since}:"]
    for stat in snapshot.compare_to(baseline, "lineno")[:TOP]:
        frame = stat.traceback[0]
        lines.append(
            f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  "
            f"{frame.filename}:{frame.lineno}"
        )
    return "\n".join(lines) + "\n"


def watch(out: Path, interval_s: float) -> None:
    started = time.monotonic()
    time.sleep(interval_s)
    baseline = _snapshot()
    with out.open("a") as f:
        f.write(f"== baseline at {time.monotonic() - started:.0f}s\n")
    previous = baseline
    while True:
        time.sleep(interval_s)
        snapshot = _snapshot()
        elapsed = time.monotonic() - started
        # Since the baseline: what piled up (warm-up leftovers included); since the last
        # report: what is still growing now, which a leak keeps showing.
        text = report(snapshot, baseline, elapsed) + report(
            snapshot, previous, elapsed, "the last report"
        )
        previous = snapshot
        with out.open("a") as f:
            f.write(text)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        raise SystemExit("usage: python -m benchmarks.soak_tracemalloc OUT INTERVAL_S -- ARGS...")
    out, interval_s, command = Path(argv[0]), float(argv[1]), argv[3:]
    tracemalloc.start(1)  # the allocating line only: more frames slow start-up ~5x
    threading.Thread(target=watch, args=(out, interval_s), name="tracemalloc", daemon=True).start()
    from ddb_bridge.cli.main import main as cli_main

    return cli_main(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
