"""What each process of `backfill --processes N` asks for, and how their counts add up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.model.errors import PermanentError
from bridge.runtime.settings import BackfillSettings, Settings
from connectors.sources.backfill.processes import default_processes
from connectors.sources.backfill.run_plan import (
    BackfillRequest,
    join_request,
    threads_per_process,
)
from connectors.sources.backfill.runs import RunInfo
from connectors.sources.backfill.stats import Stats


def run(kind: str = "scan", source: str = "scan, 8 segments") -> RunInfo:
    return RunInfo("t", "run-1", kind, 1, 2, 8, source)


def test_a_joining_process_names_the_run_and_takes_its_share_of_the_budget() -> None:
    settings = Settings(backfill=BackfillSettings(max_items_per_second=900, max_rcu_per_second=0))
    req = BackfillRequest(table="t", segments=8, new_run=True, processes=3)
    joined = join_request(req, run(), settings, 3, threads=2)
    assert (joined.run_id, joined.new_run, joined.segments) == ("run-1", False, None)
    assert (joined.threads, joined.processes) == (2, 1)
    assert joined.max_items_per_second == 300  # the setting's 900, shared by 3
    assert joined.max_rcu_per_second == 0  # unlimited stays unlimited
    explicit = join_request(
        BackfillRequest(table="t", max_items_per_second=100, max_rcu_per_second=50),
        run(),
        settings,
        2,
        threads=1,
    )
    assert (explicit.max_items_per_second, explicit.max_rcu_per_second) == (50, 25)


def test_a_requested_export_is_joined_where_it_was_written_not_requested_again() -> None:
    req = BackfillRequest(
        table="t",
        start_export=True,
        s3_bucket="b",
        incremental_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    joined = join_request(
        req, run("export", "FULL_EXPORT s3://b/p/AWSDynamoDB/0001-abc"), Settings(), 2, 1
    )
    assert not joined.start_export
    assert joined.s3_uri == "s3://b/p/AWSDynamoDB/0001-abc"
    assert joined.incremental_from is None
    with pytest.raises(PermanentError, match="--processes 1"):
        join_request(req, run("export", "FULL_EXPORT /some/folder"), Settings(), 2, 1)


def test_threads_are_shared_out_unless_asked_for() -> None:
    assert threads_per_process(8, BackfillRequest(table="t"), 2) == 4
    assert threads_per_process(5, BackfillRequest(table="t"), 2) == 3
    assert threads_per_process(1, BackfillRequest(table="t"), 4) == 1
    assert threads_per_process(8, BackfillRequest(table="t", threads=6), 2) == 6


def test_a_helpers_work_adds_up_without_the_parts_it_found_done() -> None:
    helper = Stats()
    helper.add(parts_total=6, parts_skipped=2, parts_done=2)  # found done at its start
    helper.add(published=10, parts_claimed=1, parts_done=1, bytes_read=7)
    first = helper.work()
    assert first["parts_done"] == 1 and first["published"] == 10
    command = Stats()
    command.add(parts_total=6, parts_skipped=2, parts_done=2, published=5)
    command.add_work({}, first)
    helper.add(published=4)
    command.add_work(first, helper.work())
    assert (command.published, command.parts_done, command.bytes_read) == (19, 3, 7)
    assert command.parts_skipped == 2 and command.parts_total == 6


def test_default_is_one_process_per_core() -> None:
    assert default_processes() >= 1
