"""A committed-offsets read that times out (a broker restarting under it) is a TransientError,
which apply retries with backoff. Seen in `make chaos` (seed 6): the admin future's bare
TimeoutError escaped `retrying`, and apply stopped with exit 1 and a traceback right after
the broker came back."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

from bridge import kafka_reads
from bridge.errors import TransientError


class SlowAdmin:
    def __init__(self) -> None:
        self.calls = 0

    def list_consumer_group_offsets(self, request: Any, request_timeout: float) -> Any:
        self.calls += 1
        return {request[0].group_id: concurrent.futures.Future()}  # never answers


def test_a_timed_out_read_is_transient_and_retried() -> None:
    admin = SlowAdmin()
    with pytest.raises(TransientError, match="committed offsets of group g"):
        kafka_reads.committed_offsets(admin, "g", [("t", 0)], timeout_s=0.1)  # type: ignore[arg-type]
    assert admin.calls >= 2
