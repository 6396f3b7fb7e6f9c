"""`python -m benchmarks [NAME ...]` (what `make bench` runs): every benchmarks/bench_*.py.

Each bench module exposes `main(argv: list[str] | None = None) -> None`, starts the services
it needs itself, and prints its figures next to a same-run baseline and their ratio. Figures
are printed, never asserted: speed is measured here, not in the test suite.
"""

from __future__ import annotations

import importlib
import pkgutil
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
        importlib.import_module(f"benchmarks.{name}").main([])


if __name__ == "__main__":
    main(sys.argv[1:])
