"""Run a module under tracemalloc and write its top allocations when asked (bench_memory
`--tracemalloc`): where a process's memory goes, by source line, at chosen item counts.

    python -m benchmarks.traced_child OUT_PREFIX MODULE [ARGS...]

A daemon thread watches for `OUT_PREFIX.<label>.ask`; when one appears it writes
`OUT_PREFIX.<label>.txt` (the 25 source lines holding the most traced memory, and the
total) and removes the ask. Tracing slows the process a few times: its figures are for
finding a growth, not for the memory table.
"""

from __future__ import annotations

import glob
import os
import runpy
import sys
import threading
import time
import tracemalloc

TOP = 25


def write_top(path: str) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    lines = [f"traced total {total / 2**20:.1f} MB in {len(stats)} lines"]
    lines += [f"{s.size / 2**20:8.2f} MB {s.count:>9} blocks  {s.traceback}" for s in stats[:TOP]]
    with open(path + ".tmp", "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def watch(prefix: str) -> None:
    while True:
        for ask in glob.glob(glob.escape(prefix) + ".*.ask"):
            write_top(ask.removesuffix(".ask") + ".txt")
            os.remove(ask)
        time.sleep(0.2)


def main() -> None:
    prefix, module, *args = sys.argv[1:]
    tracemalloc.start(1)
    threading.Thread(target=watch, args=(prefix,), name="tracemalloc-dump", daemon=True).start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
