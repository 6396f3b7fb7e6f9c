"""One back-fill invocation: choose or create the run, check safety, run workers, report.

`run_backfill` is what `ddb-bridge backfill` calls (through the registry: `ScanBackfill` and
`ExportBackfill` expose it as `backfill`). Run selection:
- scan: join the table's current unfinished scan run (a re-run after a crash resumes it;
  a second machine joins it); otherwise start a new run at T = now. `new_run` forces a new
  run, `run_id` names one.
- export: the run id derives from the export's ARN, so the same export always resumes the
  same run.
The stream-capture safety check (`check_capture`) runs before anything is published.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.errors import ConfigError, PermanentError
from bridge.publisher import Publisher, ensure_topics
from bridge.schema_registry import make_codec
from bridge.settings import Settings
from bridge.versioning import backfill_version, to_micros
from connectors.dynamodb import aws
from connectors.dynamodb.capture import ensure_lease_table
from connectors.sources.backfill import s3_export
from connectors.sources.backfill.budget import Budget
from connectors.sources.backfill.claim_loop import BackfillJob, StoppedError
from connectors.sources.backfill.runs import DONE, Part, RunInfo, RunStore
from connectors.sources.backfill.safety import UnsafeBackfillError, check_capture
from connectors.sources.backfill.stats import Stats

log = logging.getLogger(__name__)


@dataclass
class BackfillRequest:
    """What the operator asked for (the command line's options)."""

    table: str
    source: str  # "scan" or "export"
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


@dataclass
class BackfillOutcome:
    run: RunInfo
    stats: Stats
    parts: list[Part] = field(default_factory=list)
    elapsed_s: float = 0.0
    complete: bool = False
    interrupted: bool = False
    already_complete: bool = False


Say = Callable[[str], None]
Watch = Callable[[BackfillJob, Callable[[], bool]], None]


def _now() -> datetime:
    # Whole milliseconds: the run's T is stored and compared as an integer.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def _check_safety(
    req: BackfillRequest, settings: Settings, ddb: Any, start_us: int, say: Say
) -> None:
    if req.no_stream:
        log.warning("back-fill-only migration: stream capture not checked")
        return
    try:
        check_capture(
            ddb, settings.stream.lease_table, req.table, start_us, settings.backfill.skew_margin_s
        )
    except UnsafeBackfillError as exc:
        if not req.force:
            raise
        say(f"warning: --force overrides the stream-capture check: {exc}")
        log.warning("stream-capture check overridden by --force", extra={"reason": str(exc)})


