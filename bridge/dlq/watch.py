"""The DLQ depth as a metric: a background thread that reads it every so often.

`ddb_bridge_dlq_depth{table}` is what `status` and `ddb-bridge dlq list` count (dead letters in
the DLQ topic not yet re-driven, `bridge.dlq.topic.dlq_depth`), so an alert on it agrees with
the cut-over verdict. It is read in the background because a reading takes a few round trips to
the broker, which a scrape should not wait for. A failed reading is logged with its reason and
the gauge keeps its last value; the next reading tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from bridge.dlq.topic import dlq_depth
from bridge.runtime.metrics import DLQ_DEPTH, REGISTRY, Metrics
from bridge.runtime.settings import KafkaSettings

log = logging.getLogger(__name__)


class DlqDepthWatch:
    def __init__(
        self,
        kafka: KafkaSettings,
        tables: Sequence[str],
        interval_s: float = 30.0,
        metrics: Metrics = REGISTRY,
    ) -> None:
        self.kafka = kafka
        self.tables = list(tables)
        self.interval_s = interval_s
        self.metrics = metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dlq-depth", daemon=True)

    def read_once(self) -> None:
        for table in self.tables:
            try:
                depth = dlq_depth(self.kafka, table)
            except Exception as exc:  # reported, retried at the next reading
                log.warning("cannot read the DLQ depth", extra={"table": table, "error": repr(exc)})
                continue
            self.metrics.set(DLQ_DEPTH, depth, table=table)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.read_once()
            self._stop.wait(self.interval_s)

    def start(self) -> DlqDepthWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
