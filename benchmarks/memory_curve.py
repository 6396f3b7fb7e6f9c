"""A process's resident memory against the items it has done, and whether it stays flat.

`RssSampler` polls one process (its VmRSS, and a progress count the caller supplies: records
in Kafka, committed offsets) every ~0.5 s. `rss_at(samples, n)` is the memory when `n` items
were done: the first sample at or past `n` (RSS sampled in the same step as the count), or
the last sample taken while the process was alive when it finished before that sample. The
flatness of a run is `rss_at(big) / rss_at(small)`: 1.0 is flat; memory that grows with the
items done shows as a ratio well above 1 (e.g. a dict per key: ~5x from 200k to 1M).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.procfs import descendants, parents, rss_mb


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float  # since the sampler started
    items: int
    rss_mb: float  # the watched process and its descendants (helpers of --processes N)


def rss_at(samples: Sequence[Sample], items: int) -> float | None:
    """RSS when `items` were done; None when no sample reached it."""
    for sample in samples:
        if sample.items >= items:
            return sample.rss_mb
    return None


def peak(samples: Sequence[Sample]) -> float:
    return max((s.rss_mb for s in samples), default=0.0)


def flatness(samples: Sequence[Sample], small: int, big: int) -> float | None:
    """rss_at(big) / rss_at(small): ~1.0 flat, > 1 growing with items done."""
    at_small, at_big = rss_at(samples, small), rss_at(samples, big)
    if at_small is None or at_big is None or at_small <= 0:
        return None
    return at_big / at_small


def growth_mb_per_100k(samples: Sequence[Sample], small: int, big: int) -> float | None:
    """MB gained per 100,000 items from `small` to `big` items: the slope a leak would show."""
    at_small, at_big = rss_at(samples, small), rss_at(samples, big)
    if at_small is None or at_big is None or big <= small:
        return None
    return (at_big - at_small) / (big - small) * 100_000


def tree_rss_mb(pid: int) -> float | None:
    """RSS of `pid` and its descendants; None once `pid` itself has exited."""
    own = rss_mb(pid)
    if own is None:
        return None
    total = own
    for child in descendants(pid, parents())[1:]:
        total += rss_mb(child) or 0.0
    return total


class RssSampler:
    """Samples one process until `done()` says so or the process exits."""

    def __init__(
        self,
        pid: int,
        progress: Callable[[], int],
        interval_s: float = 0.5,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.pid = pid
        self.progress = progress
        self.interval_s = interval_s
        self.say = say
        self.samples: list[Sample] = []

    def sample_once(self, started: float) -> Sample | None:
        rss = tree_rss_mb(self.pid)
        if rss is None:
            return None
        items = self.progress()
        sample = Sample(round(time.monotonic() - started, 2), items, round(rss, 1))
        self.samples.append(sample)
        return sample

    def run(self, done: Callable[[Sample], bool], alive: Callable[[], bool]) -> None:
        """Sample until `done(sample)` or `alive()` turns False; then one last count, so a
        process that finished between samples still reaches its final item count (with the
        RSS of its last sample while alive)."""
        started = time.monotonic()
        last_said = 0.0
        while alive():
            sample = self.sample_once(started)
            if sample is None:
                break
            if self.say and sample.seconds - last_said >= 10:
                last_said = sample.seconds
                self.say(
                    f"    {sample.seconds:6.1f}s {sample.items:>10,} items {sample.rss_mb:6.1f} MB"
                )
            if done(sample):
                return
            time.sleep(self.interval_s)
        if self.samples:
            last = self.samples[-1]
            final = self.progress()
            if final > last.items:
                seconds = round(time.monotonic() - started, 2)
                self.samples.append(Sample(seconds, final, last.rss_mb))

    def as_json(self) -> list[list[Any]]:
        return [[s.seconds, s.items, s.rss_mb] for s in self.samples]
