"""Back-fill by parallel Scan: every item of the table → one SNAPSHOT event in Kafka.

Segments (`Segment`/`TotalSegments`) are the run's parts, claimed through the lease table
so several threads and several machines share them. Each segment's cursor is the
`LastEvaluatedKey` of the last page whose records Kafka acknowledged; a re-run continues
from there, and finished segments are never read again.

Run selection: join the table's current unfinished scan run (a re-run after a crash resumes
it; a second machine joins it); otherwise start a new run at T = now. `--new-run` forces a
new run, `--run-id` names one.

Delivery guarantee: at-least-once. Items after the last saved cursor are published again
after a crash, with the same key, value and version (the version is fixed per run), so a
duplicate is harmless under last-write-wins. A read budget (items/s, RCU/s) is shared by all
threads of the process.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bridge.codec import compiled
from bridge.codec.source_text import PENDING, SourceTextEvent
from bridge.model import attrs
from bridge.model.errors import AttributeTypeError, ConfigError, PermanentError, TransientError
from bridge.model.event import ChangeEvent, Origin
from bridge.model.ttl import pending_deletion
from bridge.model.versioning import backfill_version, to_micros
from connectors.dynamodb import aws
from connectors.sources.backfill.budget import Budget
from connectors.sources.backfill.part_loop import BackfillJob, RunParts
from connectors.sources.backfill.run_plan import (
    BackfillRequest,
    PlannedRun,
    RunSetup,
    from_us,
    now_whole_ms,
)
from connectors.sources.backfill.runs import DONE, Part, RunInfo

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)


class ScanBackfill:
    """`ddb-bridge backfill --from scan`: chooses the scan run; its threads read segments."""

    name = "scan"
    checkpoints = True  # a page's LastEvaluatedKey is a position (SegmentReader)

    def check_request(self, req: BackfillRequest) -> None:
        if req.s3_uri or req.dir or req.start_export:
            raise ConfigError("--s3-uri, --dir and --start-export go with --from export")

    def plan(self, setup: RunSetup) -> PlannedRun:
        req, settings = setup.req, setup.settings
        run = _scan_run(setup)
        count = aws.describe_table(setup.ddb, req.table).get("ItemCount")
        setup.stats.total_items = int(count) if count else None
        conf = settings.backfill
        budget = Budget(  # one budget for every thread of the process
            req.max_items_per_second
            if req.max_items_per_second is not None
            else conf.max_items_per_second,
            req.max_rcu_per_second
            if req.max_rcu_per_second is not None
            else conf.max_rcu_per_second,
        )

        def segments(job: BackfillJob) -> ScanSegments:
            return ScanSegments(
                job,
                aws.client("dynamodb", settings.aws),  # one client per thread
                budget,
                page_size=req.page_size,
                consistent_read=req.consistent_read,
            )

        return PlannedRun(run, req.threads or min(run.parts, 16), segments)


def _scan_run(setup: RunSetup) -> RunInfo:
    req, store = setup.req, setup.store
    if req.run_id:
        found = store.load_run(req.run_id)
        if found is None:
            raise ConfigError(f"--run-id {req.run_id}: no such back-fill run of {req.table}")
        setup.check_safety(found.start_us)
        return found
    current = store.current_run("scan")
    existing = store.load_run(current) if current else None
    if existing is not None and existing.state != DONE and not req.new_run:
        setup.say(f"resuming scan run {existing.run_id} (T = {from_us(existing.start_us)})")
        setup.check_safety(existing.start_us)
        return existing
    start = now_whole_ms()
    start_us = to_micros(start)
    setup.check_safety(start_us)
    segments = req.segments or setup.settings.backfill.segments
    run_id = f"scan-{start_us // 1000}-{uuid.uuid4().hex[:4]}"
    created = store.create_run(
        RunInfo(
            table=req.table,
            run_id=run_id,
            kind="scan",
            start_us=start_us,
            version=backfill_version(start, setup.settings.backfill.skew_margin_s),
            parts=segments,
            source=f"scan, {segments} segments",
        ),
        [f"segment {i}" for i in range(segments)],
    )
    if not store.set_current_run("scan", run_id, current):
        # Another worker started a run at the same moment: join it instead.
        winner = store.current_run("scan")
        joined = store.load_run(winner) if winner else None
        if joined is None:
            raise PermanentError(f"lost the race to start a scan run of {req.table}")
        return joined
    return created


class ScanSegments(RunParts):
    """The segments of a scan run, for one worker thread (with its own client)."""

    def __init__(
        self,
        job: BackfillJob,
        ddb: DynamoDBClient,
        budget: Budget,
        page_size: int = 0,
        consistent_read: bool = False,
    ) -> None:
        super().__init__(job)
        self.ddb = ddb
        self.budget = budget
        self.page_size = page_size
        self.consistent_read = consistent_read

    def open(self, part: Part) -> SegmentReader:
        return SegmentReader(self, part)


@dataclass(frozen=True, slots=True)
class Page:
    records: list[ChangeEvent]
    end: bool


def scanned_event(
    raw: dict[str, Any],
    table: str,
    key_names: tuple[str, ...],
    version: int,
    where: str,
    ttl: tuple[str, float] | None = None,
) -> tuple[ChangeEvent | None, int]:
    """The SNAPSHOT event of one scanned item (boto3's form) and the size of its DynamoDB
    JSON; None for the event when `ttl` (attribute, now in epoch seconds) says DynamoDB's
    TTL has expired the item. By the compiled core when it takes the item, else by the
    Python path, which refuses a bad item naming the segment and the item's key."""
    event: ChangeEvent | None
    if compiled.CORE is not None:
        # Written as text by the core (the image parsed only if read), else converted by it.
        made = compiled.CORE.scan_text(raw, table, key_names, version, SourceTextEvent, PENDING)
        if made is None:
            made = compiled.CORE.scan_item(raw, table, key_names, version)
        if made is not None:
            event, size = made
            if ttl is not None and pending_deletion(event.new_image, *ttl):
                return None, size
            return event, size
    try:
        item = attrs.from_boto(raw, "item")
    except AttributeTypeError as exc:
        key = {k: raw.get(k) for k in key_names}
        raise AttributeTypeError(f"{where}, item with key {key}: {exc}") from exc
    size = len(orjson.dumps(item))
    if ttl is not None and pending_deletion(item, *ttl):
        return None, size
    return ChangeEvent.snapshot(table, item, key_names, version, Origin.SCAN, where), size


class SegmentReader:
    """One segment from its cursor, a Scan page per `read`; throttling slows it down."""

    checkpoints = ScanBackfill.checkpoints

    def __init__(self, segments: ScanSegments, part: Part) -> None:
        job = segments.job
        self.job = job
        compiled.notice()
        self.ddb = segments.ddb
        self.budget = segments.budget
        self.consistent_read = segments.consistent_read
        self.where = f"table {job.table} segment {part.index}/{job.run.parts}"
        # The cursor: LastEvaluatedKey of the last page read, as canonical JSON.
        self.position: str | None = part.cursor
        self._start_key = attrs.to_boto(attrs.loads(part.cursor)) if part.cursor else None
        self._request: dict[str, Any] = {
            "TableName": job.table,
            "Segment": part.index,
            "TotalSegments": job.run.parts,
            "ConsistentRead": segments.consistent_read,
            "ReturnConsumedCapacity": "TOTAL",
        }
        limit = segments.page_size
        if self.budget.items_per_s:
            # Keep one page within about a second of budget, so the rate stays smooth.
            limit = min(limit or 10_000, max(1, math.ceil(self.budget.items_per_s)))
        if limit:
            self._request["Limit"] = limit
        self._backoff = 0.5

    def read(self) -> Page:
        job = self.job
        request = self._request
        self.budget.wait(job.stop)
        if self._start_key is not None:
            request["ExclusiveStartKey"] = self._start_key
        try:
            page = self.ddb.scan(**request)
        except Exception as exc:
            err = aws.translate(exc, f"Scan {self.where}")
            if isinstance(err, TransientError) and self._backoff < 30:
                # Throttled: the table is busy; slow down rather than compete.
                log.warning(
                    "scan throttled",
                    extra={"segment": request["Segment"], "sleep_s": self._backoff},
                )
                job.stop.wait(self._backoff)
                self._backoff *= 2
                return Page([], end=False)  # nothing read: the same page is asked for next
            raise err from exc
        self._backoff = 0.5
        items = page.get("Items", [])
        events: list[ChangeEvent] = []
        size = 0
        key_names, version = tuple(job.key_names), job.run.version
        ttl = (job.ttl_attribute, job.now_s) if job.ttl_attribute else None
        for raw in items:
            event, item_size = scanned_event(raw, job.table, key_names, version, self.where, ttl)
            size += item_size
            if event is None:
                job.stats.add(skipped_ttl=1)
                continue
            events.append(event)
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
            return Page(events, end=True)
        self._start_key = lek
        self.position = attrs.dumps(attrs.from_boto(lek, self.where))
        return Page(events, end=False)

    def refuse(self, index: int, exc: Exception) -> None:
        # A scanned item DynamoDB itself holds cannot be a bad line: stop and name it.
        raise exc

    def close(self) -> None:
        """Nothing to close: the thread's client stays open for its next segment."""
