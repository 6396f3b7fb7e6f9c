"""The one Kafka client-config builder (bridge/kafka/client_config.py): every client the bridge
makes gets `[kafka.extra]`, seen here in the configuration handed to confluent_kafka or
aiokafka; a key a client cannot take stops start-up naming the key and the client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge import consumer as consumer_module
from bridge.apply.faust_group import FaustGroup
from bridge.kafka import publisher
from bridge.kafka import reads as kafka_reads
from bridge.kafka.client_config import producer_config
from bridge.model.errors import ConfigError
from bridge.runtime.settings import ApplySettings, KafkaSettings, Settings

EXTRA = {"socket.keepalive.enable": True, "client.id": "extra-reached-me"}


class Recorded(Exception):
    """Raised by a recording client class once it has seen its configuration."""


def recorder(into: list[dict[str, Any]]) -> Any:
    def build(config: dict[str, Any], *_a: Any, **_kw: Any) -> Any:
        into.append(dict(config))
        raise Recorded

    return build


def kafka(**extra: Any) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers="127.0.0.1:9", extra=extra)


def test_a_producer_gets_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(publisher, "Producer", recorder(seen))
    with pytest.raises(Recorded):
        publisher.Publisher(kafka(**EXTRA, **{"linger.ms": 7}))
    assert seen[0]["socket.keepalive.enable"] is True
    assert seen[0]["client.id"] == "extra-reached-me"
    assert seen[0]["linger.ms"] == 7


def test_a_reader_consumer_gets_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(kafka_reads, "Consumer", recorder(seen))
    with pytest.raises(Recorded):
        kafka_reads.reader_consumer(kafka(**EXTRA, **{"fetch.wait.max.ms": 50}), "status")
    assert seen[0]["socket.keepalive.enable"] is True
    assert seen[0]["client.id"] == "extra-reached-me"
    assert seen[0]["fetch.wait.max.ms"] == 50
    assert seen[0]["isolation.level"] == "read_committed"


def test_an_event_stream_consumer_gets_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(consumer_module, "Consumer", recorder(seen))
    with pytest.raises(Recorded):
        consumer_module.EventStream(kafka(**EXTRA), ["t"], "my-group")
    assert seen[0]["socket.keepalive.enable"] is True
    assert seen[0]["group.id"] == "my-group"


def test_the_audit_consumer_gets_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.audit import worker

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(worker, "Consumer", recorder(seen))
    settings = Settings(kafka=kafka(**EXTRA))
    with pytest.raises(Recorded):
        worker.AuditWorker(settings, ["t"], None, None, worker.AuditOptions())  # type: ignore[arg-type]
    assert seen[0]["socket.keepalive.enable"] is True
    assert seen[0]["client.id"] == "extra-reached-me"


def test_an_admin_client_gets_the_global_keys_of_the_extra_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bridge.kafka import reach as kafka_reach

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(kafka_reach, "AdminClient", recorder(seen))
    probe = kafka_reach.kafka_probe(kafka(**EXTRA, **{"linger.ms": 7, "fetch.wait.max.ms": 9}))
    with pytest.raises(Recorded):
        probe()
    assert seen[0]["socket.keepalive.enable"] is True
    # Producer and consumer properties are for those clients; an admin client would warn.
    assert "linger.ms" not in seen[0] and "fetch.wait.max.ms" not in seen[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [("isolation.level", "read_uncommitted"), ("enable.auto.commit", True)],
)
def test_an_extra_contradicting_what_a_consumer_needs_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, key: str, value: Any
) -> None:
    monkeypatch.setattr(kafka_reads, "Consumer", recorder([]))
    with pytest.raises(ConfigError, match=rf'kafka\.extra\] "{key}".*consumer'):
        kafka_reads.reader_consumer(kafka(**{key: value}), "status")


def test_an_extra_agreeing_with_what_a_consumer_needs_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(kafka_reads, "Consumer", recorder(seen))
    with pytest.raises(Recorded):
        kafka_reads.reader_consumer(kafka(**{"enable.auto.commit": "false"}), "status")
    assert seen[0]["enable.auto.commit"] is False


def test_bootstrap_servers_come_from_kafka_bootstrap_servers_only() -> None:
    with pytest.raises(ConfigError, match=r'"bootstrap\.servers".*producer'):
        producer_config(kafka(**{"bootstrap.servers": "elsewhere:9092"}))


def apply_consumer(tmp_path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """What apply's aiokafka consumer was built with, read from the consumer Faust builds."""

    async def build() -> dict[str, Any]:
        group = FaustGroup(
            kafka(**extra),
            ApplySettings(batch_size=10),
            "ddb-bridge.apply.t",
            ["p.t.changes"],
            data_dir=str(tmp_path),
        )
        consumer: Any = group._app.consumer
        built = consumer._thread._create_worker_consumer(group._app.transport)
        try:
            return {
                "client_id": built._client._client_id,
                "metadata_max_age_ms": built._client._metadata_max_age_ms,
                "max_poll_interval_ms": built._max_poll_interval_ms,
            }
        finally:
            await built.stop()

    return asyncio.run(build())


