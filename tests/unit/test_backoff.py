"""The one retry policy (bridge/model/backoff.py): its bounds, its jitter ranges and its stop.

Clock and random are injected: no test here sleeps to learn what a delay would be.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from bridge.model.backoff import Backoff, Stop


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Extremes(random.Random):
    """uniform(a, b) answers a or b alternately: the ends of each jitter range."""

    def __init__(self) -> None:
        super().__init__(0)
        self.high = False

    def uniform(self, a: float, b: float) -> float:
        self.high = not self.high
        return b if self.high else a


def test_the_ceiling_doubles_from_base_up_to_the_cap() -> None:
    policy = Backoff(base_s=0.1, cap_s=1.0)
    assert [policy.ceiling(n) for n in (1, 2, 3, 4, 5, 99, 10**6)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.0,
        1.0,
        1.0,
    ]


@pytest.mark.parametrize(
    ("jitter", "low", "high"),
    [("full", 0.0, 1.0), ("equal", 0.5, 1.0)],
)
def test_each_jitter_stays_in_its_range(jitter: str, low: float, high: float) -> None:
    policy = Backoff(base_s=0.1, cap_s=1.0, jitter=jitter, rng=Extremes())  # type: ignore[arg-type]
    ends = [policy.delay(8), policy.delay(8)]
    assert ends == [high, low]
    spread = Backoff(base_s=0.1, cap_s=1.0, jitter=jitter, rng=random.Random(7))  # type: ignore[arg-type]
    delays = [spread.delay(n) for n in range(1, 40)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert len({round(d, 9) for d in delays[10:]}) > 10, "jittered, not lockstep"


def test_decorrelated_jitter_grows_from_the_previous_delay_and_stays_capped() -> None:
    policy = Backoff(base_s=0.1, cap_s=2.0, jitter="decorrelated", rng=random.Random(3))
    attempts = policy.start()
    previous = 0.1
    for _ in range(50):
        delay = attempts.failed()
        assert delay is not None
        assert 0.1 <= delay <= min(2.0, previous * 3) + 1e-12
        previous = delay


def test_a_bound_on_retries_gives_up_after_that_many() -> None:
    attempts = Backoff(base_s=0.1, cap_s=1.0, max_retries=3).start()
    assert [attempts.failed() is not None for _ in range(4)] == [True, True, True, False]
    assert attempts.failures == 4
    attempts.reset()
    assert attempts.failed() is not None, "a success starts the count again"
    assert Backoff(max_retries=3).exhausted(4) and not Backoff(max_retries=3).exhausted(3)
    assert not Backoff().exhausted(10**6), "no bound: retried until stopped"


def test_a_bound_on_time_gives_up_before_a_pause_would_pass_it() -> None:
    clock = FakeClock()
    policy = Backoff(base_s=1.0, cap_s=1.0, jitter="none", max_elapsed_s=2.5, clock=clock)
    attempts = policy.start()
    assert attempts.failed() == 1.0
    clock.now += 1.0
    assert attempts.failed() == 1.0
    clock.now += 1.0
    assert attempts.failed() is None, "2.0 s spent + 1.0 s pause > 2.5 s"


def test_a_stop_interrupts_the_wait_promptly() -> None:
    stop = Stop()
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    assert stop.wait(60.0) is True
    assert time.monotonic() - started < 5
    assert stop.is_set()


def test_the_async_wait_returns_early_on_a_stop_and_waits_out_otherwise() -> None:
    async def scenario() -> tuple[bool, bool, float]:
        stop = Stop()
        quiet = await stop.wait_async(0.01)
        asyncio.get_running_loop().call_later(0.05, stop.set)
        started = time.monotonic()
        stopped = await stop.wait_async(60.0)
        return quiet, stopped, time.monotonic() - started

    quiet, stopped, took = asyncio.run(scenario())
    assert quiet is False and stopped is True and took < 5


def test_nonsense_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="cap_s"):
        Backoff(base_s=2.0, cap_s=1.0)
    with pytest.raises(ValueError, match="max_retries"):
        Backoff(max_retries=-1)
