"""The broker the benchmarks measure against, and the line that says which one it is.

Apache Kafka 4.4.0 when Java 17+ can run it (the broker the tests use), else the embedded
Tansu broker; `BENCH_BROKER=kafka|tansu|auto` (default auto) picks one. Figures taken on one
broker are not comparable with figures taken on the other: every benchmark prints which
broker it ran on beside its same-run baseline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from ddb_bridge.demo.brokers import BROKER_MODES, BrokerMode, demo_broker

if TYPE_CHECKING:
    from benchmarks.report import Results


@contextmanager
def bench_broker(results: Results | None = None) -> Iterator[str]:
    mode = os.environ.get("BENCH_BROKER", "auto")
    if mode not in BROKER_MODES:
        raise SystemExit(f"BENCH_BROKER must be one of {', '.join(BROKER_MODES)}, not {mode!r}")

    def say(line: str) -> None:
        print(f"broker: {line}", flush=True)
        if results is not None:
            results.set_broker(line)

    with demo_broker(cast(BrokerMode, mode), say) as bootstrap:
        yield bootstrap
