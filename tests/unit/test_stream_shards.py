"""Shard descriptions, backoff bounds and which errors the stream reader retries."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

import pytest
from botocore.exceptions import EndpointConnectionError, ParamValidationError

from bridge.model.backoff import Attempts, Backoff
from connectors.dynamodb.aws import AWS_BACKOFF, Interrupted, call_with_backoff
from connectors.sources.stream.shards import Shard
from tests.stream_helpers import client_error


def test_shard_lineage_and_closed_state_from_describe_stream() -> None:
    open_child = Shard.from_description(
        {
            "ShardId": "c",
            "ParentShardId": "p",
            "SequenceNumberRange": {"StartingSequenceNumber": "10"},
        }
    )
    assert open_child.parent_ids == ("p",) and not open_child.closed
    closed_root = Shard.from_description(
        {
            "ShardId": "p",
            "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
        }
    )
    assert closed_root.parent_ids == () and closed_root.closed


def test_full_jitter_backoff_stays_under_its_cap_and_resets() -> None:
    backoff = replace(AWS_BACKOFF, cap_s=2.0, rng=random.Random(1)).start()
    delays = [backoff.failed() or 0.0 for _ in range(30)]
    assert all(0 <= d <= 2.0 for d in delays)
    assert max(delays[10:]) > 0.4, "the ceiling grows exponentially up to the cap"
    backoff.reset()
    assert (backoff.failed() or 0.0) <= 0.1


def fast() -> Attempts:
    return Backoff(base_s=0.001, cap_s=0.002).start()


def test_throttling_and_connection_errors_are_retried() -> None:
    failures = [
        client_error("ProvisionedThroughputExceededException", "GetRecords"),
        client_error("LimitExceededException", "GetRecords"),
        EndpointConnectionError(endpoint_url="http://nowhere"),
    ]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    assert call_with_backoff(flaky, "GetRecords", threading.Event(), fast()) == "ok"


def test_other_errors_propagate_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise ParamValidationError(report="bad parameter")

    with pytest.raises(ParamValidationError):
        call_with_backoff(broken, "GetRecords", threading.Event(), fast())
    with pytest.raises(Exception, match="ResourceNotFoundException"):
        call_with_backoff(
            lambda: (_ for _ in ()).throw(client_error("ResourceNotFoundException", "X")),
            "GetRecords",
            threading.Event(),
            fast(),
        )
    assert calls == [1]


def test_a_stop_interrupts_the_backoff() -> None:
    stop = threading.Event()
    stop.set()

    def throttled() -> None:
        raise client_error("ThrottlingException", "DescribeStream")

    with pytest.raises(Interrupted):
        call_with_backoff(throttled, "DescribeStream", stop, fast())
