"""Back-fill part claims between machines whose wall clocks disagree, against moto DynamoDB.

Two `RunStore`s stand for two worker processes. The second one's `time.time` runs minutes
ahead of (or behind) the first's while it acts, as on machines without synchronized clocks.
A part must be taken over only once its owner has stopped renewing for a whole lease
duration, measured on the taker's own clock: never while the owner is alive, and always
(soon) after it died, whatever the wall clocks say.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from connectors.dynamodb.capture import ensure_lease_table
from connectors.sources.backfill.runs import Part, RunInfo, RunStore

pytestmark = pytest.mark.integration

LEASE_MS = 1000
SKEW_S = 300.0


@contextmanager
def wall_clock_off_by(seconds: float) -> Iterator[None]:
    """This process's `time.time` off by `seconds` (its monotonic clock is untouched)."""
    real = time.time
    time.time = lambda: real() + seconds  # type: ignore[assignment]
    try:
        yield
    finally:
        time.time = real  # type: ignore[assignment]


def one_part_run(ddb: Any, unique_name: Callable[[str], str]) -> tuple[RunStore, RunStore, str]:
    lease_table, table = unique_name("leases"), unique_name("t")
    ensure_lease_table(ddb, lease_table)
    a = RunStore(ddb, lease_table, table, "a", lease_ms=LEASE_MS)
    b = RunStore(ddb, lease_table, table, "b", lease_ms=LEASE_MS)
    run = a.create_run(
        RunInfo(table, "r1", "scan", 1_700_000_000_000_000, 1, 1, "scan, 1 segment"), ["seg-0"]
    )
    return a, b, run.run_id


def try_claim(store: RunStore, run_id: str, skew_s: float) -> Part | None:
    """One round of a worker's claim loop: read the parts, claim the one left if it may."""
    with wall_clock_off_by(skew_s):
        run = store.load_run(run_id)
        assert run is not None
        store.parts(run)
        return store.claim(run_id, 0)


@pytest.mark.parametrize("skew_s", [SKEW_S, -SKEW_S], ids=["ahead", "behind"])
def test_a_live_part_is_never_taken_whatever_the_takers_wall_clock(
    ddb_client: Any, unique_name: Any, skew_s: float
) -> None:
    a, b, run_id = one_part_run(ddb_client, unique_name)
    assert a.claim(run_id, 0) is not None
    until = time.monotonic() + 3 * LEASE_MS / 1000
    while time.monotonic() < until:
        a.renew(run_id, 0)  # a is alive: it renews every third of a lease
        assert try_claim(b, run_id, skew_s) is None, "a live owner's part was taken"
        time.sleep(LEASE_MS / 3000)


@pytest.mark.parametrize("skew_s", [SKEW_S, -SKEW_S], ids=["ahead", "behind"])
def test_a_dead_owners_part_is_taken_after_one_lease_on_the_takers_clock(
    ddb_client: Any, unique_name: Any, skew_s: float
) -> None:
    a, b, run_id = one_part_run(ddb_client, unique_name)
    assert a.claim(run_id, 0) is not None
    a.checkpoint(run_id, 0, "cursor-1", 42)
    died = time.monotonic()  # a's last write: it renews no more
    taken: Part | None = None
    while taken is None and time.monotonic() < died + 6 * LEASE_MS / 1000:
        taken = try_claim(b, run_id, skew_s)
        if taken is None:
            time.sleep(0.05)
    took_s = time.monotonic() - died
    assert taken is not None, f"a dead owner's part was not taken in {took_s:.1f}s"
    assert took_s >= LEASE_MS / 1000, f"taken {took_s:.2f}s after its owner's last renewal"
    assert (taken.owner, taken.cursor, taken.items, taken.claims) == ("b", "cursor-1", 42, 2)
