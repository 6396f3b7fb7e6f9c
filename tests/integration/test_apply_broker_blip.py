"""A broker blip right after a write: reading the group's committed offsets fails a few
times. apply must retry it like any transient error (on main it stopped with exit 1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bridge.apply import app as apply_app
from bridge.apply.app import group_id
from bridge.kafka.lag import CommittedReader
from bridge.model.errors import TransientError
from bridge.runtime.settings import NullTarget
from tests.apply_harness import (
    MemorySink,
    apply_settings,
    assert_committed_offsets_are_written,
    assert_target_matches,
    delivery_plan,
    produce,
    random_history,
    run_in_process,
    table_spec,
)
from tests.kafka_helpers import consume_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_committed_offsets_read_failing_a_few_times_is_retried_and_apply_converges(
    kafka_bootstrap: str, unique_name: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed: list[str] = []

    class FlakyReader(CommittedReader):
        """The real reader, failing its first three reads as librdkafka does when the
        group coordinator is briefly unreachable."""

        def read(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
            if len(failed) < 3:
                failed.append(",".join(f"{t}/{p}" for t, p in partitions))
                raise TransientError(
                    "injected: reading committed offsets: broker transport failure"
                )
            return super().read(partitions)

    monkeypatch.setattr(apply_app, "CommittedReader", FlakyReader)
    table, target = unique_name("blip"), unique_name("mem")
    history = random_history(table, seed=77, n_ops=400)
    plan = delivery_plan(history.events, seed=78)
    settings = apply_settings(kafka_bootstrap, target, NullTarget(type="null"), [table])
    produce(settings.kafka, plan)
    sink = MemorySink()
    code, worker = run_in_process(
        settings, [table_spec(table)], sink, until=lambda w: w.records_applied >= len(plan)
    )
    assert len(failed) == 3  # the fault really hit the worker
    assert code == 0 and worker.records_applied == len(plan)
    assert_target_matches(sink, history)
    messages = consume_all(kafka_bootstrap, settings.kafka.changes_topic(table), len(plan))
    covered = assert_committed_offsets_are_written(settings.kafka, group_id(target), messages, sink)
    assert covered == len(plan)
