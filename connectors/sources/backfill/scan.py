"""Back-fill by parallel Scan: every item of the table → one SNAPSHOT event in Kafka.

Segments (`Segment`/`TotalSegments`) are the run's parts, claimed through the lease table
so several threads and several machines share them. Each segment's cursor is the
`LastEvaluatedKey` of the last page whose records Kafka acknowledged; a re-run continues
from there, and finished segments are never read again.

Delivery guarantee: at-least-once. Items after the last saved cursor are published again
after a crash, with the same key, value and version (the version is fixed per run), so a
duplicate is harmless under last-write-wins. A read budget (items/s, RCU/s) is shared by all
threads of the process.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import orjson

from bridge import attrs
from bridge.acks import AckTracker
from bridge.errors import AttributeTypeError, TransientError
from bridge.event import ChangeEvent, Op, Origin
from bridge.ttl import pending_deletion
from connectors.dynamodb.aws import translate
from connectors.sources.backfill.budget import Budget
from connectors.sources.backfill.claim_loop import BackfillJob
from connectors.sources.backfill.runs import DONE, LeaseLostError, Part

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 1.0


class ScanBackfill:
    """Runs this process's share of a scan run with `threads` threads."""

    @staticmethod
    def backfill(settings: Any, options: dict[str, Any], say: Any, watch: Any = None) -> Any:
        """Registry entry point (`ddb-bridge backfill --from scan`)."""
        from connectors.sources.backfill.invocation import BackfillRequest, run_backfill

        return run_backfill(settings, BackfillRequest(**options), say, watch)

    def __init__(
        self,
        job: BackfillJob,
        client_factory: Any,
        threads: int,
        page_size: int = 0,
        consistent_read: bool = False,
        budget: Budget | None = None,
    ) -> None:
        self.job = job
        self.client_factory = client_factory  # () -> a boto3 DynamoDB client
        self.threads = max(1, threads)
        self.page_size = page_size
        self.consistent_read = consistent_read
        self.budget = budget or Budget()
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.threads):
            thread = threading.Thread(target=self._worker, name=f"scan-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _worker(self) -> None:
        ddb = self.client_factory()  # one client per thread
        try:
            self.job.claim_loop(lambda part: self._segment(ddb, part))
        except BaseException as exc:
            log.error("scan worker failed", extra={"table": self.job.table, "error": str(exc)})
            self.errors.append(exc)
            self.job.stop.set()

    def _segment(self, ddb: Any, part: Part) -> None:
        job = self.job
        run = job.run
        where_seg = f"table {job.table} segment {part.index}/{run.parts}"
        tracker: AckTracker[tuple[str, int]] = AckTracker()
        start_key = attrs.to_boto(attrs.loads(part.cursor)) if part.cursor else None
        published = part.items
        last_saved: tuple[str, int] | None = None
        saved_at = time.monotonic()
        request: dict[str, Any] = {
            "TableName": job.table,
            "Segment": part.index,
            "TotalSegments": run.parts,
            "ConsistentRead": self.consistent_read,
            "ReturnConsumedCapacity": "TOTAL",
        }
        limit = self.page_size
        if self.budget.items_per_s:
            # Keep one page within about a second of budget, so the rate stays smooth.
            limit = min(limit or 10_000, max(1, math.ceil(self.budget.items_per_s)))
        if limit:
            request["Limit"] = limit
        finished = False
        backoff = 0.5
        try:
            while not job.stop.is_set():
                if job.lost(part.index):
                    raise LeaseLostError(f"{where_seg}: claim taken over by another worker")
                self.budget.wait(job.stop)
                if start_key is not None:
                    request["ExclusiveStartKey"] = start_key
                try:
                    page = ddb.scan(**request)
                except Exception as exc:
                    err = translate(exc, f"Scan {where_seg}")
                    if isinstance(err, TransientError) and backoff < 30:
                        # Throttled: the table is busy; slow down rather than compete.
                        log.warning(
                            "scan throttled", extra={"segment": part.index, "sleep_s": backoff}
                        )
                        job.stop.wait(backoff)
                        backoff *= 2
                        continue
                    raise err from exc
                backoff = 0.5
                items = page.get("Items", [])
                size = 0
                for raw in items:
                    try:
                        item = attrs.from_boto(raw, "item")
                    except AttributeTypeError as exc:
                        key = {k: raw.get(k) for k in job.key_names}
                        raise AttributeTypeError(
                            f"{where_seg}, item with key {key}: {exc}"
                        ) from exc
                    size += len(orjson.dumps(item))
                    if job.ttl_attribute and pending_deletion(item, job.ttl_attribute, job.now_s):
                        job.stats.add(skipped_ttl=1)
                        continue
                    event = ChangeEvent(
                        table=job.table,
                        op=Op.SNAPSHOT,
                        keys=attrs.extract_keys(item, job.key_names, where_seg),
                        version=run.version,
                        origin=Origin.SCAN,
                        new_image=item,
                    )
                    job.publisher.publish(event, tracker)
                    published += 1
                    job.stats.add(published=1)
                consumed = (page.get("ConsumedCapacity") or {}).get("CapacityUnits")
                if consumed is None:
                    factor = 1.0 if self.consistent_read else 0.5
                    consumed = math.ceil(size / 4096) * factor
                self.budget.spend(len(items), float(consumed))
                # Pay any overdraft now: otherwise segments that all passed `wait` while the
                # bucket was full, and then read their last page, would never pay it back.
                self.budget.wait(job.stop)
                job.stats.add(bytes_read=size)
                lek = page.get("LastEvaluatedKey")
                if lek is None:
                    tracker.mark((DONE, published))
                    finished = True
                    break
                start_key = lek
                tracker.mark((attrs.dumps(attrs.from_boto(lek, where_seg)), published))
                safe = tracker.safe_position()
                if (
                    safe is not None
                    and safe != last_saved
                    and (time.monotonic() - saved_at >= CHECKPOINT_EVERY_S)
                ):
                    job.store.checkpoint(run.run_id, part.index, safe[0], safe[1])
                    last_saved, saved_at = safe, time.monotonic()
            job.wait_acked(tracker, where_seg)
            safe = tracker.safe_position()
            if finished:
                job.store.finish(run.run_id, part.index, published)
                job.stats.add(parts_done=1)
                log.info(
                    "scan segment finished",
                    extra={"table": job.table, "segment": part.index, "items": published},
                )
            else:
                if safe is not None and safe != last_saved:
                    job.store.checkpoint(run.run_id, part.index, safe[0], safe[1])
                job.store.release(run.run_id, part.index)
        finally:
            job.release(part)
