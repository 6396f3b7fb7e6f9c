"""Re-driving dead letters: their original key and value back into the changes topic.

A re-driven record is the dead letter's key and value byte for byte, with the headers it had
on the changes topic (the `ddb.dlq.*` ones removed) plus `ddb.redrive.from` naming the dead
letter. Its version is unchanged, so re-driving is idempotent under last-write-wins: a record
re-driven twice, or after a newer change of its item, changes nothing. Its Kafka timestamp is
the event's change time (`approximate_creation_time_ms`, else the version's), as on the
records the bridge publishes first-hand.

Delivery guarantee: at-least-once. The records are acknowledged by Kafka (acks=all) before
the ledger (`bridge/dlq/topic.py`) marks them re-driven; a crash in between leaves them
unmarked, and the next re-drive publishes them again, which is harmless for the reason above.
A value that does not decode is refused unless forced: re-publishing it would only send it
back to the DLQ.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bridge.codec.avro import EventCodec
from bridge.dlq.topic import HEADER_REDRIVE_FROM, DlqRecord, ledger_topic
from bridge.kafka.durability import broker_count, min_insync_replicas, replication_factor
from bridge.kafka.publisher import admin_config, producer_config
from bridge.model.errors import PermanentError, TransientError
from bridge.model.event import ChangeEvent
from bridge.runtime.settings import KafkaSettings

log = logging.getLogger(__name__)

Verdict = Literal["redrive", "already", "undecodable"]


@dataclass(frozen=True, slots=True)
class Candidate:
    record: DlqRecord
    verdict: Verdict
    event: ChangeEvent | None
    why: str = ""  # the decode error of an undecodable one, the ledger entry of a re-driven one


def decode(codec: EventCodec, record: DlqRecord) -> tuple[ChangeEvent | None, str]:
    """The record's event, or None and why it does not decode."""
    if record.export_line is not None:
        name, line = record.export_line
        return None, (
            f"a bad line of export file {name} line {line}, not a change record: fix the "
            "line and run that back-fill again"
        )
    if not record.value:
        return None, "no value"
    try:
        return codec.decode(record.value), ""
    except Exception as exc:  # DecodeError and whatever a corrupt body makes fastavro raise
        return None, f"{type(exc).__name__}: {exc}"


def select(
    records: Iterable[DlqRecord],
    ledger: dict[str, str],
    codec: EventCodec,
    positions: set[tuple[int, int]] | None,
    reason: str | None,
) -> list[Candidate]:
    """The dead letters a re-drive is about: those at `positions` (None: all) whose reason
    contains `reason` (case-insensitive), each with what a re-drive would do to it."""
    out = []
    needle = reason.lower() if reason else None
    for record in records:
        if positions is not None and (record.partition, record.offset) not in positions:
            continue
        if needle is not None and needle not in record.reason.lower():
            continue
        event, why = decode(codec, record)
        if record.position in ledger:
            out.append(Candidate(record, "already", event, ledger[record.position]))
        elif event is None:
            out.append(Candidate(record, "undecodable", None, why))
        else:
            out.append(Candidate(record, "redrive", event))
    return out


def change_time_ms(event: ChangeEvent | None) -> int | None:
    # ChangeEvent.change_time_ms is the rule; an undecodable record or a version-less event
    # keeps the dead letter's own timestamp.
    if event is None or (event.approximate_creation_time_ms is None and event.version <= 0):
        return None
    return event.change_time_ms


def ensure_ledger(kafka: KafkaSettings, table: str, timeout_s: float = 30.0) -> str:
    topic = ledger_topic(kafka, table)
    admin = AdminClient(admin_config(kafka))
    replicas = replication_factor(kafka, broker_count(admin, timeout_s))
    new = NewTopic(
        topic,
        num_partitions=1,
        replication_factor=replicas,
        config={
            "cleanup.policy": "compact",
            "min.insync.replicas": str(min_insync_replicas(kafka, replicas)),
        },
    )
    future = admin.create_topics([new], request_timeout=timeout_s)[topic]
    try:
        future.result(timeout=timeout_s)
        log.info("created topic", extra={"topic": topic})
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise PermanentError(f"cannot create topic {topic}: {exc.args[0].str()}") from exc
    return topic


@dataclass(frozen=True, slots=True)
class Redriven:
    record: DlqRecord
    partition: int
    offset: int  # where it now is in the changes topic


def redrive(
    kafka: KafkaSettings,
    table: str,
    chosen: Sequence[Candidate],
    timeout_s: float = 60.0,
) -> list[Redriven]:
    """Publish `chosen` into the changes topic, wait for every ack, then mark them re-driven."""
    if not chosen:
        return []
    ledger = ensure_ledger(kafka, table)
    changes = kafka.changes_topic(table)
    dlq = kafka.dlq_topic(table)
    producer = Producer(producer_config(kafka))
    failures: list[str] = []
    done: list[Redriven] = []

    def delivered(record: DlqRecord) -> Any:
        def callback(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                failures.append(f"{record.position}: {err.str()}")
            else:
                done.append(Redriven(record, msg.partition(), msg.offset()))

        return callback

    unmarked: list[str] = []

    def marked(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            unmarked.append(err.str())

    def produce(topic: str, key: bytes | None, value: bytes | None, **kw: Any) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value, **kw)
                return
            except BufferError:
                producer.poll(0.05)

    for c in chosen:
        headers = c.record.original_headers()
        headers.append((HEADER_REDRIVE_FROM, f"{dlq}:{c.record.position}".encode()))
        extra: dict[str, Any] = {"headers": headers, "on_delivery": delivered(c.record)}
        ts = change_time_ms(c.event)
        if ts is not None:
            extra["timestamp"] = ts
        produce(changes, c.record.key, c.record.value, **extra)
    _flush(producer, timeout_s, changes)
    if failures:
        # What was acknowledged is still marked, so a retry re-drives only the rest.
        log.error("re-drive failed for some records", extra={"failed": failures[:10]})
    for r in done:
        entry = {
            "redriven_at_ms": int(time.time() * 1000),
            "topic": changes,
            "partition": r.partition,
            "offset": r.offset,
        }
        produce(
            ledger,
            r.record.position.encode(),
            json.dumps(entry, sort_keys=True, separators=(",", ":")).encode(),
            on_delivery=marked,
        )
    _flush(producer, timeout_s, ledger)
    if unmarked:
        raise PermanentError(
            f"{len(done)} records were re-published to {changes}, but marking them in {ledger} "
            f"failed ({'; '.join(unmarked[:3])}): a next re-drive publishes them again "
            "(harmless: versions are unchanged)"
        )
    if failures:
        raise PermanentError(
            f"{len(failures)} of {len(chosen)} records were not re-published to {changes} "
            f"({'; '.join(failures[:5])}); {len(done)} were, and are marked re-driven"
        )
    return sorted(done, key=lambda r: (r.record.partition, r.record.offset))


def _flush(producer: Producer, timeout_s: float, topic: str) -> None:
    remaining = producer.flush(timeout_s)
    if remaining:
        raise TransientError(f"{remaining} records to {topic} unacknowledged after {timeout_s}s")
