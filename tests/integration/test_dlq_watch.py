"""The DLQ depth metric (`ddb_bridge_dlq_depth`) agrees with `dlq_depth`, which `status` and
`ddb-bridge dlq list` count: 0 without a DLQ topic, then the dead letters written."""

from __future__ import annotations

from typing import Any

from bridge.dlq.topic import dlq_depth
from bridge.dlq.watch import DlqDepthWatch
from bridge.dlq.writer import DeadLetter, KafkaDeadLetters, RawRecord
from bridge.kafka.publisher import ensure_topics
from bridge.runtime.metrics import DLQ_DEPTH, Metrics
from bridge.runtime.settings import NullTarget
from tests.apply_harness import apply_settings


def test_the_dlq_depth_gauge_follows_the_dead_letters(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    table = unique_name("dlqwatch").replace("-", "_")
    kafka = apply_settings(kafka_bootstrap, "n", NullTarget(type="null"), [table]).kafka
    metrics = Metrics()
    watch = DlqDepthWatch(kafka, [table], metrics=metrics)

    watch.read_once()  # no DLQ topic yet: nothing waits, and the gauge says so
    assert metrics.get(DLQ_DEPTH, table=table) == 0

    ensure_topics(kafka, [table])
    writer = KafkaDeadLetters(kafka, "n")
    for i in range(5):
        raw = RawRecord(kafka.changes_topic(table), 0, i, b"k%d" % i, b"\x00not avro", ())
        writer.send(DeadLetter(raw, table, f"reason {i}", "DecodeError"))
    writer.flush()
    writer.close()

    watch.read_once()
    assert metrics.get(DLQ_DEPTH, table=table) == dlq_depth(kafka, table) == 5