def _scan_run(
    req: BackfillRequest, settings: Settings, ddb: Any, store: RunStore, say: Say
) -> RunInfo:
    if req.run_id:
        found = store.load_run(req.run_id)
        if found is None:
            raise ConfigError(f"--run-id {req.run_id}: no such back-fill run of {req.table}")
        _check_safety(req, settings, ddb, found.start_us, say)
        return found
    current = store.current_run("scan")
    existing = store.load_run(current) if current else None
    if existing is not None and existing.state != DONE and not req.new_run:
        say(f"resuming scan run {existing.run_id} (T = {_from_us(existing.start_us)})")
        _check_safety(req, settings, ddb, existing.start_us, say)
        return existing
    start = _now()
    start_us = to_micros(start)
    _check_safety(req, settings, ddb, start_us, say)
    segments = req.segments or settings.backfill.segments
    run_id = f"scan-{start_us // 1000}-{uuid.uuid4().hex[:4]}"
    created = store.create_run(
        RunInfo(
            table=req.table,
            run_id=run_id,
            kind="scan",
            start_us=start_us,
            version=backfill_version(start, settings.backfill.skew_margin_s),
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


def _export_location(
    req: BackfillRequest, settings: Settings, ddb: Any, say: Say
) -> tuple[s3_export.ExportLocation, s3_export.ExportManifest]:
    location: s3_export.ExportLocation
    if req.dir:
        location = s3_export.LocalExport(req.dir)
    else:
        s3 = aws.client("s3", settings.aws)
        uri = req.s3_uri
        if req.start_export:
            if not req.s3_bucket:
                raise ConfigError("--start-export needs --s3-bucket")
            desc = aws.describe_table(ddb, req.table)
            incremental = None
            if req.incremental_from is not None:
                incremental = (req.incremental_from, req.incremental_to or datetime.now(UTC))
            # The export's own time is checked below; refuse early when capture is missing.
            _check_safety(req, settings, ddb, to_micros(_now()), say)
            done = s3_export.start_export(
                ddb,
                desc["TableArn"],
                req.s3_bucket,
                req.s3_prefix,
                incremental,
                on_status=lambda state, waited: say(f"export {state} after {waited:.0f}s"),
                poll_s=req.export_poll_s,
            )
            uri = s3_export.manifest_uri(done)
        if not uri:
            raise ConfigError("--from export needs --s3-uri, --dir or --start-export")
        location = s3_export.S3Export(s3, uri)
    return location, s3_export.read_manifest(location)


def run_backfill(
    settings: Settings, req: BackfillRequest, say: Say, watch: Watch | None = None
) -> BackfillOutcome:
    """Run this process's share of a back-fill; returns when the run is complete (or stopped).

    `watch(job, alive)` runs on the calling thread while workers run (progress display);
    a KeyboardInterrupt there stops the workers cleanly (cursors saved, claims released).
    """
    conf = settings.backfill
    if req.source not in ("scan", "export"):
        raise ConfigError(f"unknown back-fill source {req.source!r}")
    if req.source == "export" and not (req.s3_uri or req.dir or req.start_export):
        raise ConfigError("--from export needs --s3-uri, --dir or --start-export")
    if req.source == "scan" and (req.s3_uri or req.dir or req.start_export):
        raise ConfigError("--s3-uri, --dir and --start-export go with --from export")
    ddb = aws.client("dynamodb", settings.aws)
    spec = aws.table_spec(ddb, settings, req.table)
    lease_table = settings.stream.lease_table
    ensure_lease_table(ddb, lease_table)
    owner = (
        req.worker_id
        or settings.stream.worker_id
        or (f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    )
    store = RunStore(ddb, lease_table, req.table, owner, settings.stream.lease_duration_ms)
    stats = Stats()

    location: s3_export.ExportLocation | None = None
    manifest: s3_export.ExportManifest | None = None
    if req.source == "scan":
        run = _scan_run(req, settings, ddb, store, say)
        count = aws.describe_table(ddb, req.table).get("ItemCount")
        stats.total_items = int(count) if count else None
    else:
        location, manifest = _export_location(req, settings, ddb, say)
        _check_safety(req, settings, ddb, manifest.start_us, say)
        run_id = req.run_id or s3_export.run_id_for(manifest)
        if req.new_run:
            run_id = f"{run_id}-{int(time.time())}"
        run = store.load_run(run_id) or store.create_run(
            RunInfo(
                table=req.table,
                run_id=run_id,
                kind="export",
                start_us=manifest.start_us,
                version=backfill_version(_from_us(manifest.start_us), conf.skew_margin_s),
                parts=len(manifest.files),
                source=f"{manifest.export_type} {manifest.location}",
                total_items=manifest.item_count,
            ),
            [f.key for f in manifest.files],
        )
        labels = [p.label for p in store.parts(run)]
        if labels != [f.key for f in manifest.files]:
            # Parts are files by position: a run recorded from another manifest (an earlier,
            # partial copy of this export) would read the wrong files under the right names.
            raise s3_export.BadInputError(
                f"back-fill run {run.run_id} of {req.table} was recorded from a manifest "
                f"listing {len(labels)} files, but {manifest.location} lists "
                f"{len(manifest.files)} (or others): the export changed since; "
                f"start over with --new-run"
            )
        stats.total_items = manifest.item_count
    if run.state == DONE:
        return BackfillOutcome(run, stats, complete=True, already_complete=True)

    ensure_topics(settings.kafka, [req.table])
    codec = make_codec(settings.kafka, [req.table])
    publisher = Publisher(settings.kafka, codec)
    skip_expired = conf.skip_expired_ttl and not req.keep_expired
    job = BackfillJob(
        table=req.table,
        key_names=spec.key_names,
        key_types=tuple(t for t in (spec.hash_type, spec.range_type) if t is not None),
        ttl_attribute=spec.ttl_attribute if skip_expired else None,
        publisher=publisher,
        store=store,
        run=run,
        stats=stats,
        skip_bad_lines=req.skip_bad_lines,
    )
    job.start()
    log.info(
        "back-fill starting",
        extra={
            "table": req.table,
            "run": run.run_id,
            "version": run.version,
            "worker": owner,
            "parts": run.parts,
            "finished_before": stats.parts_skipped,
        },
    )
    started = time.monotonic()
    errors: list[BaseException] = []
    alive: Callable[[], bool]
    if req.source == "scan":
        from connectors.sources.backfill.scan import ScanBackfill

        scanner = ScanBackfill(
            job,
            lambda: aws.client("dynamodb", settings.aws),
            threads=req.threads or min(run.parts, 16),
            page_size=req.page_size,
            consistent_read=req.consistent_read,
            budget=Budget(
                req.max_items_per_second
                if req.max_items_per_second is not None
                else conf.max_items_per_second,
                req.max_rcu_per_second
                if req.max_rcu_per_second is not None
                else conf.max_rcu_per_second,
            ),
        )
        scanner.start()
        alive = scanner.alive
        errors = scanner.errors
    else:
        assert location is not None and manifest is not None
        reader = s3_export.ExportBackfill(job, location, manifest)

        def read() -> None:
            try:
                reader.run()
            except BaseException as exc:
                errors.append(exc)
                job.stop.set()

        thread = threading.Thread(target=read, name="export-reader", daemon=True)
        thread.start()
        alive = thread.is_alive

    interrupted = False
    try:
        if watch is not None:
            watch(job, alive)
        while alive():
            time.sleep(0.1)
    except KeyboardInterrupt:
        interrupted = True
        say("stopping: finishing in-flight work and saving cursors")
        job.stop.set()
        while alive():
            time.sleep(0.1)
    finally:
        job.close()
    failed = [e for e in errors if not isinstance(e, StoppedError)]
    if not failed:
        publisher.flush()
    parts = store.parts(run)
    complete = all(p.done for p in parts)
    if complete and not failed:
        store.finish_run(run.run_id)
    outcome = BackfillOutcome(
        run, stats, parts, time.monotonic() - started, complete and not failed, interrupted
    )
    if failed:
        first = failed[0]
        log.error("back-fill failed", extra={"table": req.table, "run": run.run_id})
        if isinstance(first, PermanentError):
            raise first
        raise PermanentError(f"back-fill failed: {type(first).__name__}: {first}") from first
    return outcome
