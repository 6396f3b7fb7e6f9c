"""The back-fill's lease keeper on a part this process has just finished, against moto
DynamoDB: a healthy `backfill --processes 1` printed `WARNING … part lease lost … not claimed
by <me>` for its own parts, finished between the keeper's reading of its parts and their
renewal. Finishing a part is not losing it."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from connectors.dynamodb.capture import ensure_lease_table
from connectors.sources.backfill.runs import LeaseKeeper, RunInfo, RunStore

pytestmark = pytest.mark.integration

LEASE_MS = 300  # the keeper renews every 0.1 s


def test_a_part_finished_before_it_is_dropped_is_not_reported_lost(
    ddb_client: Any, unique_name: Any, caplog: pytest.LogCaptureFixture
) -> None:
    lease_table, table = unique_name("leases"), unique_name("t")
    ensure_lease_table(ddb_client, lease_table)
    store = RunStore(ddb_client, lease_table, table, "me", lease_ms=LEASE_MS)
    run = store.create_run(
        RunInfo(table, "r1", "scan", 1_700_000_000_000_000, 1, 1, "scan, 1 segment"), ["seg-0"]
    )
    assert store.claim(run.run_id, 0) is not None
    keeper = LeaseKeeper(store, run.run_id).start()
    try:
        keeper.hold(0)
        time.sleep(LEASE_MS / 1000)  # renewed a few times while the part is read
        with caplog.at_level(logging.WARNING):
            store.finish(run.run_id, 0, 42)
            time.sleep(LEASE_MS / 1000)  # the keeper runs between finish and drop
            assert not keeper.lost(0)
            keeper.drop(0)
    finally:
        keeper.stop()
    lost = [r.getMessage() for r in caplog.records if "lease lost" in r.getMessage()]
    assert lost == []
