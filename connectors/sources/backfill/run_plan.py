"""What a back-fill is asked to do, and what each kind of back-fill plans from it.

`BackfillRequest` holds the operator's options. A kind of back-fill (`BackfillSource`: scan,
export) checks the options it takes, then chooses or creates the run in the lease table
from a `RunSetup` (running the stream-capture safety check for the run's T), and returns a
`PlannedRun`: the run, how many worker threads read it, and how each thread opens its parts.
The runner (`runner.run_backfill`) does the rest, the same for every kind.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from bridge.model.errors import PermanentError
from bridge.runtime.settings import Settings
from connectors.dynamodb import aws
from connectors.dynamodb.kinesis_stream import (
    KinesisStream,
    describe_kinesis_stream,
    kinesis_stream_name,
)
from connectors.sources.backfill.part_loop import BackfillJob, BackfillParts
from connectors.sources.backfill.runs import RunInfo, RunStore
from connectors.sources.backfill.safety import UnsafeBackfillError, check_capture
from connectors.sources.backfill.stats import Stats

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

Say = Callable[[str], None]


@dataclass
class BackfillRequest:
    """What the operator asked for (the command line's options)."""

    table: str
    segments: int | None = None
    threads: int | None = None
    page_size: int = 0
    max_items_per_second: float | None = None
    max_rcu_per_second: float | None = None
    consistent_read: bool = False
    s3_uri: str | None = None
    dir: str | None = None
    start_export: bool = False
    s3_bucket: str | None = None
    s3_prefix: str | None = None
    incremental_from: datetime | None = None
    incremental_to: datetime | None = None
    skip_bad_lines: bool = False
    no_stream: bool = False
    force: bool = False
    run_id: str | None = None
    new_run: bool = False
    worker_id: str | None = None
    keep_expired: bool = False
    export_poll_s: float = 10.0
    # Processes on this machine sharing the run (this one and helpers it starts); the
    # command resolves its default (one per core), the library's is this process alone.
    processes: int = 1


def now_whole_ms() -> datetime:
    # Whole milliseconds: the run's T is stored and compared as an integer.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


@dataclass
class RunSetup:
    """What a kind of back-fill gets to choose its run: the request, clients and stores."""

    req: BackfillRequest
    settings: Settings
    ddb: DynamoDBClient  # the invocation's client (not for worker threads: one each)
    store: RunStore
    stats: Stats
    say: Say

    def check_safety(self, start_us: int) -> None:
        """Refuse (UnsafeBackfillError) unless the stream capture covers T = `start_us`."""
        req, settings = self.req, self.settings
        if req.no_stream:
            log.warning("back-fill-only migration: stream capture not checked")
            return
        try:
            check_capture(
                self.ddb,
                settings.stream.lease_table,
                req.table,
                start_us,
                settings.backfill.skew_margin_s,
                kinesis=self._kinesis_stream(),
            )
        except UnsafeBackfillError as exc:
            if not req.force:
                raise
            self.say(f"warning: --force overrides the stream-capture check: {exc}")
            log.warning("stream-capture check overridden by --force", extra={"reason": str(exc)})

    def _kinesis_stream(self) -> KinesisStream | None:
        """The table's Kinesis data stream when that transport captures it (else None)."""
        if self.settings.stream.transport != "kinesis":
            return None
        name = kinesis_stream_name(self.settings, self.req.table)
        kinesis = aws.client("kinesis", self.settings.aws)
        return describe_kinesis_stream(kinesis, name, self.req.table)


@dataclass(frozen=True)
class PlannedRun:
    run: RunInfo
    threads: int  # worker threads of this process
    parts: Callable[[BackfillJob], BackfillParts]  # called once per worker thread


class BackfillSource(Protocol):
    """A kind of back-fill (`--from scan`, `--from export`); one object per invocation."""

    name: str
    # Whether its parts' readers save positions inside a part (EventReader.checkpoints).
    checkpoints: bool

    def check_request(self, req: BackfillRequest) -> None:
        """Raise ConfigError for options this kind does not take or lacks."""
        ...

    def plan(self, setup: RunSetup) -> PlannedRun:
        """Choose or create the run (safety-checked), set `setup.stats.total_items`."""
        ...


def join_request(
    req: BackfillRequest, run: RunInfo, settings: Settings, processes: int, threads: int
) -> BackfillRequest:
    """What one of `processes` processes of a command asks for to join the command's run.

    It names the run (`run_id`, never a new one), reads it with `threads` threads, and gets
    an even share of the command's read budget: `--max-items-per-second` is the command's,
    however many processes it runs. An export the command requested (`--start-export`) is
    joined where it was written, not requested again.
    """
    conf = settings.backfill
    items = req.max_items_per_second
    rcu = req.max_rcu_per_second
    joined = replace(
        req,
        run_id=run.run_id,
        new_run=False,
        segments=None,
        threads=threads,
        processes=1,
        max_items_per_second=(items if items is not None else conf.max_items_per_second)
        / processes,
        max_rcu_per_second=(rcu if rcu is not None else conf.max_rcu_per_second) / processes,
    )
    if req.start_export:
        # The run's source reads "<export type> <location>"; the location of a requested
        # export is its s3:// prefix (export_files records it so).
        location = run.source.split(" ", 1)[-1]
        if not location.startswith("s3://"):
            raise PermanentError(
                f"run {run.run_id}: cannot tell where its export is from {run.source!r}; "
                f"run with --processes 1, or join it with --s3-uri"
            )
        joined = replace(
            joined, start_export=False, s3_uri=location, incremental_from=None, incremental_to=None
        )
    return joined


def threads_per_process(planned_threads: int, req: BackfillRequest, processes: int) -> int:
    """Threads of each process: as asked (`--threads`), else the kind's choice shared out."""
    if req.threads:
        return req.threads
    return max(1, math.ceil(planned_threads / processes))
