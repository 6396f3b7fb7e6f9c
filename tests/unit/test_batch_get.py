"""The one BatchGetItem loop (connectors/dynamodb/reader.py), used by verify and by the
Alternator sink: keys left unprocessed are asked again with jittered, bounded, stoppable
pauses; the give-up names the table."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bridge.model.backoff import Backoff, Stop
from bridge.model.errors import TransientError
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import AlternatorTarget
from connectors.dynamodb import reader
from connectors.dynamodb.aws import Interrupted
from connectors.sinks.alternator import AlternatorSink
from connectors.sinks.common import Tables

SPEC = TableSpec(source="orders", target="orders_copy", hash_key="pk", hash_type="S")
QUICK = Backoff(base_s=0.001, cap_s=0.002, max_retries=5)


class NeverProcesses:
    """A throttled endpoint: answers every BatchGetItem with all its keys unprocessed."""

    def __init__(self, limit: int = 40) -> None:
        self.calls = 0
        self.limit = limit

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls > self.limit:
            raise AssertionError(f"BatchGetItem asked {self.calls} times: the loop is unbounded")
        return {"Responses": {}, "UnprocessedKeys": RequestItems}


class ProcessesLater(NeverProcesses):
    """Unprocessed twice, then answers with the stored items (one a tombstone)."""

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= 2:
            return {"Responses": {}, "UnprocessedKeys": RequestItems}
        (table,) = RequestItems
        stored = {
            "a": {"pk": {"S": "a"}, "x": {"N": "1"}, "_ddb_bridge_version": {"N": "5"}},
            "b": {
                "pk": {"S": "b"},
                "_ddb_bridge_version": {"N": "6"},
                "_ddb_bridge_deleted": {"BOOL": True},
            },
        }
        keys = [k["pk"]["S"] for k in RequestItems[table]["Keys"]]
        return {"Responses": {table: [stored[k] for k in keys if k in stored]}}


def alternator(client: Any) -> AlternatorSink:
    sink = AlternatorSink(AlternatorTarget(type="alternator", endpoint_url="http://unused"))
    sink._tables = Tables([SPEC])
    sink._client = client
    sink._pool = ThreadPoolExecutor(1)
    return sink


def test_the_alternator_sink_gives_up_on_keys_that_stay_unprocessed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _s: None)  # whatever loop pauses, pause not
    monkeypatch.setattr(reader, "UNPROCESSED_BACKOFF", QUICK, raising=False)
    client = NeverProcesses()
    sink = alternator(client)
    with pytest.raises(TransientError, match="BatchGetItem orders_copy.*unprocessed"):
        sink.read_items("orders", [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}])
    assert client.calls == 6, "the first ask and max_retries more"
    sink.close()


def test_the_alternator_sink_reads_through_the_readers_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reader, "UNPROCESSED_BACKOFF", QUICK, raising=False)
    client = ProcessesLater()
    sink = alternator(client)
    keys = [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}, {"pk": {"S": "c"}}, {"pk": {"S": "a"}}]
    found = sink.read_items("orders", keys)
    assert found == [{"pk": {"S": "a"}, "x": {"N": "1"}}, None, None, found[0]]
    assert client.calls == 3
    sink.close()


def test_a_stop_ends_the_wait_for_unprocessed_keys_at_once() -> None:
    stop = Stop()
    slow = Backoff(base_s=60.0, cap_s=60.0, max_retries=3)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted, match="BatchGetItem orders"):
        reader.batch_get(
            NeverProcesses(),  # type: ignore[arg-type]
            "orders",
            ("pk",),
            [{"pk": {"S": "a"}}],
            stop=stop,
            backoff=slow,
        )
    assert time.monotonic() - started < 5
