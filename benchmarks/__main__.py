"""`python -m benchmarks [NAME ...]` (what `make bench` runs): every benchmarks/bench_*.py.

Each bench module exposes `main(argv: list[str] | None = None) -> None`, starts the services
it needs itself, and prints its figures next to a same-run baseline and their ratio. Figures
are printed, never asserted: speed is measured here, not in the test suite.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    chosen = [n for n in names if not argv or n in argv or n.removeprefix("bench_") in argv]
    if not chosen:
        sys.exit(f"no benchmark matches {argv}; known: {', '.join(names)}")
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        # Each in a process of its own: on Linux a child's peak RSS (what bench_export reads
        # with wait4) starts from its parent's RSS at fork, so a benchmark run after another
        # in one process reported the earlier one's memory (~300 MB instead of ~80 MB).
        done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=False)
        if done.returncode != 0:
            sys.exit(f"{name} failed with exit code {done.returncode}")


if __name__ == "__main__":
    main(sys.argv[1:])
