"""How long apply holds a trickle of records back to fill a batch (`apply.batch_window_ms`).

Measured by benchmarks/bench_latency.py: at 50 writes/s the stream producer publishes a page
of ~12 records every 250 ms, far from a batch of 500, so every record waited out the whole
window before its write. With the old 200 ms default that was ~190 ms of Kafka -> target
p50 (most of that stage) and pushed end-to-end p50 past the 500 ms goal; 50 ms took the stage
to ~60-95 ms for ~10 % more apply CPU per event at a steady 2,000 events/s. A backlog is
unaffected: the feed then holds a full batch and `take` returns at once.
"""

from __future__ import annotations

import asyncio
import time

from bridge.apply.faust_group import Feed
from bridge.runtime.settings import ApplySettings


def test_the_default_window_holds_a_trickle_back_at_most_50_ms() -> None:
    assert ApplySettings().batch_window_ms <= 50


def test_a_page_of_records_reaches_the_sink_within_the_default_window() -> None:
    conf = ApplySettings()

    async def take_one_page() -> tuple[int, float]:
        feed = Feed(maxsize=4096)
        for i in range(12):  # one stream page at 50 writes/s and 250 ms polls
            feed.put_nowait(i)
        started = time.perf_counter()
        batch = await feed.take(conf.batch_size, conf.batch_window_ms / 1000)
        return len(batch), time.perf_counter() - started

    size, waited = asyncio.run(take_one_page())
    assert size == 12
    # Never before the window (it is a real wait for more records), and well before the
    # 200 ms the old default held every such page back.
    assert conf.batch_window_ms / 1000 - 0.005 <= waited < 0.18


def test_a_backlog_is_taken_at_once_whatever_the_window() -> None:
    async def take_full() -> tuple[int, float]:
        feed = Feed(maxsize=4096)
        for i in range(600):
            feed.put_nowait(i)
        started = time.perf_counter()
        batch = await feed.take(500, 10.0)
        return len(batch), time.perf_counter() - started

    size, waited = asyncio.run(take_full())
    assert size == 500 and waited < 1.0


def test_an_idle_feed_returns_empty_so_the_pump_turns_and_livez_sees_it_alive() -> None:
    async def take_nothing() -> tuple[list[object], float]:
        feed = Feed(maxsize=4096)
        started = time.perf_counter()
        batch = await feed.take(500, 0.05, idle_s=0.2)
        return batch, time.perf_counter() - started

    batch, waited = asyncio.run(take_nothing())
    assert batch == [] and 0.19 <= waited < 1.0
