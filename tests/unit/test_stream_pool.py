"""The reader pool every shard shares (a global cap on concurrent steps, soonest due first,
early wake-up on stop) and the idle backoff of a shard's GetRecords calls."""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import ValidationError

from bridge.runtime.settings import StreamSettings
from connectors.sources.stream.pool import IdleBackoff, ReaderPool
from tests.support.wait import wait_until


def test_idle_backoff_waits_after_data_doubles_while_empty_and_skips_after_full_pages() -> None:
    idle = IdleBackoff(0.25, 5.0)
    assert idle.after(1000, full=True) == 0.0  # a backlog: read on at once
    assert idle.after(10) == 0.25  # at the tip: the first pause
    assert [idle.after(0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert idle.after(1) == 0.25  # data resets it
    assert idle.after(0) == 0.5
    fresh = IdleBackoff(0.25, 5.0)
    assert fresh.after(0) == 0.25  # an empty first page starts at the first pause
    # 14,400 calls an hour at a fixed 250 ms; at a 5 s cap an idle shard makes 720.
    assert 3600 / fresh.max_s == 720


def test_idle_backoff_never_below_its_first_step() -> None:
    assert IdleBackoff(1.0, 0.5).max_s == 1.0
    none = IdleBackoff(0.0, 0.0)
    assert [none.after(0) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_settings_refuse_a_cap_below_the_first_pause() -> None:
    with pytest.raises(ValidationError, match="idle_poll_max_ms .* below .*poll_interval_ms"):
        StreamSettings(poll_interval_ms=1000, idle_poll_max_ms=500)
    with pytest.raises(ValidationError, match="max_concurrent_requests"):
        StreamSettings(max_concurrent_requests=0)


class CountingTask:
    """Steps `steps` times; records each step's order and the pool's concurrency."""

    def __init__(self, name: str, steps: int, probe: Probe, delay_s: float = 0.0) -> None:
        self.name = name
        self.stop_requested = threading.Event()
        self.left = steps
        self.probe = probe
        self.delay_s = delay_s
        self.done = threading.Event()
        self.stepped: list[float] = []

    def step(self) -> float | None:
        self.probe.enter()
        try:
            time.sleep(0.005)  # a GetRecords call
            self.stepped.append(time.monotonic())
            self.left -= 1
        finally:
            self.probe.leave()
        if self.left <= 0 or self.stop_requested.is_set():
            self.done.set()
            return None
        return self.delay_s


class Probe:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def test_many_tasks_share_a_fixed_number_of_threads() -> None:
    probe = Probe()
    before = threading.active_count()
    pool = ReaderPool(3, name="test-pool")
    try:
        tasks = [CountingTask(f"t{i}", 5, probe) for i in range(40)]
        for task in tasks:
            pool.submit(task)
        assert threading.active_count() - before == 3  # 40 tasks, 3 threads
        for task in tasks:
            assert task.done.wait(20), task.name
        assert all(len(task.stepped) == 5 for task in tasks)
        assert probe.peak <= 3 and pool.peak_running <= 3
        assert probe.peak == 3  # and the cap is used
    finally:
        pool.close()
    assert threading.active_count() == before


def test_a_waiting_task_is_woken_early_and_due_tasks_go_first() -> None:
    probe = Probe()
    pool = ReaderPool(1, name="test-pool")
    try:
        sleeper = CountingTask("sleeper", 10, probe, delay_s=60.0)
        pool.submit(sleeper)
        wait_until(lambda: len(sleeper.stepped) == 1, 5, "the sleeper to step once", interval=0.01)
        # Due tasks run while the sleeper waits out its 60 s.
        busy = CountingTask("busy", 3, probe)
        pool.submit(busy)
        assert busy.done.wait(5)
        assert len(sleeper.stepped) == 1
        # A stop moves it to now instead of after its delay.
        sleeper.stop_requested.set()
        started = time.monotonic()
        pool.wake(sleeper)
        assert sleeper.done.wait(5)
        assert time.monotonic() - started < 2
        assert len(sleeper.stepped) == 2
    finally:
        pool.close()


def test_a_task_whose_stop_came_during_its_step_is_not_parked_for_its_delay() -> None:
    probe = Probe()
    pool = ReaderPool(1, name="test-pool")
    try:
        task = CountingTask("t", 10, probe, delay_s=60.0)
        task.stop_requested.set()  # as if set while the step ran
        task.left = 2
        pool.submit(task, delay_s=60.0)
        assert task.done.wait(5)  # `submit` saw the stop and scheduled it now
    finally:
        pool.close()
