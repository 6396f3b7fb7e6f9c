"""Every metric the daemons export, declared once, over `prometheus_client`.

Components record through the small `Metrics` facade (`inc`, `set`, `observe`, `remove`,
`get`) by metric name and labels, so a unit test can give a component its own registry
(`Metrics()`) and read back exactly what it recorded. `REGISTRY` is the process-wide one the
daemons serve on `/metrics` (bridge/runtime/metrics_server.py). The catalogue below is the contract
with docker/grafana/ddb-bridge-dashboard.json: a test checks every metric the dashboard
queries is exported here. Thread-safe (prometheus_client's own locks): the stream worker
records from one thread per shard.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase

# Batch sizes range from one record to tens of thousands: 1 ms .. 60 s.
_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class Spec:
    kind: str  # counter | gauge | histogram
    name: str  # the exported name (a counter's ends in _total)
    help: str
    labels: tuple[str, ...]


# -- stream -------------------------------------------------------------------------------
STREAM_RECORDS = "ddb_bridge_stream_records_published_total"
STREAM_PUBLISH_SECONDS = "ddb_bridge_stream_publish_seconds"
MILLIS_BEHIND = "ddb_bridge_stream_millis_behind"
LEASES_HELD = "ddb_bridge_stream_leases_held"
STREAM_GET_RECORDS = "ddb_bridge_stream_get_records_total"
STREAM_POLL_DELAY = "ddb_bridge_stream_poll_delay_seconds"
STREAM_OTHER_TABLE = "ddb_bridge_stream_records_other_table_total"
# -- apply --------------------------------------------------------------------------------
APPLY_RECEIVED = "ddb_bridge_apply_records_received_total"
APPLY_EVENTS = "ddb_bridge_apply_events_total"
APPLY_WRITES = "ddb_bridge_apply_rows_written_total"
APPLY_DLQ = "ddb_bridge_apply_dlq_total"
APPLY_RETRIES = "ddb_bridge_apply_retries_total"
APPLY_BATCHES = "ddb_bridge_apply_batches_total"
APPLY_BATCH_SECONDS = "ddb_bridge_apply_batch_seconds"
APPLY_LAG_SECONDS = "ddb_bridge_apply_lag_seconds"
APPLY_LAST_EVENT_TIME = "ddb_bridge_apply_last_event_timestamp_seconds"
APPLY_TARGET_ERRORS = "ddb_bridge_apply_target_errors_total"
APPLY_BLOCKED = "ddb_bridge_apply_target_blocked"
APPLY_SKIPPED = "ddb_bridge_apply_skipped_offsets_total"
DLQ_DEPTH = "ddb_bridge_dlq_depth"
# -- every daemon ---------------------------------------------------------------------------
AWS_RETRIES = "ddb_bridge_aws_retries_total"
ERRORS = "ddb_bridge_errors_total"
LAST_PROGRESS = "ddb_bridge_last_progress_timestamp_seconds"
TOPIC_DURABLE = "ddb_bridge_kafka_topic_durable"
TOPIC_REPLICAS = "ddb_bridge_kafka_topic_replication_factor"
TOPIC_MIN_ISR = "ddb_bridge_kafka_topic_min_insync_replicas"

CATALOGUE: tuple[Spec, ...] = (
    Spec("counter", STREAM_RECORDS, "Stream records published to Kafka, per table", ("table",)),
    Spec(
        "histogram",
        STREAM_PUBLISH_SECONDS,
        "Seconds to publish one page of stream records (queue + serve delivery reports)",
        ("table",),
    ),
    Spec(
        "gauge",
        MILLIS_BEHIND,
        "Per shard: now minus the approximate creation time of the last record read "
        "(0 at the tip of the shard)",
        ("table", "shard"),
    ),
    Spec("gauge", LEASES_HELD, "Shard leases this worker holds, per table", ("table",)),
    Spec(
        "counter",
        STREAM_GET_RECORDS,
        "GetRecords pages read (each one a billed DynamoDB Streams call), per table",
        ("table",),
    ),
    Spec(
        "counter",
        STREAM_OTHER_TABLE,
        "Kinesis records of another table met on this table's Kinesis stream, not published "
        "(several tables may stream to one Kinesis stream), per table",
        ("table",),
    ),
    Spec(
        "gauge",
        STREAM_POLL_DELAY,
        "Per shard: the pause before its next GetRecords call (0 while records come; the "
        "idle backoff grows it on empty pages)",
        ("table", "shard"),
    ),
    Spec(
        "counter",
        APPLY_RECEIVED,
        "Change records apply consumed, per table (applied + dead-lettered)",
        ("table", "target"),
    ),
    Spec(
        "counter",
        APPLY_EVENTS,
        "Change events applied (written, or superseded in their batch), per table",
        ("table", "target"),
    ),
    Spec("counter", APPLY_WRITES, "Rows written to the target after coalescing", ("target",)),
    Spec(
        "counter",
        APPLY_DLQ,
        "Records sent to the dead-letter topic, per table",
        ("table", "target"),
    ),
    Spec(
        "counter",
        APPLY_RETRIES,
        "Writes or offset reads retried after a transient error",
        ("target",),
    ),
    Spec("counter", APPLY_BATCHES, "Batches applied", ("target",)),
    Spec(
        "counter",
        APPLY_SKIPPED,
        "Change-topic offsets deleted before apply read them (the target needs a new back-fill)",
        ("table", "target"),
    ),
    Spec(
        "gauge",
        DLQ_DEPTH,
        "Dead letters waiting in the table's DLQ topic (not re-driven), read every 30 s",
        ("table",),
    ),
    Spec(
        "histogram",
        APPLY_BATCH_SECONDS,
        "Seconds to apply one batch (screen, coalesce, write with retries, dead-letter)",
        ("target",),
    ),
    Spec(
        "gauge",
        APPLY_LAG_SECONDS,
        "Replication lag: when the last batch was applied, the time since the change time "
        "of its newest stream event, per table",
        ("table", "target"),
    ),
    Spec(
        "gauge",
        APPLY_LAST_EVENT_TIME,
        "Change time (unix seconds) of the newest applied stream event, per table; "
        "time() minus it is the lag seen now",
        ("table", "target"),
    ),
    Spec(
        "counter",
        APPLY_TARGET_ERRORS,
        "Writes the target refused as a whole (read-only, access denied, ...)",
        ("target",),
    ),
    Spec(
        "gauge",
        APPLY_BLOCKED,
        "1 while the target refuses writes and apply waits, else 0",
        ("target",),
    ),
    Spec(
        "counter",
        AWS_RETRIES,
        "DynamoDB / Streams / S3 calls retried after throttling or an unreachable endpoint, "
        "by call and reason",
        ("call", "reason"),
    ),
    Spec(
        "counter",
        ERRORS,
        "Errors met by a daemon, by exception class (retried, dead-lettered or fatal)",
        ("daemon", "error"),
    ),
    Spec(
        "gauge",
        TOPIC_DURABLE,
        "1 when the change topic survives the loss of one broker (min.insync.replicas >= 2 "
        "and replication factor >= min(3, brokers)), else 0; read at the daemon's start",
        ("topic",),
    ),
    Spec(
        "gauge",
        TOPIC_REPLICAS,
        "Replication factor of the change topic (its smallest partition's), read at start",
        ("topic",),
    ),
    Spec(
        "gauge",
        TOPIC_MIN_ISR,
        "min.insync.replicas of the change topic, read at start",
        ("topic",),
    ),
    Spec(
        "gauge",
        LAST_PROGRESS,
        "Unix time the daemon's main loop last made progress (/healthz reads the same clock)",
        ("daemon",),
    ),
)


def _base_name(spec: Spec) -> str:
    # prometheus_client appends _total to a counter's name itself.
    return spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name


class Metrics:
    """One registry holding the whole catalogue; `process=True` adds the process/GC/platform
    collectors (only the served registry needs them)."""

    def __init__(self, process: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if process:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        self._metrics: dict[str, MetricWrapperBase] = {}
        self._labels: dict[str, tuple[str, ...]] = {}
        for spec in CATALOGUE:
            metric: MetricWrapperBase
            base = _base_name(spec)
            if spec.kind == "counter":
                metric = Counter(base, spec.help, spec.labels, registry=self.registry)
            elif spec.kind == "gauge":
                metric = Gauge(base, spec.help, spec.labels, registry=self.registry)
            else:
                metric = Histogram(
                    base, spec.help, spec.labels, registry=self.registry, buckets=_LATENCY_BUCKETS
                )
            self._metrics[spec.name] = metric
            self._labels[spec.name] = spec.labels

    def _child(self, name: str, labels: dict[str, object]) -> MetricWrapperBase:
        metric = self._metrics.get(name)
        if metric is None:
            raise KeyError(f"metric {name} is not in bridge/runtime/metrics.py's CATALOGUE")
        wanted = self._labels[name]
        if set(labels) != set(wanted):
            raise ValueError(f"metric {name} takes labels {wanted}, got {sorted(labels)}")
        return metric.labels(*(str(labels[k]) for k in wanted))

    def inc(self, name: str, value: float = 1, **labels: object) -> None:
        self._child(name, labels).inc(value)  # type: ignore[attr-defined]

    def set(self, name: str, value: float, **labels: object) -> None:
        self._child(name, labels).set(value)  # type: ignore[attr-defined]

    def observe(self, name: str, value: float, **labels: object) -> None:
        self._child(name, labels).observe(value)  # type: ignore[attr-defined]

    def remove(self, name: str, **labels: object) -> None:
        """Forget a series (e.g. a shard this worker no longer holds)."""
        wanted = self._labels[name]
        # A series never recorded has nothing to forget.
        with contextlib.suppress(KeyError):
            self._metrics[name].remove(*(str(labels[k]) for k in wanted))

    def progress(self, daemon: str) -> None:
        self.set(LAST_PROGRESS, time.time(), daemon=daemon)

    def get(self, name: str, **labels: object) -> float:
        """A sample's value by its exported name (a histogram's `_sum`/`_count` too); 0 when
        the series was never recorded."""
        value = self.registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})
        return 0.0 if value is None else value

    def render_prometheus(self) -> bytes:
        return generate_latest(self.registry)


REGISTRY = Metrics(process=True)
