"""Topic creation while the controller is unreachable or restarting is `Unavailable` (exit 75,
"run it again"), not a permanent failure: seen in the chaos suite, where `stream` and
`backfill` restarted during a broker restart exited 1 with "Failed while waiting for
controller: Local: Timed out"."""

from __future__ import annotations

import concurrent.futures
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from bridge.kafka import publisher, reach
from bridge.model.errors import PermanentError, Unavailable
from bridge.runtime.settings import KafkaSettings


class RefusingAdmin:
    def __init__(self, error: KafkaError) -> None:
        self.error = error

    def create_topics(self, topics: list[Any], request_timeout: float) -> dict[str, Any]:
        out = {}
        for topic in topics:
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            future.set_exception(KafkaException(self.error))
            out[topic.topic] = future
        return out

    def describe_cluster(self, request_timeout: float) -> concurrent.futures.Future[Any]:
        # The cluster answers its metadata; the controller then times out creating topics.
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result(SimpleNamespace(nodes=[object()]))
        return future

    def poll(self, _timeout: float) -> int:
        return 0


def ensure_with(error: KafkaError, monkeypatch: pytest.MonkeyPatch) -> None:
    # ensure_topics' admin client is made by bridge.kafka.reach.described_cluster
    monkeypatch.setattr(reach, "AdminClient", lambda _config: RefusingAdmin(error))
    monkeypatch.setattr(publisher, "ensure_reachable", lambda _kafka: None)  # b:9092 "answers"
    publisher.ensure_topics(KafkaSettings(bootstrap_servers="b:9092"), ["orders"])


@pytest.mark.parametrize(
    "code",
    [KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT, KafkaError._TRANSPORT],
)
def test_a_controller_that_does_not_answer_is_unavailable(
    code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = KafkaError(code, "Failed while waiting for controller: Local: Timed out")
    with pytest.raises(Unavailable, match=r"b:9092.*ddb\.orders\.changes.*run it again"):
        ensure_with(error, monkeypatch)


def test_a_refusal_stays_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    error = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not allowed")
    with pytest.raises(PermanentError, match="cannot create topic") as caught:
        ensure_with(error, monkeypatch)
    assert not isinstance(caught.value, Unavailable)
