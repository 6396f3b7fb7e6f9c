"""Percentiles of latency samples, as benchmarks/bench_latency.py reports them.

Nearest-rank percentiles: p-th percentile = the smallest sample with at least p % of the
samples at or below it. Every reported figure is then a latency some write really had (no
interpolation between two writes), and p100 is the max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

QUANTILES = (50, 95, 99)


def percentile(samples: Sequence[float], p: float) -> float:
    """The nearest-rank `p`-th percentile (0 < p <= 100) of `samples` (not empty)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {p}")
    ordered = sorted(samples)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[rank - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """count, p50, p95, p99, max and mean of `samples` (count 0 and nothing else if empty)."""
    if not samples:
        return {"count": 0}
    out: dict[str, float] = {"count": len(samples)}
    for q in QUANTILES:
        out[f"p{q}"] = percentile(samples, q)
    out["max"] = max(samples)
    out["mean"] = sum(samples) / len(samples)
    return out
