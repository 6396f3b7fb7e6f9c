"""What the bridge itself records, sampled every ~200 ms for the whole run.

- The lease table: every distinct (shard, checkpoint, checkpointAtMs) the stream wrote
  (finished leases are deleted, so a sample taken only at the end would miss them).
- The apply group's committed offsets, and right AFTER each read the target's rows
  (key -> version): rows only move forward (last-write-wins), so rows read after the offsets
  hold at least what was written when those offsets were committed. Rows are kept as changes
  since the previous sample (memory stays small at full size); a row whose version went
  backwards is itself recorded as a violation.
A sample whose offsets or rows cannot be read (broker or PostgreSQL down) is counted as
skipped, never guessed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from bridge.kafka.reads import OffsetFetcher
from bridge.runtime.settings import KafkaSettings

INTERVAL_S = 0.2


@dataclass
class OffsetSample:
    at_s: float
    offsets: dict[int, int]  # partition -> committed offset (only partitions with one)
    row_changes: dict[str, int]  # key -> version, rows that changed since the last sample


@dataclass
class Samples:
    checkpoints: set[tuple[str, str, int]] = field(default_factory=set)
    offsets: list[OffsetSample] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    rows_backwards: list[str] = field(default_factory=list)
    lease_reads: int = 0


class Sampler(threading.Thread):
    def __init__(
        self,
        ddb: Any,
        lease_table: str,
        kafka: KafkaSettings,
        group: str,
        topic: str,
        partitions: int,
        pg_dsn: str,
        pg_table: str,
        started_at: float,
    ) -> None:
        super().__init__(name="chaos-sampler", daemon=True)
        self.ddb, self.lease_table = ddb, lease_table
        self.kafka, self.group, self.topic, self.partitions = kafka, group, topic, partitions
        self.pg_dsn, self.pg_table = pg_dsn, pg_table
        self.started_at = started_at
        self.samples = Samples()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._rows: dict[str, int] = {}
        self._pg: psycopg.Connection[Any] | None = None
        # No settling wait: a sample the broker cannot answer at once is skipped, and counted.
        self._offsets = OffsetFetcher(kafka, settle_s=0)

    def run(self) -> None:
        # The lease table on a loop of its own: a sample of offsets or rows waits out a
        # stopped broker or PostgreSQL, and checkpoints written meanwhile went unseen (a CI
        # run saw 4, under the floor, with 99 PostgreSQL samples skipped).
        leases = threading.Thread(target=self._every_interval, args=(self.sample_leases,))
        leases.start()
        try:
            self._every_interval(self.sample_offsets)
        finally:
            leases.join(30)
            self._offsets.close()
            if self._pg is not None:
                with contextlib.suppress(Exception):
                    self._pg.close()

    def _every_interval(self, sample: Callable[[], None]) -> None:
        try:
            while not self.stop_event.is_set():
                began = time.monotonic()
                sample()
                self.stop_event.wait(max(0.0, INTERVAL_S - (time.monotonic() - began)))
        except BaseException as exc:  # the scenario fails the run with it
            self.error = exc
            self.stop_event.set()

    def sample_leases(self) -> None:
        kwargs: dict[str, Any] = {"TableName": self.lease_table, "ConsistentRead": True}
        try:
            while True:
                page = self.ddb.scan(**kwargs)
                for item in page.get("Items", []):
                    if "shardId" in item and "checkpointAtMs" in item:
                        self.samples.checkpoints.add(
                            (
                                item["shardId"]["S"],
                                item["checkpoint"]["S"],
                                int(item["checkpointAtMs"]["N"]),
                            )
                        )
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except self.ddb.exceptions.ResourceNotFoundException:
            self.samples.skipped["leases: no lease table yet"] += 1
            return
        self.samples.lease_reads += 1

    def committed(self) -> dict[int, int]:
        """The group's committed offsets (bridge.kafka.reads.OffsetFetcher: an OffsetFetch
        from a consumer carrying the group's id that never joins, not the admin API)."""
        tps = [(self.topic, p) for p in range(self.partitions)]
        found = self._offsets.committed(self.group, tps, timeout_s=2.0)
        return {p: offset for (_t, p), offset in found.items() if offset is not None}

    def sample_offsets(self) -> None:
        at_s = time.monotonic() - self.started_at
        try:
            offsets = self.committed()
        except Exception:  # broker down or settling: this sample is skipped, and counted
            self.samples.skipped["offsets: broker unreachable"] += 1
            return
        rows = self.read_rows()  # AFTER the offsets: see the module docstring
        if rows is None:
            self.samples.skipped["rows: PostgreSQL unreachable"] += 1
            return
        changes = {}
        for key, version in rows.items():
            before = self._rows.get(key)
            if before is None or version != before:
                if before is not None and version < before:
                    self.samples.rows_backwards.append(
                        f"row {key} went from version {before} to {version} at {at_s:.1f}s"
                    )
                changes[key] = version
        gone = set(self._rows) - set(rows)
        for key in sorted(gone):
            self.samples.rows_backwards.append(f"row {key} disappeared at {at_s:.1f}s")
        self._rows = rows
        self.samples.offsets.append(OffsetSample(at_s, offsets, changes))

    def read_rows(self) -> dict[str, int] | None:
        query = sql.SQL("SELECT pk, version FROM {}").format(sql.Identifier(self.pg_table))
        for _ in range(2):  # once on the kept connection, once on a new one
            try:
                if self._pg is None or self._pg.closed:
                    self._pg = psycopg.connect(self.pg_dsn, autocommit=True, connect_timeout=2)
                return {pk: int(v) for pk, v in self._pg.execute(query).fetchall()}
            except psycopg.errors.UndefinedTable:
                return {}
            except psycopg.Error:
                if self._pg is not None:
                    with contextlib.suppress(Exception):
                        self._pg.close()
                self._pg = None
        return None
