"""Gather the whole migration status once: the one function `ddb-bridge status` (and a
dashboard) calls. It wires the DynamoDB side (`connectors.sources.migration_state`) to the
Kafka side (`bridge.status.kafka`) and draws the verdicts (`bridge.status.report`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from bridge.apply.app import group_id
from bridge.dlq.topic import dlq_depth
from bridge.kafka import durability as kafka_durability
from bridge.kafka.publisher import admin_config
from bridge.model.errors import ConfigError
from bridge.runtime.settings import Settings
from bridge.status.kafka import group_statuses
from bridge.status.report import (
    DurabilityStatus,
    StatusReport,
    TableStatus,
    TargetStatus,
    attention,
    verdict,
)


def _tables(settings: Settings, tables: Sequence[str]) -> list[str]:
    names = list(tables) or [t.name for t in settings.tables]
    if not names:
        raise ConfigError("no tables to report: list them in [[tables]] or pass --table")
    return names


def _targets(settings: Settings, targets: Sequence[str]) -> list[str]:
    names = list(targets) or sorted(settings.targets)
    if not names:
        raise ConfigError("no targets to report: configure a [targets.<name>] section")
    for name in names:
        settings.target(name)  # ConfigError naming the configured ones
    return names


def topic_durability(settings: Settings, table: str) -> DurabilityStatus | None:
    """The change topic's replication now; None when the topic does not exist yet."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(admin_config(settings.kafka))
    try:
        found = kafka_durability.read(admin, settings.kafka.changes_topic(table))
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None  # nothing published yet
        raise
    return DurabilityStatus(
        brokers=found.brokers,
        replication_factor=found.replication_factor,
        min_insync_replicas=found.min_insync_replicas,
        durable=found.durable,
        development=found.development,
        advice=found.advice(settings.kafka.bootstrap_servers),
    )


def gather_status(
    settings: Settings,
    tables: Sequence[str] = (),
    targets: Sequence[str] = (),
    *,
    stream_only: bool = False,
    sample_s: float = 0.0,
    max_lag: int | None = None,
) -> StatusReport:
    """Every table's stream, back-fill, apply groups, DLQ, last verify and verdicts.

    `stream_only` declares every table a stream-only migration (as the table setting does);
    `sample_s` > 0 reads the apply groups twice that far apart to estimate catch-up time;
    `max_lag` is the apply lag (events) above which the report needs attention.
    """
    from connectors.dynamodb import aws
    from connectors.sources.migration_state import (
        backfill_runs,
        read_lease_table,
        stream_status,
    )
    from connectors.sources.stream.kinesis_transport import make_transport

    table_names, target_names = _tables(settings, tables), _targets(settings, targets)
    confs = {name: settings.table(name) for name in table_names}
    for name, conf in confs.items():
        if (stream_only or conf.stream_only) and conf.item_lifetime_s is None:
            raise ConfigError(
                f"table {name} is a stream-only migration: set tables.item_lifetime_s (how "
                "long an item lives after its last write) so status can tell when capture "
                "has covered every live item"
            )
    ddb = aws.client("dynamodb", settings.aws)
    # DynamoDB Streams or Kinesis, as `ddb-bridge stream` reads it (its leases' stream ARN).
    streams = make_transport(settings, ddb)
    state = read_lease_table(ddb, settings.stream.lease_table)
    pairs = [
        (group_id(target), settings.kafka.changes_topic(table))
        for table in table_names
        for target in target_names
    ]
    groups = group_statuses(settings.kafka, pairs, sample_s)
    now_ms = int(time.time() * 1000)
    out = []
    for name, conf in confs.items():
        dlq_topic = settings.kafka.dlq_topic(name)
        table = TableStatus(
            table=name,
            stream_only=stream_only or conf.stream_only,
            item_lifetime_s=conf.item_lifetime_s,
            stream=stream_status(ddb, streams, state, name),
            backfill_runs=backfill_runs(state, name),
            dlq_topic=dlq_topic,
            dlq_depth=dlq_depth(settings.kafka, name),
            targets=[],
            durability=topic_durability(settings, name),
        )
        for target in target_names:
            group = groups[(group_id(target), settings.kafka.changes_topic(name))]
            verify = state.verifies.get((name, target))
            table.targets.append(
                TargetStatus(
                    target=target,
                    group=group.group,
                    topic=group.topic,
                    partitions=group.partitions,
                    lag=group.lag,
                    consumed_per_s=group.consumed_per_s,
                    eta_s=group.eta_s,
                    verify=verify,
                    verdict=verdict(table, group, verify, target, now_ms),
                    skipped=group.skipped,
                )
            )
        out.append(table)
    return StatusReport(generated_at_ms=now_ms, tables=out, attention=attention(out, max_lag))