def test_apply_s_aiokafka_consumer_gets_what_it_can_express(tmp_path: Path) -> None:
    built = apply_consumer(
        tmp_path,
        {
            "client.id": "extra-reached-me",
            "metadata.max.age.ms": 12_345,
            "max.poll.interval.ms": 600_000,
            "linger.ms": 7,  # a producer property: apply's producer's, not its consumer's
        },
    )
    assert built == {
        "client_id": "extra-reached-me",
        "metadata_max_age_ms": 12_345,
        "max_poll_interval_ms": 600_000,
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("socket.keepalive.enable", True),
        ("fetch.wait.max.ms", 50),
        ("session.timeout.ms", 9_000),
        ("sasl.oauthbearer.method", "oidc"),
    ],
)
def test_apply_refuses_at_start_up_what_aiokafka_cannot_take(
    tmp_path: Path, key: str, value: Any
) -> None:
    with pytest.raises(ConfigError, match=rf'kafka\.extra\] "{key}".*apply'):
        apply_consumer(tmp_path, {key: value})


def _admin_of_status(k: KafkaSettings) -> None:
    from ddb_bridge.status import topic_durability

    topic_durability(Settings(kafka=k), "t")


def _admin_of_replay(k: KafkaSettings) -> None:
    from bridge.kafka import replay

    replay._admin(k)


def _admin_of_dlq_redrive(k: KafkaSettings) -> None:
    from bridge.dlq import redrive

    redrive.ensure_ledger(k, "t")


@pytest.mark.parametrize(
    "make", [_admin_of_status, _admin_of_replay, _admin_of_dlq_redrive], ids=lambda f: f.__name__
)
def test_the_admin_clients_of_status_replay_and_dlq_get_the_extra(
    monkeypatch: pytest.MonkeyPatch, make: Any
) -> None:
    import confluent_kafka.admin

    from bridge.dlq import redrive
    from bridge.kafka import replay

    seen: list[dict[str, Any]] = []
    for module in (confluent_kafka.admin, replay, redrive):
        monkeypatch.setattr(module, "AdminClient", recorder(seen))
    with pytest.raises(Recorded):
        make(kafka(**EXTRA, **{"linger.ms": 7}))
    assert seen[0]["client.id"] == "extra-reached-me"
    assert seen[0]["socket.keepalive.enable"] is True
    assert "linger.ms" not in seen[0]


def test_the_dlq_redrive_producer_gets_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.dlq import redrive

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(redrive, "ensure_ledger", lambda *_a, **_kw: "ledger")
    monkeypatch.setattr(redrive, "Producer", recorder(seen))
    with pytest.raises(Recorded):
        redrive.redrive(kafka(**EXTRA, **{"linger.ms": 7}), "t", [object()])  # type: ignore[list-item]
    assert seen[0]["client.id"] == "extra-reached-me"
    assert seen[0]["linger.ms"] == 7
